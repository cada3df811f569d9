//! SIGHUP re-reads the config file, against the real binary: an app
//! added, one changed under its live connections, one removed (its clients
//! closed with 4001), and a config that does not load refused with one
//! line while the running one stays.

mod common;

use common::{APP_ID, APP_KEY, APP_SECRET, Client, Server, TempDir, logged, now};
use serde_json::json;

fn app(id: &str, key: &str, secret: &str, extra: &str) -> String {
    format!("[[apps]]\nid = \"{id}\"\nkey = \"{key}\"\nsecret = \"{secret}\"\n{extra}\n")
}

fn hangup(server: &Server) {
    assert!(unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) } == 0);
}

async fn client_of(server: &Server, key: &str) -> Client {
    let mut client = Client::connect(&server.ws_url(key, "protocol=7&client=test&version=1")).await;
    client.expect_event("pusher:connection_established").await;
    client
}

fn publish(server: &Server, secret: &str, data: &str) -> u16 {
    let body = json!({"name": "news", "channel": "news", "data": data}).to_string();
    server.api_signed("POST", &format!("/apps/{APP_ID}/events"), &[], &body, secret, now()).0
}

#[tokio::test]
async fn sighup_adds_changes_and_removes_apps_without_a_restart() {
    let dir = TempDir::new("reload");
    let other = app("other", "other-key", "other-secret", "");
    let server = Server::start_in(&dir.0, "", &other, &[("RUST_LOG", "info")]);
    let config = dir.0.join("sealcast.toml");

    let mut live = client_of(&server, APP_KEY).await;
    live.join("news", None).await;
    let mut doomed = client_of(&server, "other-key").await;
    let mut unknown = Client::connect(&server.ws_url("new-key", "protocol=7")).await;
    assert_eq!(unknown.expect_event("pusher:error").await["data"]["code"], 4001, "not served yet");

    // The test app's secret changes, "other" goes, "new" comes.
    let next = app(APP_ID, APP_KEY, "rotated-secret", "max_event_payload_bytes = 100")
        + &app("new", "new-key", "new-secret", "");
    std::fs::write(&config, &next).unwrap();
    hangup(&server);
    logged(&server, "configuration reloaded", 1).await;

    assert_eq!(doomed.expect_close().await, Some(4001), "a removed app's client is told it is gone");
    let mut refused = Client::connect(&server.ws_url("other-key", "protocol=7")).await;
    let error = refused.expect_event("pusher:error").await;
    assert_eq!(error["data"]["code"], 4001);
    client_of(&server, "new-key").await;

    // The live connection stays; the API takes the new secret only, and
    // the new limit.
    assert_eq!(publish(&server, APP_SECRET, "old secret"), 401);
    assert_eq!(publish(&server, "rotated-secret", "new secret"), 200);
    assert_eq!(live.expect_event("news").await["data"], "new secret");
    assert_eq!(publish(&server, "rotated-secret", &"x".repeat(200)), 413);

    // A file that does not load: one line, and nothing changes.
    std::fs::write(&config, "this is [not toml").unwrap();
    hangup(&server);
    logged(&server, "configuration not reloaded", 1).await;
    assert_eq!(publish(&server, "rotated-secret", "still served"), 200);
    assert_eq!(live.expect_event("news").await["data"], "still served");
    client_of(&server, "new-key").await;
    // An invalid one (a duplicate key) too.
    std::fs::write(&config, app("a", "same", "s", "") + &app("b", "same", "s", "")).unwrap();
    hangup(&server);
    logged(&server, "configuration not reloaded", 2).await;
    client_of(&server, "new-key").await;
    let errors = server.stderr();
    assert!(errors.contains("unique"), "{errors}");
    assert!(!errors.contains("rotated-secret"), "a secret reached the log");
}
