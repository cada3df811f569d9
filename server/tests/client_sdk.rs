//! The Rust client SDK (`sealcast_net::Client`)
//! against a real `sealcast serve`: sealed chat, presence, call signaling,
//! key rotation, a shared document, a wrong key, and reconnecting through
//! a server restart.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{APP_KEY, APP_SECRET, Server, SessionKeys, TempDir, free_port};
use sealcast_core::client::ChannelAuth;
use sealcast_core::client::{DocOptions, Document};
use sealcast_core::crypto::{Key, Scope};
use sealcast_core::doc::{DocClientError, DocClientEvent, DocConfig, SkipReason};
use sealcast_core::ot::Delta;
use sealcast_core::protocol::auth;
use sealcast_net::{
    AuthRefusal, Authorizer, Client, ClientConfig, Event, KeyGrant, KeyProvider, KeyRefusal, KeyRequest,
    TrustRoots,
};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

/// Signs with the app secret, as an app's auth endpoint would.
struct HmacAuthorizer {
    user_id: String,
}

impl Authorizer for HmacAuthorizer {
    fn authorize(&self, socket_id: &str, channel: &str) -> Result<ChannelAuth, AuthRefusal> {
        let channel_data = channel
            .starts_with("presence-")
            .then(|| json!({"user_id": self.user_id, "user_info": {"name": self.user_id}}).to_string());
        let auth = auth::channel_auth(APP_KEY, APP_SECRET, socket_id, channel, channel_data.as_deref());
        Ok(ChannelAuth { auth, channel_data })
    }
}

/// Keys by (kid, kv); the newest version answers `kv: None`. Counts calls.
/// Or, made by [`Keys::sessions`], document keys issued per session by one
/// app server (docs/keys.md): no hint mints a new session.
#[derive(Default)]
struct Keys {
    keys: Mutex<HashMap<(String, u32), [u8; 32]>>,
    calls: Mutex<Vec<KeyRequest>>,
    sessions: Option<Arc<SessionKeys>>,
}

impl Keys {
    fn with(entries: &[(&str, u32, u8)]) -> Arc<Keys> {
        let keys = Keys::default();
        for (kid, kv, byte) in entries {
            keys.keys.lock().unwrap().insert(((*kid).to_owned(), *kv), [*byte; 32]);
        }
        Arc::new(keys)
    }

    fn sessions(app_server: &Arc<SessionKeys>) -> Arc<Keys> {
        Arc::new(Keys { sessions: Some(app_server.clone()), ..Keys::default() })
    }

    fn document_calls(&self) -> Vec<KeyRequest> {
        self.calls.lock().unwrap().iter().filter(|r| r.doc_id.is_some()).cloned().collect()
    }
}

impl KeyProvider for Keys {
    fn key(&self, request: &KeyRequest) -> Result<KeyGrant, KeyRefusal> {
        self.calls.lock().unwrap().push(request.clone());
        if let (Some(sessions), Some(_)) = (&self.sessions, &request.doc_id) {
            let (key, key_hint) = sessions.grant(request.key_hint.as_deref()).map_err(KeyRefusal::Refused)?;
            return Ok(KeyGrant { kv: 1, key, key_hint });
        }
        let keys = self.keys.lock().unwrap();
        let kv = match request.kv {
            Some(kv) => kv,
            None => keys
                .keys()
                .filter(|(kid, _)| *kid == request.kid)
                .map(|(_, kv)| *kv)
                .max()
                .ok_or_else(|| KeyRefusal::Refused("no such kid".into()))?,
        };
        let bytes = keys
            .get(&(request.kid.clone(), kv))
            .ok_or_else(|| KeyRefusal::Refused(format!("no key {} v{kv}", request.kid)))?;
        Ok(KeyGrant::new(kv, Key::from_bytes(bytes)))
    }
}

fn start(port: u16, user: &str, keys: Arc<Keys>) -> (Client, UnboundedReceiver<Event>) {
    let config = ClientConfig::new(&format!("ws://127.0.0.1:{port}"), APP_KEY);
    let authorizer = Arc::new(HmacAuthorizer { user_id: user.to_owned() });
    Client::start(config, authorizer, keys, &tokio::runtime::Handle::current()).unwrap()
}

/// The first event matching `want` within 10 s (others are skipped).
async fn expect<T>(
    rx: &mut UnboundedReceiver<Event>,
    what: &str,
    mut want: impl FnMut(&Event) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let event = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("client stopped");
        eprintln!("{what}: saw {event:?}");
        if let Some(found) = want(&event) {
            return found;
        }
    }
}

async fn subscribed(rx: &mut UnboundedReceiver<Event>, channel: &str) {
    expect(rx, channel, |e| matches!(e, Event::Subscribed { channel: c } if c == channel).then_some(()))
        .await;
}

async fn message(rx: &mut UnboundedReceiver<Event>, name: &str) -> (Value, Option<Scope>, Option<String>) {
    expect(rx, name, |e| match e {
        Event::Message { event, data, scope, user_id, .. } if event == name => {
            Some((data.clone(), scope.clone(), user_id.clone()))
        }
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_chat_presence_signaling_and_rotation() {
    let server = Server::start("", "");
    let keys = Keys::with(&[("room-1", 1, 1), ("call-9", 1, 9)]);
    let (ann, mut ann_rx) = start(server.port, "ann", keys.clone());
    let (bob, mut bob_rx) = start(server.port, "bob", keys.clone());

    // Presence: both see the roster.
    let channel = "presence-room-1";
    ann.with_machine(|m| m.subscribe(channel)).unwrap();
    subscribed(&mut ann_rx, channel).await;
    bob.with_machine(|m| m.subscribe(channel)).unwrap();
    subscribed(&mut bob_rx, channel).await;
    let added = expect(&mut ann_rx, "member_added", |e| match e {
        Event::MemberAdded { member, .. } => Some(member.user_id.clone()),
        _ => None,
    })
    .await;
    assert_eq!(added, "bob");
    let mut roster: Vec<_> =
        bob.with_machine(|m| m.members(channel)).into_iter().map(|m| m.user_id).collect();
    roster.sort();
    assert_eq!(roster, ["ann", "bob"]);

    // Sealed presence state (typing indicator).
    ann.with_machine(|m| m.send_presence_state(channel, "room-1", json!({"typing": true}))).unwrap();
    let (data, scope, from) = message(&mut bob_rx, "client-presence-state").await;
    assert_eq!(data["state"], json!({"typing": true}));
    assert_eq!(scope.unwrap().to_string(), "custom:presence-state:presence-room-1:client-presence-state");
    assert_eq!(from.as_deref(), Some("ann"));

    // Sealed chat: Bob sees plaintext, the wire carried an envelope.
    let scope = Scope::chat("room-1", "m-1").unwrap();
    let data = json!({"body": "meet at 5", "sent_at": 1});
    ann.with_machine(|m| m.trigger_sealed(channel, "client-chat", data, &["/body"], "room-1", &scope))
        .unwrap();
    let (data, got_scope, from) = message(&mut bob_rx, "client-chat").await;
    assert_eq!(data["body"], "meet at 5");
    assert_eq!(got_scope, Some(scope));
    assert_eq!(from.as_deref(), Some("ann"));

    // Call signaling with a sealed SDP.
    let offer = Scope::call("call-9", "client-offer").unwrap();
    bob.with_machine(|m| {
        m.trigger_sealed(channel, "client-offer", json!({"sdp": "v=0 o=bob"}), &["/sdp"], "call-9", &offer)
    })
    .unwrap();
    let (data, _, _) = message(&mut ann_rx, "client-offer").await;
    assert_eq!(data["sdp"], "v=0 o=bob");
    let answer = Scope::call("call-9", "client-answer").unwrap();
    ann.with_machine(|m| {
        m.trigger_sealed(channel, "client-answer", json!({"sdp": "v=0 o=ann"}), &["/sdp"], "call-9", &answer)
    })
    .unwrap();
    assert_eq!(message(&mut bob_rx, "client-answer").await.0["sdp"], "v=0 o=ann");

    // Rotation mid-conversation: Ann moves to v2; Bob asks the provider once.
    keys.keys.lock().unwrap().insert(("room-1".into(), 2), [2; 32]);
    ann.with_machine(|m| m.add_key("room-1", 2, Key::from_bytes(&[2; 32]))).unwrap();
    for i in 2..4 {
        let scope = Scope::chat("room-1", format!("m-{i}")).unwrap();
        ann.with_machine(|m| {
            m.trigger_sealed(
                channel,
                "client-chat",
                json!({"body": format!("v2 #{i}")}),
                &["/body"],
                "room-1",
                &scope,
            )
        })
        .unwrap();
        assert_eq!(message(&mut bob_rx, "client-chat").await.0["body"], format!("v2 #{i}"));
    }
    let v2_calls = keys.calls.lock().unwrap().iter().filter(|r| r.kid == "room-1" && r.kv == Some(2)).count();
    assert_eq!(v2_calls, 1, "an unknown version costs one provider call, then it is cached");

    // A wrong key reaches the app as a typed error, never as ciphertext.
    let mallory_keys = Keys::with(&[("room-1", 3, 66)]);
    let (mallory, _mallory_rx) = start(server.port, "mallory", mallory_keys);
    mallory.with_machine(|m| m.subscribe(channel)).unwrap();
    expect(&mut bob_rx, "mallory joins", |e| matches!(e, Event::MemberAdded { .. }).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let scope = Scope::chat("room-1", "m-x").unwrap();
    mallory
        .with_machine(|m| {
            m.trigger_sealed(channel, "client-chat", json!({"body": "forged"}), &["/body"], "room-1", &scope)
        })
        .unwrap();
    let error = expect(&mut bob_rx, "undecryptable", |e| match e {
        Event::Undecryptable { error, .. } => Some(error.code()),
        Event::Message { event, .. } if event == "client-chat" => panic!("a forged message was delivered"),
        _ => None,
    })
    .await;
    assert_eq!(error, "unknown_key");

    // Leaving fires member_removed for the others.
    drop(bob);
    let removed = expect(&mut ann_rx, "member_removed", |e| match e {
        Event::MemberRemoved { member, .. } if member.user_id == "bob" => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(removed, ());
}

async fn ready(rx: &mut UnboundedReceiver<Event>) -> Delta {
    expect(rx, "document ready", |e| match e {
        Event::Document { event: DocClientEvent::Ready { view, .. }, .. } => Some(view.clone()),
        _ => None,
    })
    .await
}

/// Runs `f` on the client's open document "notes".
fn doc<T>(client: &Client, f: impl FnOnce(Document<'_>) -> Result<T, DocClientError>) -> T {
    client.with_machine(|m| f(m.document("notes").expect("open")).expect("accepted"))
}

fn insert(at: usize, text: &str) -> Delta {
    let mut d = Delta::new();
    d.retain(at, None).insert_text(text, None);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_edit_a_document_and_survive_a_server_restart() {
    let root = TempDir::new("sdk-restart");
    let port = free_port();
    let mut server = Server::start_in_on(&root.0, port, "", "", &[]);
    let keys = Keys::with(&[("doc-key", 1, 4)]);
    let (ann, mut ann_rx) = start(port, "ann", keys.clone());
    let (bob, mut bob_rx) = start(port, "bob", keys.clone());
    let config = DocConfig { snapshot_every: 5, digest_every: 2, ..DocConfig::default() };
    ann.with_machine(|m| {
        m.open_document("notes", DocOptions { presence: true, kid: "doc-key".into(), key_hint: None, config })
    })
    .unwrap();
    bob.with_machine(|m| {
        m.open_document("notes", DocOptions { presence: true, kid: "doc-key".into(), key_hint: None, config })
    })
    .unwrap();
    ready(&mut ann_rx).await;
    ready(&mut bob_rx).await;

    doc(&ann, |mut d| d.edit(insert(0, "Hello")));
    expect(&mut bob_rx, "remote change", |e| {
        matches!(e, Event::Document { event: DocClientEvent::RemoteChange { .. }, .. }).then_some(())
    })
    .await;
    for i in 0..10 {
        doc(&bob, |mut d| d.edit(insert(5, &format!("{i}"))));
        doc(&ann, |mut d| d.edit(insert(0, "<")));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let converged = |ann: &Client, bob: &Client| {
        let (a, b) = (doc(ann, |d| d.view()), doc(bob, |d| d.view()));
        (a == b && a.len() == 25).then_some(a)
    };
    let mut view = None;
    for _ in 0..200 {
        view = converged(&ann, &bob);
        if view.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(view.is_some(), "documents did not converge");

    // Undo Ann's last "<" on both sides.
    assert!(doc(&ann, |mut d| d.undo()));

    // The server restarts on the same port and data: both clients reconnect,
    // re-authorize, rejoin, and keep editing.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    expect(&mut ann_rx, "unavailable", |e| {
        matches!(e, Event::State(sealcast_core::client::ConnectionState::Unavailable { .. })).then_some(())
    })
    .await;
    doc(&bob, |mut d| d.edit(insert(0, "offline ")));
    let _server = Server::start_in_on(&root.0, port, "", "", &[]);
    ann.with_machine(|m| m.network_changed(std::time::Instant::now()));
    bob.with_machine(|m| m.network_changed(std::time::Instant::now()));
    // A rejoin continues the session: no `Ready`, the missed ops arrive as
    // changes (and the views converge below).
    for rx in [&mut ann_rx, &mut bob_rx] {
        expect(rx, "resubscribed", |e| {
            matches!(e, Event::Subscribed { channel } if channel == "presence-doc-notes").then_some(())
        })
        .await;
    }
    let mut done = false;
    for _ in 0..300 {
        let (a, b) = (doc(&ann, |d| d.view()), doc(&bob, |d| d.view()));
        if a == b && a.len() == 32 {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(done, "documents did not converge after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_op_under_a_key_version_the_provider_refuses_does_not_stop_the_document() {
    // Mallory's provider hands her a key version nobody else's has; she
    // seals an op under it. Ann's and Bob's providers refuse that version:
    // both skip her op and go on editing (they used to wait behind it for
    // ever, and Ann's own edit after it was never acknowledged).
    let root = TempDir::new("sdk-refused-key");
    let port = free_port();
    let _server = Server::start_in_on(&root.0, port, "", "", &[]);
    let config = DocConfig { snapshot_every: 5, digest_every: 2, ..DocConfig::default() };
    let options = || DocOptions { presence: true, kid: "doc-key".into(), key_hint: None, config };
    let honest = Keys::with(&[("doc-key", 1, 4)]);
    let (ann, mut ann_rx) = start(port, "ann", honest.clone());
    let (bob, mut bob_rx) = start(port, "bob", honest.clone());
    let (mallory, mut mallory_rx) =
        start(port, "mallory", Keys::with(&[("doc-key", 1, 4), ("doc-key", 999, 9)]));
    for (client, rx) in [(&ann, &mut ann_rx), (&bob, &mut bob_rx), (&mallory, &mut mallory_rx)] {
        client.with_machine(|m| m.open_document("notes", options())).unwrap();
        ready(rx).await;
    }
    doc(&mallory, |mut d| d.edit(insert(0, "junk under v999")));
    for rx in [&mut ann_rx, &mut bob_rx] {
        expect(rx, "the op skipped", |e| match e {
            Event::Document { event: DocClientEvent::Skipped { reason, user_id, .. }, .. } => {
                assert!(matches!(reason, SkipReason::KeyRefused { kv: 999, .. }), "{reason}");
                assert_eq!(user_id.as_deref(), Some("mallory"));
                Some(())
            }
            _ => None,
        })
        .await;
    }
    doc(&ann, |mut d| d.edit(insert(0, "Hello")));
    let mut converged = false;
    for _ in 0..200 {
        let (a, b) = (doc(&ann, |d| d.view()), doc(&bob, |d| d.view()));
        if a == b && a == insert(0, "Hello") && !doc(&ann, |d| Ok(d.has_pending())) {
            converged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(converged, "Ann's edit after the refused op did not reach Bob");
    let asked = honest.document_calls().iter().filter(|r| r.kv == Some(999)).count();
    assert_eq!(asked, 2, "each honest client asked once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joiners_of_a_new_document_share_one_session_key_recorded_across_a_restart() {
    // The provider issues a new key for every request without hint. Ann and
    // Bob open the new document at once; whoever claims first records the
    // session, the other switches to it; after a restart Carl is told the
    // recorded session by the server (SQLite) and asks for its key.
    let root = TempDir::new("sdk-sessions");
    let port = free_port();
    let mut server = Server::start_in_on(&root.0, port, "", "", &[]);
    let app_server = Arc::new(SessionKeys::default());
    let keys = Keys::sessions(&app_server);
    let options =
        || DocOptions { presence: true, kid: "doc-key".into(), key_hint: None, config: DocConfig::default() };
    let (ann, mut ann_rx) = start(port, "ann", keys.clone());
    let (bob, mut bob_rx) = start(port, "bob", keys.clone());
    ann.with_machine(|m| m.open_document("notes", options())).unwrap();
    bob.with_machine(|m| m.open_document("notes", options())).unwrap();
    ready(&mut ann_rx).await;
    ready(&mut bob_rx).await;
    doc(&ann, |mut d| d.edit(insert(0, "ann ")));
    doc(&bob, |mut d| d.edit(insert(0, "bob ")));
    let mut view = None;
    for _ in 0..300 {
        let (a, b) = (doc(&ann, |d| d.view()), doc(&bob, |d| d.view()));
        if a == b && a.len() == 8 {
            view = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let view = view.expect("the two clients did not converge: they seal under different keys");
    let minted = app_server.issued();
    eprintln!("sessions minted: {minted:?}; requests: {:?}", keys.document_calls());
    assert!(!minted.is_empty() && minted.len() <= 2);

    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let _server = Server::start_in_on(&root.0, port, "", "", &[]);
    let carl_keys = Keys::sessions(&app_server);
    let (carl, mut carl_rx) = start(port, "carl", carl_keys.clone());
    carl.with_machine(|m| m.open_document("notes", options())).unwrap();
    assert_eq!(ready(&mut carl_rx).await, view);
    let asked = carl_keys.document_calls();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let hint = asked[0].key_hint.clone().expect("the server names the recorded session");
    assert!(minted.contains(&hint));
    assert_eq!(app_server.issued().len(), minted.len(), "no new session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_through_rustls_with_a_private_root() {
    // The server's own TLS (tls_cert/tls_key), a certificate made here.
    let dir = TempDir::new("sdk-tls");
    let (top, cert) = common::with_self_signed_tls(&dir.0);
    let server = Server::start(&top, "");
    let port = server.port;
    let keys = Keys::with(&[("room-1", 1, 1)]);
    let url = format!("wss://localhost:{port}");
    let runtime = tokio::runtime::Handle::current();
    let connect_with = |trust: TrustRoots, roots: Vec<Vec<u8>>, user: &str| {
        let mut config = ClientConfig::new(&url, APP_KEY);
        config.trust = trust;
        config.extra_roots = roots;
        let authorizer = Arc::new(HmacAuthorizer { user_id: user.to_owned() });
        Client::start(config, authorizer, keys.clone(), &runtime).unwrap()
    };
    let connect = |roots: Vec<Vec<u8>>, user: &str| connect_with(TrustRoots::Platform, roots, user);

    // Trusting the private root: a full sealed exchange over TLS.
    let (ann, mut ann_rx) = connect(vec![cert.clone()], "ann");
    // The platform's store plus the root (ann), the bundled roots plus it (bob).
    let (bob, mut bob_rx) = connect_with(TrustRoots::Bundled, vec![cert.clone()], "bob");
    for (client, rx) in [(&ann, &mut ann_rx), (&bob, &mut bob_rx)] {
        client.with_machine(|m| m.subscribe("private-tls")).unwrap();
        subscribed(rx, "private-tls").await;
    }
    let scope = Scope::chat("room-1", "tls-1").unwrap();
    ann.with_machine(|m| {
        m.trigger_sealed(
            "private-tls",
            "client-chat",
            json!({"body": "over wss"}),
            &["/body"],
            "room-1",
            &scope,
        )
    })
    .unwrap();
    assert_eq!(message(&mut bob_rx, "client-chat").await.0["body"], "over wss");

    // Without it, the certificate is refused: never connected.
    let (_eve, mut eve_rx) = connect(Vec::new(), "eve");
    let state = expect(&mut eve_rx, "a failed TLS connect", |e| match e {
        Event::State(state @ sealcast_core::client::ConnectionState::Unavailable { .. }) => {
            Some(state.clone())
        }
        Event::State(sealcast_core::client::ConnectionState::Connected { .. }) => {
            panic!("connected to an untrusted certificate")
        }
        _ => None,
    })
    .await;
    assert!(matches!(state, sealcast_core::client::ConnectionState::Unavailable { attempt: 1, .. }));
}

/// The platform's trust store is honoured: a CA installed on the machine
/// (pointed at with `SSL_CERT_FILE`, as OpenSSL-style stores are) is
/// trusted with no `extra_roots`; the bundled roots do not know it. Each
/// case runs in a child process (the trust store is read from the
/// process's environment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_trust_store_is_honoured() {
    let dir = TempDir::new("sdk-platform-trust");
    let (top, _) = common::with_self_signed_tls(&dir.0);
    let server = Server::start(&top, "");
    let url = format!("wss://localhost:{}", server.port);
    let child = |trust: &str, store: Option<&std::path::Path>| {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args(["--ignored", "--exact", "platform_trust_child", "--test-threads=1"])
            .env("SEALCAST_CHILD_URL", &url)
            .env("SEALCAST_CHILD_TRUST", trust);
        match store {
            Some(path) => command.env("SSL_CERT_FILE", path),
            None => command.env_remove("SSL_CERT_FILE"),
        };
        command.output().unwrap().status.success()
    };
    let store = dir.0.join("tls.crt");
    assert!(child("platform", Some(&store)), "the machine's CA is trusted");
    assert!(!child("bundled", Some(&store)), "the bundled roots ignore the machine's store");
    assert!(!child("platform", None), "a certificate the machine does not trust is refused");
}

/// Run by [`the_platform_trust_store_is_honoured`]: connects to
/// `SEALCAST_CHILD_URL` with `SEALCAST_CHILD_TRUST` and no extra roots;
/// passes only when connected.
#[tokio::test]
#[ignore = "a child process of the_platform_trust_store_is_honoured"]
async fn platform_trust_child() {
    let Ok(url) = std::env::var("SEALCAST_CHILD_URL") else { return };
    let mut config = ClientConfig::new(&url, APP_KEY);
    config.trust = match std::env::var("SEALCAST_CHILD_TRUST").as_deref() {
        Ok("bundled") => TrustRoots::Bundled,
        _ => TrustRoots::Platform,
    };
    let authorizer = Arc::new(HmacAuthorizer { user_id: "child".to_owned() });
    let Ok((_client, mut rx)) =
        Client::start(config, authorizer, Keys::with(&[]), &tokio::runtime::Handle::current())
    else {
        panic!("no TLS setup (no platform trust store)");
    };
    let connected = expect(&mut rx, "connected or refused", |e| match e {
        Event::State(sealcast_core::client::ConnectionState::Connected { .. }) => Some(true),
        Event::State(sealcast_core::client::ConnectionState::Unavailable { .. }) => Some(false),
        _ => None,
    })
    .await;
    assert!(connected, "the server's certificate was not trusted");
}
