//! Runs the example programs against a real `sealcast serve` and the
//! example auth server: two terminal chat clients, the call-signaling demo
//! (with HMAC and with Ed25519 JWT authorization), `seal_chat`, and the
//! server-less `doc_editor`.
//!
//! Needs `target/debug/sealcast` (built by `cargo test --workspace`, or
//! `cargo build -p sealcast-server`).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use sealcast_core::crypto::Key;
use sealcast_examples::auth_server::{Config, Signing, public_key_x, start};
use sealcast_tests::{Launch, ServerProcess, TempDir};

/// `target/debug`, from this test's own path (`target/debug/deps/…`).
fn target_dir() -> PathBuf {
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_owned()
}

/// A server with the demo app, its directory removed after it.
struct Server {
    _process: ServerProcess,
    port: u16,
    _dir: TempDir,
}

fn serve(extra: &str) -> Server {
    let bin = target_dir().join("sealcast");
    assert!(bin.exists(), "{bin:?} is missing: cargo build -p sealcast-server");
    let dir = TempDir::new("examples");
    let config = format!("[[apps]]\nid = \"demo\"\nkey = \"demo-key\"\nsecret = \"demo-secret\"\n{extra}\n");
    let process =
        ServerProcess::start(&Launch { bin: &bin, root: &dir.0, port: 0, config: &config, env: &[] });
    Server { port: process.port, _process: process, _dir: dir }
}

fn auth_server(signing: Signing) -> String {
    let config = Config {
        app_id: "demo".into(),
        app_key: "demo-key".into(),
        app_secret: "demo-secret".into(),
        signing,
        master: Key::from_bytes(&[3; 32]),
        site: None,
    };
    format!("http://{}", start(config, "127.0.0.1:0").unwrap())
}

fn example(name: &str) -> Command {
    Command::new(target_dir().join("examples").join(name))
}

/// Lines a child prints, as a channel.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

fn wait_for(lines: &mpsc::Receiver<String>, wanted: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(Duration::from_secs(15)) {
            Ok(line) if line.contains(wanted) => return seen,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no line with {wanted:?}; saw {seen:?}"),
        }
    }
}

#[test]
fn two_terminal_chat_clients_talk_through_the_server() {
    let server = serve("");
    let auth = auth_server(Signing::Hmac);
    let url = format!("ws://127.0.0.1:{}", server.port);
    let chat = |user: &str| {
        example("chat")
            .args(["--key", "demo-key", "--url", &url, "--auth", &auth, "--user", user, "--room", "lobby"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut ann = chat("ann");
    let ann_lines = lines_of(&mut ann);
    wait_for(&ann_lines, "* joined presence-chat-lobby as ann");
    let mut bob = chat("bob");
    let bob_lines = lines_of(&mut bob);
    wait_for(&bob_lines, "* joined");
    wait_for(&ann_lines, "* bob joined");
    writeln!(ann.stdin.as_mut().unwrap(), "hello bob, this is sealed").unwrap();
    wait_for(&bob_lines, "ann: hello bob, this is sealed");
    writeln!(bob.stdin.as_mut().unwrap(), "hi ann").unwrap();
    wait_for(&ann_lines, "bob: hi ann");
    drop(bob.stdin.take());
    assert!(bob.wait().unwrap().success());
    wait_for(&ann_lines, "* bob left");
    drop(ann.stdin.take());
    assert!(ann.wait().unwrap().success());
}

fn run_call_signaling(server: &Server, auth: &str) {
    let url = format!("ws://127.0.0.1:{}", server.port);
    let output = example("call_signaling")
        .args(["--key", "demo-key", "--url", &url, "--auth", auth])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "call_signaling failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("call established"), "{stdout}");
}

#[test]
fn call_signaling_with_hmac_authorization() {
    let server = serve("");
    run_call_signaling(&server, &auth_server(Signing::Hmac));
}

#[test]
fn call_signaling_with_ed25519_jwt_authorization() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let registration =
        format!("[[apps.jwt_keys]]\nkid = \"ex-1\"\nalg = \"EdDSA\"\nx = \"{}\"\n", public_key_x(&key));
    let server = serve(&registration);
    run_call_signaling(&server, &auth_server(Signing::Jwt { kid: "ex-1".into(), key: Box::new(key) }));
}

#[test]
fn the_auth_server_derives_keys_and_rotates() {
    let auth = auth_server(Signing::Hmac);
    let call = |method, path: &str| sealcast_examples::http::call(&auth, method, path, "").unwrap();
    let (status, v1) = call("GET", "/keys?kid=room");
    assert_eq!(status, 200);
    assert_eq!(call("GET", "/keys?kid=room&kv=1").1, v1, "derivation is deterministic");
    assert_eq!(call("GET", "/keys?kid=room&kv=2").0, 400, "no version 2 before rotating");
    assert_eq!(call("POST", "/rotate?kid=room").1, r#"{"kv":2}"#);
    let (_, v2) = call("GET", "/keys?kid=room");
    assert!(v2.contains(r#""kv":2"#) && v2 != v1);
    let (_, doc) = call("GET", "/doc-key?doc_id=d1");
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let hint = doc["key_hint"].as_str().unwrap();
    let (_, again) = call("GET", &format!("/doc-key?doc_id=d1&key_hint={hint}"));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&again).unwrap()["key"], doc["key"]);
}

#[test]
fn seal_chat_runs() {
    let output = example("seal_chat").output().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("opened:"));
}

#[test]
fn the_editor_example_keeps_a_late_editor_in_step() {
    let output = example("doc_editor").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(r#"editors agree: {"ops":[{"insert":"XabcY"}]}"#), "{stdout}");
}
