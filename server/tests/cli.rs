//! The `sealcast` CLI as a user runs it: real process, stdin/stdout/stderr.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use sealcast_core::crypto::{Key, derive_document_key};
use serde_json::{Value, json};

fn sealcast(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealcast"))
        .args(args)
        .env_remove("SEALCAST_KEY")
        .env_remove("SEALCAST_MASTER_KEY")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sealcast");
    // The CLI may reject its arguments before reading stdin: a broken pipe here is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// A failure: non-zero exit, nothing on stdout, one line on stderr, no panic.
fn assert_clean_failure(output: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "unexpected success");
    assert!(output.stdout.is_empty(), "partial output: {}", String::from_utf8_lossy(&output.stdout));
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"), "{err}");
}

const EVENT: &str = r#"{"body":"Private message","sender_id":"user-1"}"#;

fn seal_args<'a>(key: &'a str, scope: &'a str) -> Vec<&'a str> {
    vec!["seal", "--key", key, "--kid", "room-42", "--kv", "1", "--scope", scope, "--path", "/body"]
}

fn open_args<'a>(key: &'a str, scope: &'a str) -> Vec<&'a str> {
    vec!["open", "--key", key, "--kid", "room-42", "--kv", "1", "--scope", scope]
}

#[test]
fn keys_new_prints_fresh_base64url_keys() {
    let a = stdout(&sealcast(&["keys", "new"], &[], ""));
    let b = stdout(&sealcast(&["keys", "new"], &[], ""));
    assert_eq!(a.trim().len(), 43);
    Key::from_base64url(a.trim()).unwrap();
    assert_ne!(a, b);
}

#[test]
fn keys_derive_is_deterministic_and_matches_the_library() {
    let master = Key::from_bytes(&[0x11; 32]);
    let args = ["keys", "derive", "--master", &master.to_base64url(), "--doc", "doc-1", "--salt", "s-1"];
    let first = stdout(&sealcast(&args, &[], ""));
    assert_eq!(first, stdout(&sealcast(&args, &[], "")));
    assert_eq!(first.trim(), derive_document_key(&master, "doc-1", b"s-1").to_base64url());
}

#[test]
fn seal_then_open_round_trips() {
    let key = Key::generate().unwrap().to_base64url();
    let sealed = stdout(&sealcast(&seal_args(&key, "chat:room-42:msg-1"), &[], EVENT));
    let sealed_json: Value = serde_json::from_str(&sealed).unwrap();
    assert_eq!(sealed_json["sender_id"], "user-1");
    assert_eq!(sealed_json["body"]["alg"], "A256GCM");
    assert!(!sealed.contains("Private message"));
    let opened = stdout(&sealcast(&open_args(&key, "chat:room-42:msg-1"), &[], &sealed));
    assert_eq!(
        serde_json::from_str::<Value>(&opened).unwrap(),
        serde_json::from_str::<Value>(EVENT).unwrap()
    );
}

#[test]
fn key_can_come_from_the_environment() {
    let key = Key::generate().unwrap().to_base64url();
    let args = ["seal", "--kid", "k", "--kv", "2", "--scope", "custom:delivery:order-1:note", "--path", ""];
    let sealed = stdout(&sealcast(&args, &[("SEALCAST_KEY", &key)], r#"{"note":"x"}"#));
    let envelope: Value = serde_json::from_str(&sealed).unwrap();
    assert_eq!(envelope["kv"], 2);
    let args = ["open", "--kid", "k", "--kv", "2", "--scope", "custom:delivery:order-1:note"];
    let opened = stdout(&sealcast(&args, &[("SEALCAST_KEY", &key)], &sealed));
    assert_eq!(serde_json::from_str::<Value>(&opened).unwrap(), json!({"note": "x"}));
}

#[test]
fn bad_input_is_one_line_and_no_output() {
    let key = Key::generate().unwrap().to_base64url();
    let sealed = stdout(&sealcast(&seal_args(&key, "chat:room-42:msg-1"), &[], EVENT));

    assert_clean_failure(&sealcast(&seal_args("not-a-key", "chat:r:m"), &[], EVENT), "invalid key");
    assert_clean_failure(&sealcast(&seal_args(&key, "chat:r"), &[], EVENT), "invalid scope");
    assert_clean_failure(&sealcast(&seal_args(&key, "chat:r:m"), &[], "{not json"), "not valid JSON");
    assert_clean_failure(
        &sealcast(&seal_args(&key, "chat:r:m"), &[], r#"{"x":1}"#),
        "no value at JSON pointer",
    );
    // Wrong scope, wrong key, tampered ciphertext, unknown key version.
    assert_clean_failure(
        &sealcast(&open_args(&key, "chat:room-42:msg-2"), &[], &sealed),
        "could not be decrypted",
    );
    let other = Key::generate().unwrap().to_base64url();
    assert_clean_failure(
        &sealcast(&open_args(&other, "chat:room-42:msg-1"), &[], &sealed),
        "commitment mismatch",
    );
    let mut tampered: Value = serde_json::from_str(&sealed).unwrap();
    let ct = tampered["body"]["ct"].as_str().unwrap().to_owned();
    let flipped = if ct.starts_with('A') { ct.replacen('A', "B", 1) } else { format!("A{}", &ct[1..]) };
    tampered["body"]["ct"] = Value::String(flipped);
    assert_clean_failure(
        &sealcast(&open_args(&key, "chat:room-42:msg-1"), &[], &tampered.to_string()),
        "could not be decrypted",
    );
    let wrong_kv = ["open", "--key", &key, "--kid", "room-42", "--kv", "9", "--scope", "chat:room-42:msg-1"];
    assert_clean_failure(&sealcast(&wrong_kv, &[], &sealed), "no key `room-42` version 1");
}

#[test]
fn open_require_detects_stripped_encryption() {
    let key = Key::generate().unwrap().to_base64url();
    let mut args = open_args(&key, "chat:r:m");
    args.extend(["--require", "/body"]);
    assert_clean_failure(&sealcast(&args, &[], EVENT), "expected to be sealed");
}

#[test]
fn keys_starting_with_a_hyphen_are_values_not_flags() {
    // base64url keys start with '-' one time in 64.
    let key = "-W".to_owned() + &"A".repeat(41);
    let sealed = stdout(&sealcast(&seal_args(&key, "chat:r:m"), &[], EVENT));
    let opened = stdout(&sealcast(&open_args(&key, "chat:r:m"), &[], &sealed));
    assert!(opened.contains("Private message"));
    let master = ["keys", "derive", "--master", &key, "--doc", "d", "--salt", "s"];
    assert!(sealcast(&master, &[], "").status.success());
}
