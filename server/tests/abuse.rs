//! Hostile clients against the real binary: every budget holds, the
//! attacker is refused or closed with the right code, and another app's
//! client on the same server is still served while the attack runs.
//!
//! Each test starts a server with a victim app beside the attacked one.
//! The victim sends client events (or document ops) at a steady rate and
//! measures its p99 before and during the attack; both are printed. The
//! test asserts only what cannot flake on a loaded 2-core machine: every
//! victim request answered, and its p99 under [`VICTIM_P99_BOUND`], far
//! above scheduler noise (baselines of 0.5–4 ms, 5–10 ms under an attack
//! that is only rate limited) and far below the harms the limits prevent
//! (a 229 MiB join frame, SQLite held for 700 ms, a writer stuck for
//! seconds). How well the victim is isolated — during ÷ baseline — is a
//! benchmark, not a test: `scripts/bench/isolation.sh` runs these tests
//! with `SEALCAST_ISOLATION_STRICT=1` (the old 2× bound) over several
//! rounds and its figures go in docs/benchmarks.md ("Isolation under
//! attack").

mod common;

use std::io::{Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::time::{Duration, Instant};

use common::{APP_ID, APP_KEY, APP_SECRET, Client, Seen, Server};
use sealcast_core::protocol::auth;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const VICTIM: &str = "\n[[apps]]\nid = \"victim\"\nkey = \"victim-key\"\nsecret = \"victim-secret\"\nclient_events_per_second = 1000\ndoc_ops_per_second = 1000\n";

/// The tests of this file run one at a time: each measures a victim's
/// latency, which another test's attack on the same 2 cores would skew.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts a server with the attacked app's `extra` config and the victim app.
fn server(top: &str, extra: &str) -> Server {
    Server::start_with_env(top, &format!("{extra}{VICTIM}"), &[("TEST_RUST_LOG", "info")])
}

/// Two victim connections on `private-v`; events from one to the other.
struct Victim {
    from: Client,
    to: Client,
}

/// A victim-app connection subscribed to `channel` (low latency: no Nagle).
async fn victim_client(server: &Server, channel: &str) -> Client {
    let mut client = Client::connect(&server.ws_url("victim-key", "protocol=7")).await;
    // Without it, Nagle waits for delayed ACKs: 40 ms "latencies".
    if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = client.ws.get_ref() {
        tcp.set_nodelay(true).unwrap();
    }
    let established = client.expect_event("pusher:connection_established").await;
    let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    client.socket_id = data["socket_id"].as_str().unwrap().to_owned();
    let auth = auth::channel_auth("victim-key", "victim-secret", &client.socket_id, channel, None);
    client.subscribe(channel, Some(&auth), None).await;
    client.expect_event("pusher_internal:subscription_succeeded").await;
    client
}

impl Victim {
    async fn connect(server: &Server) -> Victim {
        let mut pair = Vec::new();
        for _ in 0..2 {
            pair.push(victim_client(server, "private-v").await);
        }
        let to = pair.pop().unwrap();
        Victim { from: pair.pop().unwrap(), to }
    }

    /// p99 delivery latency of `count` events sent 5 ms apart.
    async fn p99(&mut self, count: usize) -> Duration {
        let mut latencies = Vec::with_capacity(count);
        for n in 0..count {
            let sent = Instant::now();
            let frame = json!({"event": "client-ping", "channel": "private-v", "data": {"n": n}});
            self.from.send(frame).await;
            loop {
                match self.to.next_within(Duration::from_secs(5)).await {
                    Some(Seen::Frame(f)) if f["event"] == "client-ping" && f["data"]["n"] == n => break,
                    Some(Seen::Frame(_)) => {}
                    other => panic!("victim lost its event {n}: {other:?}"),
                }
            }
            latencies.push(sent.elapsed());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.sort();
        latencies[(count * 99 / 100).min(count - 1)]
    }
}

/// Something whose latency is measured before and during an attack.
trait Probe {
    /// p99 latency over `count` samples.
    async fn p99(&mut self, count: usize) -> Duration;
}

impl Probe for Victim {
    async fn p99(&mut self, count: usize) -> Duration {
        Victim::p99(self, count).await
    }
}

/// A victim app's document author: p99 from `doc-submit` to its ack.
struct DocVictim {
    client: Client,
    seq: u64,
}

impl DocVictim {
    async fn connect(server: &Server) -> DocVictim {
        DocVictim { client: victim_client(server, "private-doc-victim").await, seq: 0 }
    }
}

impl Probe for DocVictim {
    async fn p99(&mut self, count: usize) -> Duration {
        let mut latencies = Vec::with_capacity(count);
        for _ in 0..count {
            let op_id = format!("v-{}", self.seq + 1);
            let submit = json!({"event": "sealcast:doc-submit", "channel": "private-doc-victim",
                "data": {"base": self.seq, "op_id": op_id, "payload": "opaque"}});
            let sent = Instant::now();
            self.client.send(submit).await;
            let ack = self.client.expect_event("sealcast_internal:doc-ack").await;
            self.seq = ack["data"]["seq"].as_u64().unwrap();
            latencies.push(sent.elapsed());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.sort();
        latencies[(count * 99 / 100).min(count - 1)]
    }
}

/// Lowers the calling thread's CPU priority to nice 19 (on Linux nice is
/// per thread).
fn lowest_priority() {
    // SAFETY: setpriority has no memory effects; 0 names the calling thread.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
}

/// The victim's p99 the tests require during an attack: far above any
/// scheduling noise on a 2-core CI machine, far below a tenant holding a
/// shared resource (hundreds of milliseconds to seconds).
const VICTIM_P99_BOUND: Duration = Duration::from_millis(250);

/// Measures the victim's baseline, runs `attack` while measuring again,
/// prints both (the isolation benchmark reads these lines) and checks the
/// bound: [`VICTIM_P99_BOUND`], or with `SEALCAST_ISOLATION_STRICT=1` twice
/// the baseline with a 10 ms floor. Returns what the attack returned.
async fn under_attack<T: Send + 'static>(
    name: &str,
    victim: &mut impl Probe,
    attack: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let baseline = victim.p99(200).await;
    // The attacker is another client: its own threads and runtime, so its
    // work does not delay the victim's measurement inside this process, at
    // the lowest CPU priority: a real attacker's client runs on its own
    // machine, and what is measured is the server's share, not this
    // process's cost of reading the attack's answers.
    let attack = std::thread::spawn(move || {
        lowest_priority();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .on_thread_start(lowest_priority)
            .enable_all()
            .build();
        runtime.expect("attacker runtime").block_on(attack)
    });
    // Let the attack get going.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let strict = std::env::var("SEALCAST_ISOLATION_STRICT").is_ok_and(|v| v == "1");
    let bound = if strict { (baseline * 2).max(Duration::from_millis(10)) } else { VICTIM_P99_BOUND };
    // Every probe waits for each answer: a victim left unserved fails here
    // (the client's read timeout), whatever the bound.
    let during = victim.p99(200).await;
    let ran_throughout = !attack.is_finished();
    println!(
        "isolation {name}: victim p99 baseline {:.2} ms, during the attack {:.2} ms (attack ran throughout: {ran_throughout})",
        baseline.as_secs_f64() * 1e3,
        during.as_secs_f64() * 1e3,
    );
    let result =
        tokio::task::spawn_blocking(move || attack.join()).await.expect("join").expect("attack thread");
    assert!(during <= bound, "{name}: victim p99 {during:?} over {bound:?} (baseline {baseline:?})");
    result
}

/// A raw WebSocket client: frames as bytes, for what tungstenite will not send.
struct Raw {
    stream: TcpStream,
    read: Vec<u8>,
    /// The server closed the TCP connection (as opposed to a read timeout).
    eof: bool,
}

/// A client frame (masked unless `masked` is false).
fn frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    let bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(bit | n as u8),
        n if n <= 0xFFFF => {
            out.push(bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

impl Raw {
    /// A raw connection and its socket id (from `connection_established`).
    async fn established(port: u16) -> (Raw, String) {
        let mut raw = Raw::connect(port).await;
        let (_, established) = raw.next().await.unwrap();
        let established: Value = serde_json::from_slice(&established).unwrap();
        let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
        let socket_id = data["socket_id"].as_str().unwrap().to_owned();
        (raw, socket_id)
    }

    async fn connect(port: u16) -> Raw {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let request = format!(
            "GET /app/{APP_KEY}?protocol=7 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Raw { stream, read: Vec::new(), eof: false };
        while !raw.read.windows(4).any(|w| w == b"\r\n\r\n") {
            raw.fill().await;
        }
        let end = raw.read.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(raw.read.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&raw.read));
        raw.read.drain(..end);
        raw
    }

    async fn fill(&mut self) -> bool {
        let mut buf = [0u8; 65536];
        match tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                self.read.extend_from_slice(&buf[..n]);
                true
            }
            Ok(_) => {
                self.eof = true;
                false
            }
            Err(_) => false,
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// The next server frame: (opcode, payload); `None` at EOF.
    async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.read.len() >= 2 {
                let (opcode, short) = (self.read[0] & 0x0F, usize::from(self.read[1] & 0x7F));
                let (len, head) = match short {
                    126 if self.read.len() >= 4 => {
                        (usize::from(u16::from_be_bytes([self.read[2], self.read[3]])), 4)
                    }
                    127 if self.read.len() >= 10 => {
                        (u64::from_be_bytes(self.read[2..10].try_into().unwrap()) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n, 2),
                };
                if len != usize::MAX && self.read.len() >= head + len {
                    let payload = self.read[head..head + len].to_vec();
                    self.read.drain(..head + len);
                    return Some((opcode, payload));
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Reads until the server's close frame; its code, or 1006 (closed
    /// abnormally) when the server dropped the connection without one — as
    /// it does to a client that would not read even that. `None`: nothing
    /// within the read timeout.
    async fn close_code(&mut self) -> Option<u16> {
        while let Some((opcode, payload)) = self.next().await {
            if opcode == 0x8 {
                return payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            }
        }
        self.eof.then_some(1006)
    }
}

fn rss_kb(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap()
}

/// Item 1: fragments add up to the message limit; the connection is closed
/// with 1009 from a frame header, before its payload is buffered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_messages_are_bounded_in_total() {
    let _serial = SERIAL.lock().await;
    let server = server("", "");
    let mut victim = Victim::connect(&server).await;
    let port = server.port;
    let rss_before = rss_kb(&server);
    let codes = under_attack("fragments", &mut victim, async move {
        let mut codes = Vec::new();
        for _ in 0..20 {
            let mut raw = Raw::connect(port).await;
            let chunk = vec![b' '; 200 * 1024];
            raw.send(&frame(false, 0x1, &chunk, true)).await;
            // 200 KiB more would make 400 KiB > 256 KiB: refused at the header.
            raw.send(&frame(false, 0x0, &chunk, true)).await;
            codes.push(raw.close_code().await);
            // A header declaring 512 MiB is refused without reading on.
            let mut raw = Raw::connect(port).await;
            let mut head = vec![0x81, 0x80 | 127];
            head.extend_from_slice(&(512u64 << 20).to_be_bytes());
            head.extend_from_slice(&[1, 2, 3, 4]);
            raw.send(&head).await;
            codes.push(raw.close_code().await);
        }
        codes
    })
    .await;
    assert!(codes.iter().all(|c| *c == Some(1009)), "{codes:?}");
    let rss_after = rss_kb(&server);
    println!("fragments: server RSS {rss_before} kB before, {rss_after} kB after 40 oversized messages");
    assert!(rss_after < rss_before + 32 * 1024, "RSS grew from {rss_before} to {rss_after} kB");
}

/// A client whose input is still unread when it is closed gets the close
/// frame and its code (a socket closed with unread input resets, and the
/// reset could discard them); one that keeps sending afterwards is read
/// for `close_linger_ms` at most, then dropped.
#[tokio::test]
async fn a_closed_client_gets_its_code_and_is_drained_for_a_bounded_time() {
    let _serial = SERIAL.lock().await;
    let server = server("close_linger_ms = 500\n", "");
    let mut raw = Raw::connect(server.port).await;
    // The violation and 64 KiB behind it, in one write: unread when the
    // server closes.
    let mut bytes = frame(true, 0x1, b"{\"event\":\"pusher:ping\"}", false);
    bytes.extend(std::iter::repeat_n(0u8, 64 * 1024));
    raw.send(&bytes).await;
    assert_eq!(raw.close_code().await, Some(1002));
    // Keep sending: the server stops reading after its linger and closes.
    let started = std::time::Instant::now();
    let dropped = loop {
        // A server that stopped reading without closing would block the
        // write: bounded, so that fails the test instead of hanging it.
        if let Ok(false) = tokio::time::timeout(Duration::from_secs(1), raw.send(&[0u8; 4096])).await {
            break true;
        }
        if started.elapsed() > Duration::from_secs(10) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(dropped, "the server read a closed client's input for over 10 s");
    assert!(started.elapsed() < Duration::from_secs(5), "dropped after {:?}", started.elapsed());
}

/// Item 9: RFC 6455 violations close with their codes.
#[tokio::test]
async fn protocol_violations_close_with_their_codes() {
    let _serial = SERIAL.lock().await;
    let server = server("", "");
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked frame", frame(true, 0x1, b"{\"event\":\"pusher:ping\"}", false), 1002),
        ("invalid UTF-8", frame(true, 0x1, b"{\"event\":\"\xff\"}", true), 1007),
        ("continuation first", frame(true, 0x0, b"{}", true), 1002),
        ("fragmented ping", frame(false, 0x9, b"", true), 1002),
        ("reserved opcode", frame(true, 0x3, b"", true), 1002),
    ];
    for (name, bytes, code) in cases {
        let mut raw = Raw::connect(server.port).await;
        raw.send(&bytes).await;
        assert_eq!(raw.close_code().await, Some(code), "{name}");
    }
    // A well-formed ping still gets its pong.
    let mut raw = Raw::connect(server.port).await;
    raw.send(&frame(true, 0x9, b"hi", true)).await;
    loop {
        let (opcode, payload) = raw.next().await.expect("pong");
        if opcode == 0xA {
            assert_eq!(payload, b"hi");
            break;
        }
    }
}

/// Subscribes `client` to a private channel of the attacked app.
async fn join_private(client: &mut Client, channel: &str) {
    client.join(channel, None).await;
}

/// Sends `count` copies of `frame` as fast as possible; returns the
/// refusals (4301 errors or doc `rate_limited`) and the close code.
async fn flood(client: &mut Client, frame: &Value, count: usize) -> (usize, Option<u16>) {
    let text = frame.to_string();
    for _ in 0..count {
        if !client.try_send_raw(&text).await {
            break;
        }
    }
    let (mut refused, mut code) = (0, None);
    loop {
        match client.next_within(Duration::from_secs(3)).await {
            Some(Seen::Frame(f)) => {
                let limited = f["event"] == "pusher:error" && f["data"]["code"] == 4301
                    || f["event"] == "sealcast_internal:doc-error" && f["data"]["code"] == "rate_limited"
                    || f["event"] == "sealcast_internal:history-error" && f["data"]["code"] == "rate_limited"
                    || f["event"] == "pusher:subscription_error";
                refused += usize::from(limited);
            }
            Some(Seen::Closed(c)) => {
                code = c;
                break;
            }
            None => break,
        }
    }
    (refused, code)
}

/// Items 5 and the per-kind buckets: every frame kind a client can send is
/// limited; refusals are 4301 (documents: `rate_limited`), and a client
/// that keeps going is closed with 4301.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_kind_is_rate_limited() {
    let _serial = SERIAL.lock().await;
    let server = server("", "enable_client_messages = true\n");
    let mut victim = Victim::connect(&server).await;
    let port = server.port;
    let results = under_attack("frame floods", &mut victim, async move {
        let doc = "private-doc-flood";
        let kinds: Vec<(&str, Value)> = vec![
            ("ping", json!({"event": "pusher:ping", "data": {}})),
            ("subscribe", json!({"event": "pusher:subscribe", "data": {"channel": "public-x"}})),
            // Failed authorizations cost strikes (a forged token costs CPU to check).
            ("forged subscribe", json!({"event": "pusher:subscribe", "data": {"channel": "private-y", "auth": format!("{APP_KEY}:forged")}})),
            ("unsubscribe", json!({"event": "pusher:unsubscribe", "data": {"channel": "public-x"}})),
            ("signin", json!({"event": "pusher:signin", "data": {"auth": "k:bad", "user_data": "{\"id\":\"u\"}"}})),
            ("client event", json!({"event": "client-x", "channel": "private-flood", "data": {}})),
            ("doc-digest", json!({"event": "sealcast:doc-digest", "channel": doc, "data": {"seq": 0, "kv": 1, "digest": "d"}})),
            ("doc-join", json!({"event": "sealcast:doc-join", "channel": doc, "data": {}})),
            ("doc-snapshot", json!({"event": "sealcast:doc-snapshot", "channel": doc, "data": {"seq": 0, "payload": "p"}})),
            ("doc-submit", json!({"event": "sealcast:doc-submit", "channel": doc, "data": {"base": 0, "op_id": "o", "payload": "p"}})),
            ("history read", json!({"event": "sealcast:history", "channel": "private-flood", "data": {"limit": 1000}})),
            ("unknown", json!({"event": "whatever", "data": {}})),
        ];
        let mut results = Vec::new();
        for (name, frame) in kinds {
            let url = format!("ws://127.0.0.1:{port}/app/{APP_KEY}?protocol=7");
            let mut client = Client::connect(&url).await;
            let established = client.expect_event("pusher:connection_established").await;
            let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
            client.socket_id = data["socket_id"].as_str().unwrap().to_owned();
            join_private(&mut client, "private-flood").await;
            join_private(&mut client, doc).await;
            let (refused, code) = flood(&mut client, &frame, 400).await;
            results.push((name, refused, code));
        }
        results
    })
    .await;
    for (name, refused, code) in results {
        println!("{name}: {refused} refusals, closed with {code:?}");
        assert!(refused > 0, "{name}: never refused");
        assert_eq!(code, Some(4301), "{name}: not closed for abuse");
    }
}

/// Malformed frames: one log line per window, not one per frame.
#[tokio::test]
async fn malformed_floods_are_logged_in_aggregate() {
    let _serial = SERIAL.lock().await;
    let server = server("", "");
    for _ in 0..10 {
        let mut client = server.client().await;
        let _ = flood(&mut client, &json!("not an object"), 200).await;
    }
    let lines = server.stderr().lines().filter(|l| l.contains("malformed frame")).count();
    println!("malformed: {lines} log lines for 2,000 malformed frames");
    assert!((1..=2).contains(&lines), "{lines} lines:\n{}", server.stderr());
}

/// Item 7: subscriptions per connection and channels per app are capped.
#[tokio::test]
async fn subscriptions_and_channels_are_capped() {
    let _serial = SERIAL.lock().await;
    let server = server("", "max_subscriptions_per_connection = 50\nmax_channels = 80\n");
    let mut first = server.client().await;
    let mut refused = 0;
    for n in 0..60 {
        first.subscribe(&format!("c-{n}"), None, None).await;
        let reply = first
            .expect_event_any(&["pusher_internal:subscription_succeeded", "pusher:subscription_error"])
            .await;
        if reply["event"] == "pusher:subscription_error" {
            assert_eq!(reply["data"]["type"], "LimitReached", "{reply}");
            refused += 1;
        }
    }
    assert_eq!(refused, 10, "the 51st to 60th subscriptions are refused");
    let mut second = server.client().await;
    let mut refused = 0;
    for n in 40..80 {
        second.subscribe(&format!("c-{n}"), None, None).await;
        let reply = second
            .expect_event_any(&["pusher_internal:subscription_succeeded", "pusher:subscription_error"])
            .await;
        refused += usize::from(reply["event"] == "pusher:subscription_error");
    }
    // c-40..c-49 exist; c-50..c-79 are new: 50 + 30 = 80 channels fit.
    assert_eq!(refused, 0);
    second.subscribe("c-new", None, None).await;
    let reply = second
        .expect_event_any(&["pusher_internal:subscription_succeeded", "pusher:subscription_error"])
        .await;
    assert_eq!(reply["event"], "pusher:subscription_error", "the 81st channel is refused");
    let (status, body) = server.api("GET", &format!("/apps/{APP_ID}/channels"), &[], "");
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["channels"].as_object().unwrap().len(), 80);
}

/// Makes `doc` a history of `ops` ops of 40 KB (by a client that stays
/// subscribed).
async fn build_history(server: &Server, doc: &str, ops: u64) -> Client {
    let mut author = server.client().await;
    join_private(&mut author, doc).await;
    let payload = "A".repeat(40_000);
    for n in 0..ops {
        let submit = json!({"event": "sealcast:doc-submit", "channel": doc, "data": {"base": n, "op_id": format!("op-{n}"), "payload": payload}});
        author.send(submit).await;
        author.expect_event("sealcast_internal:doc-ack").await;
    }
    author
}

/// Item 2: a join is answered in pages bounded by bytes; a subscriber that
/// does not read is closed (4100 by bytes, or 4301 for its rate) and the
/// server's memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_are_paged_by_bytes_and_non_readers_are_closed() {
    let _serial = SERIAL.lock().await;
    let server = server("", "doc_ops_per_second = 1000\n");
    let doc = "private-doc-big";
    let _author = build_history(&server, doc, 100).await;
    // A reader pages through: every answer within the page budget.
    let mut reader = server.client().await;
    join_private(&mut reader, doc).await;
    let (mut since, mut pages, mut largest) = (0u64, 0, 0);
    while since < 100 {
        reader.send(json!({"event": "sealcast:doc-join", "channel": doc, "data": {"since": since}})).await;
        let state = reader.expect_event("sealcast_internal:doc-state").await;
        largest = largest.max(state.to_string().len());
        since = state["data"]["ops"].as_array().unwrap().last().unwrap()["seq"].as_u64().unwrap();
        pages += 1;
    }
    println!("join: 100 ops of 40 KB in {pages} pages, largest answer {largest} bytes");
    assert!(largest <= 1024 * 1024 + 8 * 1024, "{largest}");
    assert!(pages >= 4);

    let mut victim = Victim::connect(&server).await;
    let rss_before = rss_kb(&server);
    let port = server.port;
    let codes = under_attack("non-reading joiners", &mut victim, async move {
        let mut codes = Vec::new();
        for _ in 0..8 {
            // Subscribe through the raw socket: read the socket id first.
            let (mut raw, socket_id) = Raw::established(port).await;
            let auth = auth::channel_auth(APP_KEY, APP_SECRET, &socket_id, doc, None);
            let subscribe = json!({"event": "pusher:subscribe", "data": {"channel": doc, "auth": auth}});
            raw.send(&frame(true, 0x1, subscribe.to_string().as_bytes(), true)).await;
            let join =
                json!({"event": "sealcast:doc-join", "channel": doc, "data": {"since": 0}}).to_string();
            let join = frame(true, 0x1, join.as_bytes(), true);
            // Never read: joins pile up in the outbound queue.
            let mut sent = 0;
            while sent < 200 && raw.send(&join).await {
                sent += 1;
            }
            codes.push(raw.close_code().await);
        }
        codes
    })
    .await;
    let rss_after = rss_kb(&server);
    println!("non-readers closed with {codes:?}; server RSS {rss_before} kB → {rss_after} kB");
    // A non-reader may not even get the close frame (its window is full):
    // then the connection is dropped (1006).
    assert!(codes.iter().all(|c| matches!(c, Some(4100) | Some(4301) | Some(1006))), "{codes:?}");
    assert!(rss_after < rss_before + 64 * 1024, "RSS grew from {rss_before} to {rss_after} kB");
}

/// Item 3: half-sent requests are closed at the header timeout, an
/// unsigned body is refused before it is read, and the connection cap
/// refuses sockets beyond it without hurting the victim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_has_timeouts_and_checks_before_reading() {
    let _serial = SERIAL.lock().await;
    let server = server("http_header_timeout = 1\nhttp_body_timeout = 1\nmax_connections = 100\n", "");
    let mut victim = Victim::connect(&server).await;
    let port = server.port;
    let (closed, unsigned_status) = under_attack("slow HTTP", &mut victim, async move {
        tokio::task::spawn_blocking(move || {
            let mut stalled: Vec<StdTcpStream> = (0..60)
                .map(|_| {
                    let mut s = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
                    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
                    s
                })
                .collect();
            let started = Instant::now();
            let mut closed = 0;
            for stream in &mut stalled {
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = [0u8; 512];
                if stream.read(&mut buf).is_ok() {
                    closed += 1;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(4), "closed after {:?}", started.elapsed());
            // An unsigned 1 MiB POST: refused (401) before the body is sent.
            let mut post = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
            post.write_all(
                format!("POST /apps/{APP_ID}/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
            post.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut head = [0u8; 64];
            let n = post.read(&mut head).unwrap_or(0);
            let status = String::from_utf8_lossy(&head[..n]).split(' ').nth(1).unwrap_or("").to_owned();
            (closed, status)
        })
        .await
        .unwrap()
    })
    .await;
    assert_eq!(closed, 60, "every stalled request was closed");
    assert_eq!(unsigned_status, "401");
    // The cap: 100 open sockets; the next ones are closed at once.
    let held: Vec<StdTcpStream> =
        (0..100).map(|_| StdTcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
    extra.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = extra.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = [0u8; 64];
    assert!(matches!(extra.read(&mut buf), Ok(0) | Err(_)), "over the cap, the socket is closed");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(common::http(port, "GET", "/health", "").0, 200);
    let metrics = common::http(port, "GET", "/metrics", "").1;
    assert!(
        metrics.lines().any(|l| l.starts_with("sealcast_connections_refused_total ") && !l.ends_with(" 0"))
    );
}

/// A data directory on tmpfs when there is one: a victim's ack latency is
/// then the server's work, not the disk's fsync (which alone varies 2–16 ms
/// here).
fn tmpfs_root(name: &str) -> common::TempDir {
    let shm = std::path::PathBuf::from("/dev/shm");
    let base = if shm.is_dir() { shm } else { std::env::temp_dir() };
    let root = common::TempDir(base.join(format!("sealcast-abuse-{name}-{}", std::process::id())));
    std::fs::create_dir_all(&root.0).unwrap();
    root
}

/// The attackers' counts, summed.
async fn sum_pairs(tasks: Vec<tokio::task::JoinHandle<(usize, usize)>>) -> (usize, usize) {
    let mut totals = (0, 0);
    for task in tasks {
        let (a, b) = task.await.unwrap();
        totals = (totals.0 + a, totals.1 + b);
    }
    totals
}

/// The document store is shared by every app: one app's connections all
/// joining a large history at once (each at the default join rate, never
/// closed for it) are held to `max_concurrent_requests_per_app` running
/// joins, the rest wait in the app's line up to 16 per connection (beyond
/// that `rate_limited`), so another app's op acks keep their latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_apps_joins_do_not_hold_the_document_store() {
    let _serial = SERIAL.lock().await;
    let root = tmpfs_root("store");
    let extra = format!("doc_ops_per_second = 1000\nrate_limit_strikes = 100000\n{VICTIM}");
    let server = Server::start_in(&root.0, "", &extra, &[("TEST_RUST_LOG", "info")]);
    let doc = "private-doc-shared-big";
    let _author = build_history(&server, doc, 60).await;
    let mut victim = DocVictim::connect(&server).await;
    let port = server.port;
    let (answered, busy) = under_attack("joins from 8 connections", &mut victim, async move {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            tasks.push(tokio::spawn(async move {
                // Raw frames: the attacker does not parse megabyte answers
                // (that would measure this test's CPU, not the server).
                let (mut raw, socket_id) = Raw::established(port).await;
                let auth = auth::channel_auth(APP_KEY, APP_SECRET, &socket_id, doc, None);
                let subscribe = json!({"event": "pusher:subscribe", "data": {"channel": doc, "auth": auth}});
                raw.send(&frame(true, 0x1, subscribe.to_string().as_bytes(), true)).await;
                let join =
                    json!({"event": "sealcast:doc-join", "channel": doc, "data": {"since": 0}}).to_string();
                let join = frame(true, 0x1, join.as_bytes(), true);
                let (mut answered, mut busy) = (0, 0);
                // Long enough for the victim to be measured up to three times.
                let deadline = Instant::now() + Duration::from_secs(6);
                // More at once than a connection may have waiting.
                for _ in 0..20 {
                    raw.send(&join).await;
                }
                while Instant::now() < deadline {
                    let Some((_, payload)) = raw.next().await else { break };
                    let head = String::from_utf8_lossy(&payload[..payload.len().min(64)]).into_owned();
                    if head.contains("doc-state") {
                        answered += 1;
                    } else if head.contains("doc-error") {
                        assert!(String::from_utf8_lossy(&payload).contains("rate_limited"));
                        busy += 1;
                        // As a client does: retry after a wait.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    } else {
                        continue;
                    }
                    raw.send(&join).await;
                }
                (answered, busy)
            }));
        }
        sum_pairs(tasks).await
    })
    .await;
    println!("store sharing: {answered} join pages (up to 1 MiB each) answered, {busy} refused as busy");
    assert!(answered > 0 && busy > 0, "{answered} answered, {busy} refused");
}

/// History reads are answered from the store in pages of up to 256 KiB:
/// one app's connections reading as fast as their budgets allow (8
/// connections at the default 10 reads/s each, under the app's 200/s)
/// leave another app's client events on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_apps_history_reads_do_not_hold_the_server() {
    let _serial = SERIAL.lock().await;
    let root = tmpfs_root("history");
    let extra = format!(
        "rate_limit_strikes = 100000\n[[apps.history]]\nchannels = [\"private-chat-*\"]\nmax_events = 1000\nmax_bytes = 16777216\n{VICTIM}"
    );
    let server =
        Server::start_in(&root.0, "[history]\nstore = \"sqlite\"\n", &extra, &[("TEST_RUST_LOG", "info")]);
    let channel = "private-chat-big";
    let data = "h".repeat(8000);
    for _ in 0..300 {
        assert_eq!(server.publish(channel, "kept", &data).0, 200);
    }
    let mut victim = Victim::connect(&server).await;
    let port = server.port;
    let (answered, limited) = under_attack("history reads from 8 connections", &mut victim, async move {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            tasks.push(tokio::spawn(async move {
                let (mut raw, socket_id) = Raw::established(port).await;
                let auth = auth::channel_auth(APP_KEY, APP_SECRET, &socket_id, channel, None);
                let subscribe = json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth}});
                raw.send(&frame(true, 0x1, subscribe.to_string().as_bytes(), true)).await;
                let read = json!({"event": "sealcast:history", "channel": channel, "data": {"since": 0, "limit": 1000}});
                let read = frame(true, 0x1, read.to_string().as_bytes(), true);
                let (mut answered, mut limited) = (0, 0);
                let deadline = Instant::now() + Duration::from_secs(6);
                raw.send(&read).await;
                while Instant::now() < deadline {
                    let Some((_, payload)) = raw.next().await else { break };
                    let head = String::from_utf8_lossy(&payload[..payload.len().min(64)]).into_owned();
                    if head.contains("sealcast_internal:history-error") || head.contains("pusher:error") {
                        // Over the connection's read rate (or, past it, its
                        // frame rate): as a client does, retry after a wait.
                        limited += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    } else if head.contains("sealcast_internal:history") {
                        answered += 1;
                    } else {
                        continue;
                    }
                    raw.send(&read).await;
                }
                (answered, limited)
            }));
        }
        sum_pairs(tasks).await
    })
    .await;
    println!(
        "history reads: {answered} pages (up to 256 KiB each) answered, {limited} refused as over the rate"
    );
    assert!(answered > 0 && limited > 0, "{answered} answered, {limited} refused");
}

/// Every join may claim a new document's session key hint, and a claim
/// that creates a document is a write to the shared store: one app's
/// connections claiming new documents as fast as they are allowed (each
/// claim behind a subscription, at the join rate, within the app's joins in
/// progress and its document quota) leave another app's op acks on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_apps_key_hint_claims_do_not_hold_the_document_store() {
    let _serial = SERIAL.lock().await;
    // What is measured is the server's locking (on this machine's disk the
    // victim's p99 went 1.5 -> 4.0 and 2.9 -> 3.1 ms).
    let root = tmpfs_root("claims");
    let extra = format!("rate_limit_strikes = 100000\n{VICTIM}");
    let server = Server::start_in(&root.0, "", &extra, &[("TEST_RUST_LOG", "info")]);
    let mut victim = DocVictim::connect(&server).await;
    let port = server.port;
    let (recorded, refused) = under_attack("key hint claims from 8 connections", &mut victim, async move {
        let mut tasks = Vec::new();
        for c in 0..8 {
            tasks.push(tokio::spawn(async move {
                let (mut raw, socket_id) = Raw::established(port).await;
                let (mut recorded, mut refused) = (0, 0);
                let deadline = Instant::now() + Duration::from_secs(6);
                for i in 0.. {
                    if Instant::now() >= deadline {
                        break;
                    }
                    // A new document each time, behind its own subscription
                    // (paced under the subscription rate).
                    let doc = format!("private-doc-claim-{c}-{i}");
                    let auth = auth::channel_auth(APP_KEY, APP_SECRET, &socket_id, &doc, None);
                    let subscribe = json!({"event": "pusher:subscribe", "data": {"channel": doc, "auth": auth}});
                    raw.send(&frame(true, 0x1, subscribe.to_string().as_bytes(), true)).await;
                    let claim = json!({"event": "sealcast:doc-join", "channel": doc, "data": {"key_hint": format!("h{c}-{i}")}});
                    raw.send(&frame(true, 0x1, claim.to_string().as_bytes(), true)).await;
                    loop {
                        let Some((_, payload)) = raw.next().await else { return (recorded, refused) };
                        let text = String::from_utf8_lossy(&payload);
                        if text.contains("doc-state") {
                            assert!(text.contains(&format!("h{c}-{i}")), "{text}");
                            recorded += 1;
                            break;
                        } else if text.contains("doc-error") {
                            assert!(text.contains("rate_limited"), "{text}");
                            refused += 1;
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                (recorded, refused)
            }));
        }
        sum_pairs(tasks).await
    })
    .await;
    println!("claims: {recorded} new documents' hints recorded, {refused} refused as rate limited or busy");
    assert!(recorded > 0, "{recorded} recorded, {refused} refused");
}

/// With a low open-files limit the connection cap follows it (logged), so
/// sockets beyond it are refused at accept instead of `accept` failing.
#[tokio::test]
async fn the_connection_cap_follows_the_open_files_limit() {
    let _serial = SERIAL.lock().await;
    let dir = common::TempDir::new("fd-limit");
    let config = dir.0.join("sealcast.toml");
    std::fs::write(
        &config,
        format!("[[apps]]\nid = \"{APP_ID}\"\nkey = \"{APP_KEY}\"\nsecret = \"{APP_SECRET}\"\n"),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_sealcast");
    let script = format!(
        "ulimit -n 256 && exec {bin} serve --port 0 --config {} --data-dir {}",
        config.display(),
        dir.0.join("data").display()
    );
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let port: u16 = loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0, "server exited");
        if let Some(addr) = line.trim().strip_prefix("sealcast listening on ") {
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    // 256 − 64 reserved = 192 connections; open 200.
    let mut held: Vec<StdTcpStream> =
        (0..200).map(|_| StdTcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    for stream in &held {
        stream.set_nonblocking(true).unwrap();
    }
    // Well within the header timeout (10 s), a closed socket was refused at
    // accept; the server may take a moment to accept all 200.
    let closed = |held: &mut Vec<StdTcpStream>| {
        let mut buf = [0u8; 16];
        let mut count = 0;
        for stream in held.iter_mut() {
            count += usize::from(matches!(stream.read(&mut buf), Ok(0)));
        }
        count
    };
    let deadline = Instant::now() + Duration::from_secs(4);
    while closed(&mut held) < 8 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let refused = closed(&mut held);
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    println!("fd limit 256: {refused} of 200 sockets closed at accept");
    assert!(stderr.contains("max_connections lowered"), "{stderr}");
    assert!(!stderr.contains("accept failed"), "{stderr}");
    assert_eq!(refused, 8, "sockets beyond the 192-connection cap are closed at once");
}
