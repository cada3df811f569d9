//! Entry point for the cargo-fuzz target in `core/groups/fuzz/` (compiled
//! only under `--cfg fuzzing` and in tests, which replay the committed
//! corpus). It must never panic on any input.

use crate::{AppSigner, ChannelGroup, Device, GroupEvent, GroupLink, Roster};

fn device(app: &AppSigner, user: &str) -> Device {
    let signer = Device::generate_key().expect("key generation");
    let cert = app.certify(user, "phone", signer.public()).expect("static ids");
    Device::new(signer, cert, app.identity()).expect("own certificate")
}

/// Untrusted bytes as group log entries (split at 0xA5), appended after a
/// real genesis and a real commit that made two devices members: both
/// apply them; neither may panic, and they must end on the same epoch.
pub fn group_entries(data: &[u8]) {
    let app = AppSigner::from_seed(&[3; 32]);
    let (alice, bob) = (device(&app, "alice"), device(&app, "bob"));
    let roster = app.sign_roster(Roster::new("private-f", 1).with("alice", "phone").with("bob", "phone"));
    let roster = roster.expect("static roster");
    let mut groups = [ChannelGroup::new("private-f"), ChannelGroup::new("private-f")];
    let mut log = vec![groups[0].start(&alice, roster).expect("start")];
    groups[0].handle_entry(&alice, 0, &log[0]);
    let package = bob.key_package().expect("key package");
    let commit = groups[0].commit(&alice, |_, _| Some(package.clone())).expect("commit").expect("an add");
    log.push(commit);
    log.extend(data.split(|b| *b == 0xA5).map(<[u8]>::to_vec));
    for (group, device) in groups.iter_mut().zip([&alice, &bob]) {
        let mut seq = 0;
        while seq < log.len() {
            let mut next = seq + 1;
            for event in group.handle_entry(device, seq as u64, &log[seq]) {
                match event {
                    GroupEvent::Publish(entry) => log.push(entry),
                    GroupEvent::Reread { from } => next = from as usize,
                    _ => {}
                }
            }
            seq = next;
        }
    }
    assert_eq!(groups[0].epoch(), groups[1].epoch(), "the members forked");
}

/// Untrusted bytes as frames from the relay (one JSON frame per line:
/// document replies, key directory answers, anything) to a link whose
/// device started a group and asked for a key package: the link must not
/// panic, and what it sends stays bounded.
pub fn group_link_frames(data: &[u8]) {
    let app = AppSigner::from_seed(&[3; 32]);
    let alice = device(&app, "alice");
    let roster = app.sign_roster(Roster::new("private-f", 1).with("alice", "phone").with("bob", "phone"));
    let mut link = GroupLink::new("private-f").expect("randomness");
    link.start(&alice, roster.expect("static roster")).expect("start");
    let t0 = sealcast_core::time::Instant::now();
    for (n, line) in data.split(|b| *b == b'\n').enumerate() {
        let Ok(frame) = serde_json::from_slice::<serde_json::Value>(line) else { continue };
        let event = frame["event"].as_str().unwrap_or_default();
        let now = t0 + std::time::Duration::from_millis(100 * n as u64);
        link.handle(&alice, event, &frame["data"], now);
        link.handle_timeout(&alice, now);
        let sent = std::iter::from_fn(|| link.poll_frame()).count();
        assert!(sent <= 64, "one frame made the link send {sent}");
        while link.poll_event().is_some() {}
    }
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
        let entries = replay("group_entries", super::group_entries);
        assert!(entries >= 4, "only {entries} group entry seeds");
        let frames = replay("group_link_frames", super::group_link_frames);
        assert!(frames >= 3, "only {frames} link frame seeds");
    }
}
