//! The directory's rules, on the memory store (the Redis store runs the
//! same cases against a real redis-server in tests/key_directory.rs).

use sealcast_core::protocol::ClientFrame;
use sealcast_core::protocol::directory::{DirectoryErrorCode, Request};

use super::*;

fn request(event: &str, data: &str) -> Request {
    let frame = ClientFrame::parse(format!(r#"{{"event":"{event}","data":{data}}}"#).as_bytes()).unwrap();
    Request::parse(&frame).unwrap()
}

fn limits() -> KeyDirectoryConfig {
    KeyDirectoryConfig {
        max_packages_per_device: 3,
        max_devices_per_user: 2,
        max_bytes: 1000,
        ..Default::default()
    }
}

fn directory() -> KeyDirectory {
    KeyDirectory::in_memory()
}

fn code(result: Result<String, DirectoryError>) -> DirectoryErrorCode {
    result.unwrap_err().code
}

#[test]
fn packages_are_taken_once_oldest_first_then_the_last_resort_stays() {
    let dir = directory();
    let publish = request(directory::PUBLISH, r#"{"device":"phone","packages":["a","b"],"last_resort":"z"}"#);
    let answer = dir.handle("app", "alice", &publish, &limits()).unwrap();
    assert!(answer.contains(r#""count":2,"last_resort":true"#), "{answer}");
    let fetch = request(directory::FETCH, r#"{"user":"alice","device":"phone","request_id":"r"}"#);
    for expected in [r#""package":"a","last_resort":false"#, r#""package":"b","last_resort":false"#] {
        assert!(dir.handle("app", "bob", &fetch, &limits()).unwrap().contains(expected));
    }
    for _ in 0..2 {
        let answer = dir.handle("app", "bob", &fetch, &limits()).unwrap();
        assert!(answer.contains(r#""package":"z","last_resort":true"#), "{answer}");
    }
    // Another app, user or device has nothing.
    assert!(dir.handle("other", "bob", &fetch, &limits()).unwrap().contains(r#""package":null"#));
    let fetch = request(directory::FETCH, r#"{"user":"alice","device":"laptop"}"#);
    assert!(dir.handle("app", "bob", &fetch, &limits()).unwrap().contains(r#""package":null"#));
    assert_eq!(dir.app_bytes("app").unwrap(), 1 + PACKAGE_OVERHEAD_BYTES);
}

#[test]
fn every_budget_refuses_without_storing_anything() {
    let dir = directory();
    let publish = |device: &str, packages: &[&str]| {
        let data = serde_json::json!({"device": device, "packages": packages}).to_string();
        dir.handle("app", "alice", &request(directory::PUBLISH, &data), &limits())
    };
    publish("phone", &["a", "b"]).unwrap();
    // A publish that would pass the device's count stores none of its packages.
    assert_eq!(code(publish("phone", &["c", "d"])), DirectoryErrorCode::TooMany);
    assert!(publish("phone", &[]).unwrap().contains(r#""count":2"#));
    publish("laptop", &["x"]).unwrap();
    assert_eq!(code(publish("tablet", &["y"])), DirectoryErrorCode::TooMany);
    // Asking about an unknown device does not add it.
    assert!(publish("watch", &[]).unwrap().contains(r#""count":0"#));
    let big = "p".repeat(limits().max_package_bytes + 1);
    assert_eq!(code(publish("phone", &[&big])), DirectoryErrorCode::TooLarge);
    // The app's bytes: 3 small packages cost 195; 700-byte ones fill it.
    let mid = "q".repeat(700);
    let dir2 = directory();
    let data = serde_json::json!({"device": "d", "packages": [mid]}).to_string();
    dir2.handle("app", "u1", &request(directory::PUBLISH, &data), &limits()).unwrap();
    let refused = dir2.handle("app", "u2", &request(directory::PUBLISH, &data), &limits());
    assert_eq!(code(refused), DirectoryErrorCode::Quota);
    assert_eq!(dir2.app_bytes("app").unwrap(), 700 + PACKAGE_OVERHEAD_BYTES);
    // Clearing a device gives its bytes back and lets another device in.
    let clear = request(directory::CLEAR, r#"{"device":"laptop"}"#);
    dir.handle("app", "alice", &clear, &limits()).unwrap();
    publish("tablet", &["y"]).unwrap();
    assert_eq!(dir.app_bytes("app").unwrap(), 3 * (1 + PACKAGE_OVERHEAD_BYTES));
}

#[test]
fn a_replaced_last_resort_is_counted_once() {
    let dir = directory();
    for last in ["aaaa", "bb", "cccccc"] {
        let data = serde_json::json!({"device": "d", "last_resort": last}).to_string();
        dir.handle("app", "u", &request(directory::PUBLISH, &data), &limits()).unwrap();
    }
    assert_eq!(dir.app_bytes("app").unwrap(), 6 + PACKAGE_OVERHEAD_BYTES);
}
