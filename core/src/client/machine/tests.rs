//! The composite client in the in-memory world ([`super::super::harness`]):
//! sealed chat, held messages and their bounds, refusals, documents that
//! converge under latency, reordering, link loss and an external transport.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::client::ClientError;
use crate::client::harness::{KeyAnswers, Rng, World};
use crate::crypto::Scope;
use crate::doc::{DocClientError, DocClientEvent, DocConfig, SkipReason};
use crate::ot::Delta;

const ROOM: &str = "presence-room";

fn messages(world: &World, node: usize, name: &str) -> Vec<Value> {
    world.nodes[node]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Message { event, data, .. } if event == name => Some(data.clone()),
            _ => None,
        })
        .collect()
}

fn undecryptable(world: &World, node: usize) -> Vec<&'static str> {
    world.nodes[node]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Undecryptable { error, .. } => Some(error.code()),
            _ => None,
        })
        .collect()
}

/// The key requests the machine reported as refused, with why.
fn key_refusals(world: &World, node: usize) -> Vec<(&KeyRequest, &KeyError)> {
    world.nodes[node]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::KeyRefused { request, error } => Some((request, error)),
            _ => None,
        })
        .collect()
}

fn chat(world: &mut World, node: usize, id: &str, body: &str) -> Result<(), CommandError> {
    let scope = Scope::chat("room", id).unwrap();
    let data = json!({"body": body, "id": id});
    world.nodes[node].machine.trigger_sealed(ROOM, "client-chat", data, &["/body"], "room", &scope)
}

/// Ann and Bob on the room, subscribed.
fn room(world: &mut World, bob_keys: &[(&str, u32, u8)]) -> (usize, usize) {
    let ann = world.add("ann", &[("room", 1, 1)]);
    let bob = world.add("bob", bob_keys);
    for node in [ann, bob] {
        world.nodes[node].machine.subscribe(ROOM).unwrap();
    }
    world.run_for(Duration::from_secs(1));
    assert!(world.nodes[ann].machine.is_subscribed(ROOM) && world.nodes[bob].machine.is_subscribed(ROOM));
    (ann, bob)
}

#[test]
fn sealed_chat_opens_end_to_end_and_the_wire_carries_envelopes() {
    let mut world = World::new(1);
    let (ann, bob) = room(&mut world, &[("room", 1, 1)]);
    chat(&mut world, ann, "m1", "canary-4f1e meet at 5").unwrap();
    world.run_for(Duration::from_secs(1));
    assert_eq!(messages(&world, bob, "client-chat")[0]["body"], "canary-4f1e meet at 5");
    assert!(world.wire.iter().any(|f| f.contains("client-chat")));
    assert!(!world.wire.iter().any(|f| f.contains("canary-4f1e")), "plaintext on the wire");
    let members: Vec<String> =
        world.nodes[bob].machine.members(ROOM).into_iter().map(|m| m.user_id).collect();
    assert_eq!(members, ["ann", "bob"]);
    // Sealed presence state arrives with the sender's id.
    world.nodes[ann].machine.send_presence_state(ROOM, "room", json!({"typing": true})).unwrap();
    world.run_for(Duration::from_secs(1));
    let from = world.nodes[bob].events.iter().find_map(|e| match e {
        Event::Message { event, user_id, data, .. } if event == PRESENCE_STATE_EVENT => {
            Some((user_id.clone(), data["state"].clone()))
        }
        _ => None,
    });
    assert_eq!(from, Some((Some("ann".into()), json!({"typing": true}))));
}

#[test]
fn a_message_waits_for_its_key_and_its_channel_keeps_order() {
    let mut world = World::new(2);
    let (ann, bob) = room(&mut world, &[("room", 1, 1)]);
    world.nodes[bob].key_answers = KeyAnswers::After(Duration::from_millis(500));
    chat(&mut world, ann, "m1", "first").unwrap();
    world.nodes[ann].machine.trigger(ROOM, "client-plain", json!({"n": 2})).unwrap();
    world.run_for(Duration::from_millis(200));
    assert!(messages(&world, bob, "client-chat").is_empty());
    assert!(messages(&world, bob, "client-plain").is_empty(), "a later event overtook a held one");
    world.run_for(Duration::from_secs(1));
    let names: Vec<&str> = world.nodes[bob]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Message { event, .. } if event.starts_with("client-") => Some(event.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["client-chat", "client-plain"]);
    assert_eq!(messages(&world, bob, "client-chat")[0]["body"], "first");
    // Rotation: Ann moves to v2; Bob asks once, then it is cached.
    world.nodes[bob].keys.insert(("room".into(), 2), [2; 32]);
    world.nodes[ann].machine.add_key("room", 2, Key::from_bytes(&[2; 32])).unwrap();
    for i in 0..3 {
        chat(&mut world, ann, &format!("r{i}"), "rotated").unwrap();
    }
    world.run_for(Duration::from_secs(2));
    assert_eq!(messages(&world, bob, "client-chat").len(), 4);
    let v2 = world.nodes[bob].key_calls.iter().filter(|r| r.kv == Some(2)).count();
    assert_eq!(v2, 1);
}

#[test]
fn a_refused_key_is_undecryptable_and_not_asked_for_again_at_once() {
    let mut world = World::new(3);
    let (_, bob) = room(&mut world, &[("room", 1, 1)]);
    let mallory = world.add("mallory", &[("room", 3, 66)]);
    world.nodes[mallory].machine.subscribe(ROOM).unwrap();
    world.run_for(Duration::from_secs(1));
    for i in 0..3 {
        chat(&mut world, mallory, &format!("x{i}"), "forged").unwrap();
    }
    world.run_for(Duration::from_secs(1));
    assert_eq!(undecryptable(&world, bob), ["unknown_key"; 3]);
    assert!(messages(&world, bob, "client-chat").is_empty());
    let v3 = world.nodes[bob].key_calls.iter().filter(|r| r.kv == Some(3)).count();
    assert_eq!(v3, 1, "a refused key is not asked for per event");
    assert!(key_refusals(&world, bob).iter().any(|(request, error)| request.kv == Some(3)
        && matches!(error, KeyError::Provider(KeyRefusal::Refused(_)))));
}

#[test]
fn an_unavailable_provider_is_no_answer_and_a_later_grant_delivers() {
    let mut world = World::new(41);
    let (ann, bob) = room(&mut world, &[]);
    world.nodes[bob].key_answers = KeyAnswers::Never;
    chat(&mut world, ann, "m1", "after the outage").unwrap();
    world.run_for(Duration::from_secs(1));
    let request = world.nodes[bob].key_calls.first().cloned().expect("bob asked for the room key");
    let now = world.now;
    let outage = Err(KeyRefusal::Unavailable("key server unreachable".into()));
    world.nodes[bob].machine.handle_key(now, &request, outage);
    world.run_for(Duration::from_secs(1));
    assert!(undecryptable(&world, bob).is_empty(), "an outage is not a refusal");
    assert!(key_refusals(&world, bob).is_empty());
    let grant = Ok(KeyGrant::new(1, Key::from_bytes(&[1; 32])));
    let now = world.now;
    world.nodes[bob].machine.handle_key(now, &request, grant);
    world.run_for(Duration::from_secs(1));
    assert_eq!(messages(&world, bob, "client-chat")[0]["body"], "after the outage");
}

#[test]
fn held_messages_are_bounded_in_count_and_in_time() {
    let mut world = World::new(4);
    let ann = world.add("ann", &[("room", 1, 1)]);
    let config = MachineConfig { max_held: 5, ..MachineConfig::default() };
    let bob = world.add_with("bob", &[], config);
    world.nodes[bob].key_answers = KeyAnswers::Never;
    for node in [ann, bob] {
        world.nodes[node].machine.subscribe(ROOM).unwrap();
    }
    world.run_for(Duration::from_secs(1));
    for i in 0..8 {
        chat(&mut world, ann, &format!("m{i}"), "waiting").unwrap();
    }
    world.run_for(Duration::from_secs(1));
    assert_eq!(undecryptable(&world, bob).len(), 3, "past the bound the oldest are given up");
    world.run_for(Duration::from_secs(31));
    assert_eq!(undecryptable(&world, bob).len(), 8, "past the key timeout the rest are given up");
    assert!(messages(&world, bob, "client-chat").is_empty());
}

#[test]
fn events_naming_ever_new_keys_cost_a_bounded_number_of_key_requests() {
    // One held event per channel (later ones on a channel wait behind it
    // without asking), so the requests are spread over many channels.
    let mut world = World::new(9);
    let keys: Vec<(String, u32, u8)> = (0..20).map(|i| (format!("k{i}"), 1, i as u8 + 1)).collect();
    let keys: Vec<(&str, u32, u8)> = keys.iter().map(|(k, v, b)| (k.as_str(), *v, *b)).collect();
    let ann = world.add("ann", &keys);
    let config = MachineConfig { max_held: 5, ..MachineConfig::default() };
    let bob = world.add_with("bob", &[], config);
    world.nodes[bob].key_answers = KeyAnswers::Never;
    let channels: Vec<String> = (0..20).map(|i| format!("private-c{i}")).collect();
    for node in [ann, bob] {
        for channel in &channels {
            world.nodes[node].machine.subscribe(channel).unwrap();
        }
    }
    world.run_for(Duration::from_secs(1));
    for (i, channel) in channels.iter().enumerate() {
        let scope = Scope::chat("room", format!("m{i}")).unwrap();
        let (data, kid) = (json!({"body": "x"}), format!("k{i}"));
        world.nodes[ann]
            .machine
            .trigger_sealed(channel, "client-chat", data, &["/body"], &kid, &scope)
            .unwrap();
        world.run_for(Duration::from_millis(50));
    }
    assert_eq!(world.nodes[bob].key_calls.len(), 5, "key requests past the bound");
    world.run_for(Duration::from_secs(31));
    assert_eq!(undecryptable(&world, bob).len(), 20);
}

#[test]
fn sealed_sends_wait_for_their_key_bounded() {
    let mut world = World::new(5);
    let (ann, bob) = room(&mut world, &[("room", 1, 1)]);
    world.nodes[ann].key_answers = KeyAnswers::After(Duration::from_millis(300));
    world.nodes[ann].machine.add_key("other", 1, Key::from_bytes(&[9; 32])).unwrap();
    chat(&mut world, ann, "m1", "later").unwrap();
    world.run_for(Duration::from_millis(100));
    assert!(messages(&world, bob, "client-chat").is_empty());
    world.run_for(Duration::from_secs(1));
    assert_eq!(messages(&world, bob, "client-chat")[0]["body"], "later");

    let config = MachineConfig { max_held: 2, ..MachineConfig::default() };
    let carl = world.add_with("carl", &[], config);
    world.nodes[carl].key_answers = KeyAnswers::Never;
    world.nodes[carl].machine.subscribe(ROOM).unwrap();
    world.run_for(Duration::from_secs(1));
    chat(&mut world, carl, "c1", "never").unwrap();
    chat(&mut world, carl, "c2", "never").unwrap();
    assert!(matches!(chat(&mut world, carl, "c3", "never"), Err(CommandError::Busy(2))));
    world.run_for(Duration::from_secs(31));
    let not_sent = world.nodes[carl]
        .events
        .iter()
        .filter(|e| matches!(e, Event::NotSent { reason: NotSentReason::KeyTimedOut { .. }, .. }))
        .count();
    assert_eq!(not_sent, 2);
}

#[test]
fn client_events_the_server_would_refuse_are_refused_locally() {
    let mut world = World::new(6);
    let (ann, _) = room(&mut world, &[("room", 1, 1)]);
    let machine = &mut world.nodes[ann].machine;
    machine.subscribe("news").unwrap();
    let scope = Scope::chat("room", "m").unwrap();
    let refused = |r: Result<(), CommandError>| match r {
        Err(CommandError::Client(e)) => e,
        other => panic!("{other:?}"),
    };
    let plain = |m: &mut ClientMachine, channel: &str, event: &str| m.trigger(channel, event, json!({}));
    assert!(matches!(refused(plain(machine, "news", "client-x")), ClientError::Invalid(_)));
    assert!(matches!(refused(plain(machine, "private-encrypted-x", "client-x")), ClientError::Invalid(_)));
    assert!(matches!(refused(plain(machine, ROOM, "chat")), ClientError::Invalid(_)));
    assert!(matches!(
        refused(plain(machine, "private-elsewhere", "client-x")),
        ClientError::NotSubscribed(_)
    ));
    let sealed =
        machine.trigger_sealed("private-elsewhere", "client-x", json!({"a": 1}), &["/a"], "k", &scope);
    assert!(matches!(refused(sealed), ClientError::NotSubscribed(_)));
    let sealed = machine.trigger_sealed(ROOM, "client-x", json!([1]), &[], "room", &scope);
    assert!(matches!(sealed, Err(CommandError::Crypto(_))));
    // Nothing was asked for or sent for the refused calls.
    world.run_for(Duration::from_millis(100));
    assert!(world.nodes[ann].key_calls.is_empty());
    assert!(!world.wire.iter().any(|f| f.contains("client-x")));
}

// ---- documents ----

const DOC: &str = "notes";

fn open(world: &mut World, node: usize) {
    let options = DocOptions {
        presence: true,
        kid: "doc".into(),
        key_hint: None,
        config: DocConfig { snapshot_every: 20, digest_every: 5, ..DocConfig::default() },
    };
    world.nodes[node].machine.open_document(DOC, options).unwrap();
}

#[test]
fn a_document_id_reserved_for_group_logs_is_refused() {
    let machine = &mut ClientMachine::new(MachineConfig::default(), Instant::now());
    let options =
        DocOptions { presence: false, kid: "doc".into(), key_hint: None, config: DocConfig::default() };
    let refused = machine.open_document("mls-private-room", options).unwrap_err();
    assert!(refused.to_string().contains("reserved"), "{refused}");
    assert!(machine.document("mls-private-room").is_err());
}

fn view(world: &mut World, node: usize) -> Delta {
    world.nodes[node].machine.document(DOC).unwrap().view().unwrap()
}

/// A random edit of a document `len` UTF-16 units long: insert (emoji
/// included), delete or format.
fn random_edit(rng: &mut Rng, len: usize) -> Delta {
    const PIECES: [&str; 6] = ["a", "xyz", "😀", "👩‍💻", "é", "\n"];
    let at = rng.below(len as u64 + 1) as usize;
    let mut delta = Delta::new();
    delta.retain(at, None);
    match rng.below(4) {
        0 if at < len => {
            delta.delete(1 + rng.below((len - at).min(3) as u64) as usize);
        }
        1 if at < len => {
            let mut bold = crate::ot::Attributes::new();
            bold.insert("bold".into(), json!(true));
            delta.retain(1 + rng.below((len - at).min(4) as u64) as usize, Some(bold));
        }
        _ => {
            delta.insert_text(PIECES[rng.below(PIECES.len() as u64) as usize], None);
        }
    }
    delta.chop()
}

fn doc_seed() -> u64 {
    let seed = std::env::var("MACHINE_DOC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| crate::crypto::ClientRng::Os.u64().unwrap_or(7));
    eprintln!("MACHINE_DOC_SEED={seed}");
    seed
}

#[test]
fn documents_converge_under_latency_reordering_link_loss_and_an_external_transport() {
    converge_randomly(doc_seed(), false);
}

/// The same with the document's key issued per session by the app's
/// provider: the first joiners race for the session, later ones ask for
/// the recorded one.
#[test]
fn documents_with_session_keys_converge_under_the_same() {
    converge_randomly(doc_seed(), true);
}

fn converge_randomly(seed: u64, session_keys: bool) {
    let mut world = World::new(seed);
    if session_keys {
        world.sessions = Some(BTreeMap::new());
    }
    let keys: &[(&str, u32, u8)] = if session_keys { &[] } else { &[("doc", 1, 4)] };
    let mut nodes = vec![world.add("ann", keys), world.add("bob", keys), world.add_external("eve", keys)];
    for (i, node) in nodes.iter().enumerate() {
        world.nodes[*node].latency = Duration::from_millis(5 + 30 * i as u64);
        open(&mut world, *node);
    }
    world.run_for(Duration::from_secs(1));
    let mut rng = Rng::new(seed ^ 0x5eed);
    let (mut applied, mut refused) = (0, 0);
    for step in 0..600 {
        if step == 300 {
            // A late joiner, over the external transport.
            let late = world.add_external("lou", keys);
            open(&mut world, late);
            nodes.push(late);
        }
        let node = nodes[rng.below(nodes.len() as u64) as usize];
        if rng.chance(3) {
            world.cut(node);
        }
        if let Ok(mut doc) = world.nodes[node].machine.document(DOC)
            && let Ok(view) = doc.view()
        {
            match doc.edit(random_edit(&mut rng, view.len())) {
                Ok(_) => applied += 1,
                // A cut through a surrogate pair; a diverged session
                // (the assertions below catch that).
                Err(_) => refused += 1,
            }
        }
        world.run_for(Duration::from_millis(rng.below(40)));
    }
    world.run_for(Duration::from_secs(60));
    eprintln!("{applied} edits applied, {refused} refused locally");
    assert!(applied > 300, "too few edits applied: {applied}");
    let first = view(&mut world, nodes[0]);
    for &node in &nodes {
        let stopped = world.nodes[node]
            .events
            .iter()
            .find(|e| matches!(e, Event::Document { event: DocClientEvent::Diverged { .. }, .. }));
        assert!(stopped.is_none(), "node {node}: {stopped:?} (seed {seed})");
        assert_eq!(view(&mut world, node), first, "node {node} differs (seed {seed})");
        assert!(!world.nodes[node].machine.document(DOC).unwrap().has_pending());
    }
    assert!(first.len() > 10);
}

#[test]
fn a_document_waits_for_its_key_and_a_refused_key_closes_it() {
    let mut world = World::new(8);
    let ann = world.add("ann", &[("doc", 1, 4)]);
    world.nodes[ann].key_answers = KeyAnswers::After(Duration::from_millis(300));
    open(&mut world, ann);
    let mut early = Delta::new();
    early.insert_text("too early", None);
    assert!(matches!(
        world.nodes[ann].machine.document(DOC).unwrap().edit(early),
        Err(DocClientError::NotReady)
    ));
    world.run_for(Duration::from_secs(1));
    let request = &world.nodes[ann].key_calls[0];
    assert_eq!((request.doc_id.as_deref(), request.kv, request.key_hint.as_deref()), (Some(DOC), None, None));
    let mut edit = Delta::new();
    edit.insert_text("hello", None);
    world.nodes[ann].machine.document(DOC).unwrap().edit(edit).unwrap();
    world.run_for(Duration::from_secs(1));
    assert!(!world.nodes[ann].machine.document(DOC).unwrap().has_pending());

    let bob = world.add("bob", &[]);
    open(&mut world, bob);
    world.run_for(Duration::from_secs(1));
    assert!(matches!(world.nodes[bob].machine.document(DOC), Err(CommandError::NoDocument(_))));
    assert!(!world.nodes[bob].machine.is_subscribed("presence-doc-notes"));
    assert!(
        key_refusals(&world, bob).iter().any(|(request, _)| request.doc_id.is_some() && request.kv.is_none())
    );
    // The document's own events say so too (an editor showing "loading"
    // would otherwise wait forever).
    assert!(
        world.nodes[bob]
            .events
            .iter()
            .any(|e| matches!(e, Event::Document { event: DocClientEvent::KeyNeeded { kv: None, .. }, .. }))
    );
}

#[test]
fn an_op_under_a_key_the_app_refuses_is_skipped_and_the_document_goes_on() {
    // Mallory's provider hands her a key version nobody else's has, so
    // she seals under it. Every other client asks once, is refused, skips
    // the op and goes on (before, they waited for ever behind it).
    let mut world = World::new(21);
    let mallory = world.add("mallory", &[("doc", 1, 4), ("doc", 999, 9)]);
    open(&mut world, mallory);
    world.run_for(Duration::from_secs(1));
    let (bob, carl) = (world.add("bob", &[("doc", 1, 4)]), world.add("carl", &[("doc", 1, 4)]));
    for node in [bob, carl] {
        open(&mut world, node);
    }
    world.run_for(Duration::from_secs(1));
    let mut junk = Delta::new();
    junk.insert_text("under a made-up key", None);
    world.nodes[mallory].machine.document(DOC).unwrap().edit(junk).unwrap();
    world.run_for(Duration::from_secs(1));
    let mut edit = Delta::new();
    edit.insert_text("bob goes on", None);
    world.nodes[bob].machine.document(DOC).unwrap().edit(edit).unwrap();
    world.run_for(Duration::from_secs(1));
    for node in [bob, carl] {
        assert!(!world.nodes[node].machine.document(DOC).unwrap().has_pending());
        let asked = world.nodes[node].key_calls.iter().filter(|r| r.kv == Some(999)).count();
        assert_eq!(asked, 1, "asked once");
        assert!(world.nodes[node].events.iter().any(|e| matches!(
            e,
            Event::Document {
                event: DocClientEvent::Skipped { reason: SkipReason::KeyRefused { .. }, .. },
                ..
            }
        )));
        let text = serde_json::to_string(&view(&mut world, node).to_json()).unwrap();
        assert!(text.contains("bob goes on") && !text.contains("made-up"), "{text}");
    }
    assert_eq!(view(&mut world, bob), view(&mut world, carl));
}

#[test]
fn a_document_asks_again_when_a_key_request_goes_unanswered() {
    // Ann seals under version 2; Bob's provider does not answer the first
    // request (and lacks the key until later): after `key_timeout` (30 s)
    // the document asks again instead of waiting for ever.
    let run = |wait: Duration| {
        let mut world = World::new(22);
        let ann = world.add("ann", &[("doc", 1, 4), ("doc", 2, 5)]);
        open(&mut world, ann);
        world.run_for(Duration::from_secs(1));
        let bob = world.add("bob", &[("doc", 1, 4)]);
        open(&mut world, bob);
        world.run_for(Duration::from_secs(1));
        world.nodes[bob].key_answers = KeyAnswers::Never;
        let mut edit = Delta::new();
        edit.insert_text("sealed under v2", None);
        world.nodes[ann].machine.document(DOC).unwrap().edit(edit).unwrap();
        world.run_for(Duration::from_secs(5));
        world.nodes[bob].keys.insert(("doc".into(), 2), [5; 32]);
        world.nodes[bob].key_answers = KeyAnswers::Now;
        world.run_for(wait);
        let asked = world.nodes[bob].key_calls.iter().filter(|r| r.kv == Some(2)).count();
        (asked, view(&mut world, bob) == view(&mut world, ann))
    };
    assert_eq!(run(Duration::from_secs(20)), (1, false), "not asked again before 30 s");
    assert_eq!(run(Duration::from_secs(30)), (2, true), "asked again, and caught up");
}

#[test]
fn concurrent_joiners_of_a_new_document_settle_on_one_session_key() {
    // Both open the new document at once: both are told "no session yet",
    // both get a new session key from the provider, both claim it; the
    // server records the first claim and the other client switches to it.
    // (Before sessions were recorded, each sealed under its own key and
    // skipped the other's ops as undecryptable.)
    let mut world = World::new(11);
    world.sessions = Some(BTreeMap::new());
    let (ann, bob) = (world.add("ann", &[]), world.add("bob", &[]));
    world.nodes[bob].latency = Duration::from_millis(35);
    open(&mut world, ann);
    open(&mut world, bob);
    world.run_for(Duration::from_secs(2));
    let minted = world.sessions.as_ref().unwrap().len();
    assert_eq!(minted, 2, "both asked for a new session key: {:?}", world.nodes[bob].key_calls);
    let recorded =
        sealcast_sequencer::DocStore::key_hint(&world.store, &sealcast_sequencer::DocId::new("app", DOC))
            .unwrap();
    let recorded = recorded.expect("a session hint is recorded");
    let loser = if world.nodes[ann].key_calls.len() > 1 { ann } else { bob };
    let last = world.nodes[loser].key_calls.last().unwrap();
    assert_eq!(last.key_hint.as_deref(), Some(recorded.as_str()), "the loser asks for the recorded session");
    for (node, words) in [(ann, "ann was here. "), (bob, "bob too. ")] {
        let mut edit = Delta::new();
        edit.insert_text(words, None);
        world.nodes[node].machine.document(DOC).unwrap().edit(edit).unwrap();
    }
    world.run_for(Duration::from_secs(2));
    let seen = view(&mut world, ann);
    assert_eq!(seen, view(&mut world, bob));
    let text = serde_json::to_string(&seen.to_json()).unwrap();
    assert!(text.contains("ann was here.") && text.contains("bob too."), "{text}");
    for node in [ann, bob] {
        assert!(!world.nodes[node].events.iter().any(|e| matches!(
            e,
            Event::Document { event: DocClientEvent::Skipped { .. } | DocClientEvent::Diverged { .. }, .. }
        )));
    }
    // A later joiner is told the session at once: one request, no new key.
    let carl = world.add("carl", &[]);
    open(&mut world, carl);
    world.run_for(Duration::from_secs(2));
    assert_eq!(world.nodes[carl].key_calls.len(), 1);
    assert_eq!(world.nodes[carl].key_calls[0].key_hint.as_deref(), Some(recorded.as_str()));
    assert_eq!(world.sessions.as_ref().unwrap().len(), minted);
    assert_eq!(view(&mut world, carl), seen);
}

/// One session on the wire: sealed chat and presence state, then a shared
/// document edited by both; every frame relayed, in order.
fn recorded_session(seeds: [Option<u64>; 2]) -> Vec<String> {
    let mut world = World::new(3);
    let config = |seed| MachineConfig { test_rng_seed: seed, ..MachineConfig::default() };
    let ann = world.add_with("ann", &[("room", 1, 1), ("doc", 1, 7)], config(seeds[0]));
    let bob = world.add_with("bob", &[("room", 1, 1), ("doc", 1, 7)], config(seeds[1]));
    for node in [ann, bob] {
        world.nodes[node].machine.subscribe(ROOM).unwrap();
    }
    world.run_for(Duration::from_secs(1));
    chat(&mut world, ann, "m1", "hello").unwrap();
    world.nodes[bob].machine.send_presence_state(ROOM, "room", json!({"typing": true})).unwrap();
    for node in [ann, bob] {
        open(&mut world, node);
    }
    world.run_for(Duration::from_secs(1));
    for (node, text) in [(ann, "ann "), (bob, "bob ")] {
        let mut change = Delta::new();
        change.insert_text(text, None);
        world.nodes[node].machine.document(DOC).unwrap().edit(change).unwrap();
    }
    world.run_for(Duration::from_secs(2));
    assert_eq!(view(&mut world, ann), view(&mut world, bob));
    assert!(!messages(&world, bob, "client-chat").is_empty());
    world.wire.clone()
}

#[test]
fn a_seeded_machine_reproduces_every_byte_it_sends() {
    let seeded = recorded_session([Some(11), Some(12)]);
    assert!(seeded.iter().any(|frame| frame.contains("\"iv\"")), "envelopes were sent");
    assert_eq!(seeded, recorded_session([Some(11), Some(12)]), "same seeds, same bytes");
    // Not a tautology: other seeds, or the OS's randomness, change the
    // nonces and op ids.
    assert_ne!(seeded, recorded_session([Some(11), Some(13)]));
    assert_ne!(recorded_session([None, None]), recorded_session([None, None]));
}

#[test]
fn scrolling_back_opens_a_page_after_its_missing_key_and_refusals_reach_the_app() {
    use crate::client::sealed::seal_event;
    use crate::crypto::{Key, KeyRing};
    use crate::protocol::history::{self, HistoryErrorCode};

    let t0 = Instant::now();
    let channel = "private-chat";
    let mut m = ClientMachine::external(MachineConfig::default(), t0);
    m.subscribe(channel).unwrap();
    while m.poll_transmit().is_some() {}
    m.handle_subscribed(t0, channel);
    while m.poll_event().is_some() {}
    assert!(m.read_history("private-other", None, 10).is_err(), "not subscribed");

    let id = m.read_history(channel, Some(3), 50).unwrap();
    match m.poll_transmit() {
        Some(Transmit::Trigger { channel: c, event, data }) => {
            assert_eq!((c.as_str(), event.as_str()), (channel, history::READ));
            assert_eq!(data, json!({"request_id": id, "before": 3, "limit": 50}));
        }
        other => panic!("{other:?}"),
    }
    // An old message sealed under a version the ring lacks, and a plain one.
    let mut ring = KeyRing::single("room", 2, crate::crypto::Key::from_bytes(&[2; 32])).unwrap();
    let mut sealed = json!({"body": "old news"});
    seal_event(&mut sealed, &["/body"], &mut ring, "room", &Scope::chat("r", "m").unwrap()).unwrap();
    let page = json!({"request_id": id, "epoch": "e", "head": 9, "more": true, "events": [
        {"offset": 1, "event": "client-chat", "data": sealed, "user_id": "ann", "time_ms": 5},
        {"offset": 2, "event": "news", "data": "{\"x\":1}", "time_ms": 6},
    ]});
    m.handle_channel_event(t0, channel, history::PAGE, page, None);
    let request = match m.poll_event() {
        Some(Event::NeedKey(request)) => request,
        other => panic!("the page waits for its key first: {other:?}"),
    };
    assert_eq!((request.kid.as_str(), request.kv), ("room", Some(2)));
    assert!(m.poll_event().is_none());
    m.handle_key(t0, &request, Ok(KeyGrant::new(2, Key::from_bytes(&[2; 32]))));
    match m.poll_event() {
        Some(Event::History { channel: c, request_id, result: Ok(read) }) => {
            assert_eq!((c.as_str(), request_id.as_str(), read.more), (channel, id.as_str(), true));
            let opened: Vec<_> = read
                .items
                .iter()
                .map(|item| (item.offset, item.content.as_ref().map(|(data, _)| data.clone()).unwrap()))
                .collect();
            assert_eq!(opened[0].0, 1);
            assert_eq!(opened[0].1["body"], "old news");
            assert_eq!(opened[1], (2, json!({"x": 1})));
            assert_eq!(read.items[0].user_id.as_deref(), Some("ann"));
        }
        other => panic!("{other:?}"),
    }

    // A refusal is the app's too; a page under a refused version is
    // delivered with that event undecryptable, never ciphertext.
    let id = m.read_history(channel, None, 10).unwrap();
    let refusal = json!({"request_id": id, "code": "rate_limited", "message": "slow"});
    m.handle_channel_event(t0, channel, history::ERROR, refusal, None);
    while m.poll_transmit().is_some() {}
    match m.poll_event() {
        Some(Event::History { result: Err(error), .. }) => {
            assert_eq!(error.code, HistoryErrorCode::RateLimited)
        }
        other => panic!("{other:?}"),
    }
    let id = m.read_history(channel, None, 10).unwrap();
    let mut v9 = KeyRing::single("room", 9, Key::from_bytes(&[9; 32])).unwrap();
    let mut sealed = json!({"body": "secret"});
    seal_event(&mut sealed, &["/body"], &mut v9, "room", &Scope::chat("r", "n").unwrap()).unwrap();
    let page = json!({"request_id": id, "epoch": "e", "head": 9, "more": false, "events": [
        {"offset": 7, "event": "client-chat", "data": sealed, "time_ms": 5},
    ]});
    m.handle_channel_event(t0, channel, history::PAGE, page, None);
    let Some(Event::NeedKey(request)) = m.poll_event() else { panic!("asks for v9") };
    m.handle_key(t0, &request, Err(KeyRefusal::Refused("no".into())));
    let events: Vec<Event> = std::iter::from_fn(|| m.poll_event()).collect();
    let read = events
        .iter()
        .find_map(|e| match e {
            Event::History { result: Ok(read), .. } => Some(read),
            _ => None,
        })
        .expect("the page");
    assert!(
        matches!(&read.items[0].content, Err(error) if error.code() == "unknown_key"),
        "{:?}",
        read.items[0].content
    );
}
