//! Shared code of the runnable examples (`examples/*.rs`):
//!
//! - [`auth_server`]: an app's own backend — signs channel access (Pusher
//!   HMAC with the app secret, or an Ed25519 JWT) and hands out keys
//!   derived with HKDF from a master key the realtime server never sees;
//! - [`backend`]: the client side of it, an [`Authorizer`] and
//!   [`KeyProvider`] that call that backend over HTTP;
//! - [`http`]: the few lines of HTTP/1.1 both need (examples stay free of
//!   an HTTP framework).
//!
//! [`Authorizer`]: sealcast_net::Authorizer
//! [`KeyProvider`]: sealcast_net::KeyProvider

pub mod auth_server;
pub mod backend;
pub mod http;

/// Reads `--name value` pairs from the command line.
pub fn args() -> std::collections::HashMap<String, String> {
    let mut args = std::collections::HashMap::new();
    let mut iter = std::env::args().skip(1);
    while let Some(name) = iter.next() {
        if let Some(name) = name.strip_prefix("--") {
            args.insert(name.to_owned(), iter.next().unwrap_or_default());
        }
    }
    args
}

/// The benchmarks' app: its key and secret (their configs name them).
pub const BENCH_KEY: &str = "bench-key";
/// See [`BENCH_KEY`].
pub const BENCH_SECRET: &str = "bench-secret";

/// The benchmarks' authorizer: signs every channel with [`BENCH_SECRET`],
/// as the app's auth endpoint would (no presence data).
pub struct BenchAuthorizer;

impl sealcast_net::Authorizer for BenchAuthorizer {
    fn authorize(
        &self,
        socket_id: &str,
        channel: &str,
    ) -> Result<sealcast_core::client::ChannelAuth, sealcast_net::AuthRefusal> {
        let auth =
            sealcast_core::protocol::auth::channel_auth(BENCH_KEY, BENCH_SECRET, socket_id, channel, None);
        Ok(sealcast_core::client::ChannelAuth { auth, channel_data: None })
    }
}

/// Starts `sealcast serve` (the binary `bin`) on `port` with the config
/// `dir/bench.toml` and its data under `dir/data`, for the benchmarks;
/// returns once it listens (its further output is drained).
pub fn start_server(bin: &str, port: u16, dir: &std::path::Path) -> std::process::Child {
    use std::io::BufRead;
    let mut child = std::process::Command::new(bin)
        .args(["serve", "--port", &port.to_string(), "--config"])
        .arg(dir.join("bench.toml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sealcast serve");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("sealcast listening on") => break,
            Some(_) => {}
            None => panic!("the server exited before listening"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    child
}
