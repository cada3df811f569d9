//! Entry points for the cargo-fuzz targets in `server/fuzz/` (compiled only
//! under `--cfg fuzzing`). Each must never panic on any input.

use std::time::{Duration, Instant};

use sealcast_core::protocol::doc::DocRequest;
use sealcast_core::protocol::{ChannelName, ClientFrame, PresenceMember, SigninData, SubscribeData};

use crate::config::AppConfig;
use crate::connection::limits::{FrameKind, FrameLimits};
use crate::jwt::{JwtKeyConfig, TokenVerifier};
use crate::ws::reader::{Message, MessageReader};

/// Untrusted bytes as a client's WebSocket stream, through everything the
/// server does before a command touches shared state: the budgeted reader
/// (fed in chunks whose sizes come from the input), the rate limits, the
/// frame parser and every command's data shape. Must never panic, and the
/// reader must never hold more than one message's budget.
pub fn client_frames(data: &[u8]) {
    const BUDGET: usize = 4096;
    let Some((&chunking, stream)) = data.split_first() else { return };
    let mut reader = MessageReader::new(BUDGET);
    let mut limits = FrameLimits::new(&AppConfig::new("a", "k", "s"));
    let t0 = Instant::now();
    let chunk = usize::from(chunking).max(1);
    for (n, piece) in stream.chunks(chunk).enumerate() {
        reader.push(piece);
        loop {
            match reader.decode() {
                Ok(Some(message)) => command(message, &mut limits, t0 + Duration::from_millis(n as u64)),
                Ok(None) => break,
                Err(err) => {
                    let _ = (err.close_code(), err.close_reason());
                    return;
                }
            }
        }
        assert!(reader.buffered() <= BUDGET + 14 + chunk, "the reader held {} bytes", reader.buffered());
    }
}

fn command(message: Message, limits: &mut FrameLimits, now: Instant) {
    let _ = limits.frame(now);
    let Message::Text(text) = message else { return };
    let Ok(frame) = ClientFrame::parse(&text) else { return };
    let kind = FrameKind::of_event(&frame.event);
    let _ = limits.kind(kind, now);
    let _ = frame.channel_name();
    match kind {
        FrameKind::Subscribe => {
            if let Ok(data) = frame.data_as::<SubscribeData>() {
                let _ = ChannelName::parse(&data.channel);
                if let Some(channel_data) = data.channel_data.as_deref() {
                    let _ = PresenceMember::parse(channel_data);
                }
            }
        }
        FrameKind::Signin => {
            let _ = frame.data_as::<SigninData>();
        }
        FrameKind::DocJoin | FrameKind::DocSubmit | FrameKind::DocDigest | FrameKind::DocSnapshot => {
            let _ = DocRequest::parse(&frame);
        }
        FrameKind::KeyDirectory => {
            let _ = sealcast_core::protocol::directory::Request::parse(&frame);
        }
        _ => {}
    }
}

/// Untrusted bytes as key directory requests (one frame per line, the
/// first byte of a line choosing which of three signed-in users sends
/// it) against a directory with small budgets: never a panic, and the
/// app's bytes never over its budget.
pub fn key_directory(data: &[u8]) {
    use sealcast_core::protocol::directory::Request;

    let directory = crate::directory::KeyDirectory::in_memory();
    let limits = crate::directory::KeyDirectoryConfig {
        max_package_bytes: 64,
        max_packages_per_device: 4,
        max_devices_per_user: 2,
        max_bytes: 1024,
        requests_per_second: 1,
    };
    for line in data.split(|b| *b == b'\n') {
        let Some((&who, text)) = line.split_first() else { continue };
        let Ok(frame) = ClientFrame::parse(text) else { continue };
        let Ok(request) = Request::parse(&frame) else { continue };
        let user = ["alice", "bob", "mallory"][usize::from(who) % 3];
        let _ = directory.handle("app", user, &request, &limits);
        let bytes = directory.app_bytes("app").expect("memory store");
        assert!(bytes <= limits.max_bytes, "the app holds {bytes} bytes");
    }
}

/// Untrusted bytes as a subscription token: verification must fail cleanly.
pub fn jwt_verify(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let key = JwtKeyConfig {
        kid: "k".into(),
        // The RFC 8037 example Ed25519 public key.
        alg: "EdDSA".into(),
        x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
        y: None,
    };
    let verifier = TokenVerifier::from_config(&[key]).expect("static key is valid");
    let _ = verifier.verify(token, "app", "1.1", "private-x", token.len() % 2 == 0, 1_800_000_000);
}

#[cfg(test)]
mod tests {
    /// Replays the committed seed corpus (`seed-*`) of `target`.
    fn replay(target: &str, run: fn(&[u8])) -> usize {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
        let mut replayed = 0;
        for entry in std::fs::read_dir(dir).expect("corpus directory") {
            let path = entry.expect("corpus entry").path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("seed-")) {
                run(&std::fs::read(&path).expect("corpus file"));
                replayed += 1;
            }
        }
        replayed
    }

    #[test]
    fn corpus_replays_without_panics() {
        let jwt = replay("jwt_verify", super::jwt_verify);
        assert!(jwt >= 3, "only {jwt} jwt seeds");
        let frames = replay("client_frames", super::client_frames);
        assert!(frames >= 8, "only {frames} frame seeds");
        let directory = replay("key_directory", super::key_directory);
        assert!(directory >= 3, "only {directory} key directory seeds");
    }
}
