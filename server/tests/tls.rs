//! TLS on the listener, against the real binary: `wss://` and `https://` on
//! one port, a certificate swapped under a live connection (SIGHUP, and a
//! change on disk), a bad pair refused at start, a stalled handshake cut.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{APP_ID, APP_KEY, APP_SECRET, Client, Server, TempDir, https, logged, now, signed_query};
use serde_json::json;

use common::self_signed as certificate;

/// Writes a pair where the server's config points (`tls.crt`, `tls.key`).
fn install(dir: &Path, (cert, key, _): &(String, String, Vec<u8>)) {
    // Written beside and renamed, as deploy tools do: never half a file.
    for (name, text) in [("tls.crt", cert), ("tls.key", key)] {
        let staged = dir.join(format!("{name}.new"));
        std::fs::write(&staged, text).unwrap();
        std::fs::rename(&staged, dir.join(name)).unwrap();
    }
}

fn tls_top(dir: &Path, extra: &str) -> String {
    common::tls_config_lines(dir) + extra
}

fn wss(server: &Server) -> String {
    format!("wss://localhost:{}/app/{APP_KEY}?protocol=7&client=test&version=1", server.port)
}

/// A signed HTTPS publish of `data` on `channel`.
async fn publish(server: &Server, roots: &[Vec<u8>], channel: &str, data: &str) -> u16 {
    let path = format!("/apps/{APP_ID}/events");
    let body = json!({"name": "news", "channel": channel, "data": data}).to_string();
    let query = signed_query("POST", &path, &[], body.as_bytes(), APP_SECRET, now());
    https(server.port, roots, "POST", &format!("{path}?{query}"), &body).await.unwrap().0
}

async fn subscribed(server: &Server, roots: &[Vec<u8>]) -> Client {
    let mut client = Client::connect_tls(&wss(server), roots).await.expect("wss connect");
    client.expect_event("pusher:connection_established").await;
    client.join("news", None).await;
    client
}

fn hangup(server: &Server) {
    assert!(unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) } == 0);
}

/// Waits (bounded) until a new TLS handshake trusting only `root` succeeds.
async fn presents(server: &Server, root: &[u8]) -> bool {
    for _ in 0..150 {
        if https(server.port, &[root.to_vec()], "GET", "/health", "").await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn wss_and_https_share_the_port() {
    let dir = TempDir::new("tls");
    let pair = certificate();
    install(&dir.0, &pair);
    let server = Server::start(&tls_top(&dir.0, ""), "");
    let roots = [pair.2.clone()];

    assert_eq!(
        https(server.port, &roots, "GET", "/health", "").await.map(|(s, b)| (s, b.trim().to_owned())),
        Ok((200, "OK".into()))
    );
    let mut client = subscribed(&server, &roots).await;
    assert_eq!(publish(&server, &roots, "news", "over tls").await, 200);
    let event = client.expect_event("news").await;
    assert_eq!(event["data"], "over tls");

    // Nothing in the clear, and no trust without the certificate.
    assert!(Client::try_connect(&server.ws_url(APP_KEY, "protocol=7")).await.is_none());
    let stranger = certificate();
    assert!(https(server.port, &[stranger.2], "GET", "/health", "").await.is_err());
}

#[tokio::test]
async fn a_certificate_swapped_on_sighup_keeps_live_connections() {
    let dir = TempDir::new("tls-swap");
    let (old, new) = (certificate(), certificate());
    install(&dir.0, &old);
    let server = Server::start(&tls_top(&dir.0, ""), "");
    let mut live = subscribed(&server, std::slice::from_ref(&old.2)).await;

    install(&dir.0, &new);
    hangup(&server);
    assert!(presents(&server, &new.2).await, "new handshakes present the new certificate");
    assert!(https(server.port, std::slice::from_ref(&old.2), "GET", "/health", "").await.is_err());
    logged(&server, "TLS certificate reloaded", 1).await;

    // The connection made under the old certificate is still served.
    assert_eq!(publish(&server, std::slice::from_ref(&new.2), "news", "after the swap").await, 200);
    assert_eq!(live.expect_event("news").await["data"], "after the swap");
    subscribed(&server, std::slice::from_ref(&new.2)).await;
}

#[tokio::test]
async fn a_changed_file_is_loaded_without_a_signal_and_a_bad_one_is_refused() {
    let dir = TempDir::new("tls-watch");
    let (first, second) = (certificate(), certificate());
    install(&dir.0, &first);
    let server = Server::start(&tls_top(&dir.0, "tls_watch_secs = 1\n"), "");
    let mut live = subscribed(&server, std::slice::from_ref(&first.2)).await;

    install(&dir.0, &second);
    assert!(presents(&server, &second.2).await, "the watch loads a changed pair");

    // A key that is not the certificate's: logged, and the pair in use stays.
    let third = certificate();
    install(&dir.0, &(third.0.clone(), first.1.clone(), third.2.clone()));
    hangup(&server);
    logged(&server, "is not the private key", 1).await;
    assert!(https(server.port, std::slice::from_ref(&second.2), "GET", "/health", "").await.is_ok());
    assert_eq!(publish(&server, std::slice::from_ref(&second.2), "news", "still here").await, 200);
    assert_eq!(live.expect_event("news").await["data"], "still here");
}

#[test]
fn a_bad_pair_stops_the_start_with_one_clear_line() {
    let dir = TempDir::new("tls-bad");
    let (a, b) = (certificate(), certificate());
    let cases = [
        ((a.0.as_str(), b.1.as_str()), "is not the private key of the certificate"),
        (("", a.1.as_str()), "no PEM certificate"),
        ((a.0.as_str(), "not a key"), "tls.key"),
    ];
    let bin = env!("CARGO_BIN_EXE_sealcast");
    for ((cert, key), wanted) in cases {
        std::fs::write(dir.0.join("tls.crt"), cert).unwrap();
        std::fs::write(dir.0.join("tls.key"), key).unwrap();
        let output = std::process::Command::new(bin)
            .args(["serve", "--port", "0", "--tls-cert"])
            .arg(dir.0.join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.0.join("tls.key"))
            .arg("--data-dir")
            .arg(dir.0.join("data"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "started with a bad pair");
        assert!(stderr.contains(wanted), "{wanted:?} not in {stderr:?}");
        assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
    }
    // One of the two alone is refused too.
    let output = std::process::Command::new(bin)
        .args(["serve", "--port", "0", "--tls-cert"])
        .arg(dir.0.join("tls.crt"))
        .arg("--data-dir")
        .arg(dir.0.join("data"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("must be given together"));
}

#[tokio::test]
async fn a_stalled_handshake_is_cut_at_the_header_timeout() {
    use tokio::io::AsyncReadExt;
    let dir = TempDir::new("tls-stall");
    let pair = certificate();
    install(&dir.0, &pair);
    let server = Server::start(&tls_top(&dir.0, "http_header_timeout = 1\n"), "");
    let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    let mut buf = [0u8; 16];
    // Closed by the server (read returns 0 or a reset) well before 15 s.
    let read = tokio::time::timeout(Duration::from_secs(15), idle.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    // Others are served meanwhile and after.
    assert!(https(server.port, &[pair.2], "GET", "/health", "").await.is_ok());
}
