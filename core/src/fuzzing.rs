//! Entry points for the cargo-fuzz targets in `core/fuzz/` (compiled only
//! under `--cfg fuzzing` and in tests, which replay the committed corpus).
//! Each must never panic on any input.

use crate::time::Instant;

use serde_json::Value;

use crate::crypto::{Envelope, JsonPointer, Key, KeyRing, Scope, open_fields, seal_value};

fn ring() -> KeyRing {
    KeyRing::single("room-42", 1, Key::from_bytes(&[7; 32])).expect("static key id is valid")
}

/// Untrusted bytes as an event: parse, find and open envelopes, parse a
/// lone envelope. Errors are expected; panics are bugs.
pub fn envelope_open(data: &[u8]) {
    let Ok(mut event) = serde_json::from_slice::<Value>(data) else { return };
    let scope = Scope::chat("room-42", "msg-1").expect("static scope is valid");
    let ring = ring();
    let before = event.clone();
    if open_fields(&mut event, &ring, &scope, &[]).is_err() {
        assert_eq!(event, before, "a failed open must leave the event unchanged");
    }
    if let Ok(envelope) = Envelope::from_json(&before) {
        let _ = ring.open(&scope, &JsonPointer::root(), &envelope);
        // A parsed envelope re-serialises to an equal parse.
        assert_eq!(Envelope::from_json(&envelope.to_json()).ok(), Some(envelope));
    }
}

/// Untrusted bytes as a JSON value to seal: sealing then opening must give
/// the value back exactly.
pub fn envelope_round_trip(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let key = Key::from_bytes(&[9; 32]);
    let scope = Scope::document("doc", "op", 1).expect("static scope is valid");
    let path = JsonPointer::root().child("payload");
    let Ok(envelope) = seal_value(&key, "k", 1, &scope, &path, &value, &mut crate::crypto::OsRng) else {
        return;
    };
    let parsed = Envelope::from_json(&envelope.to_json()).expect("own envelope parses");
    let opened = crate::crypto::open_value(&key, &scope, &path, &parsed).expect("own envelope opens");
    assert_eq!(opened, value);
}

/// Untrusted bytes as a client WebSocket frame: parse it the way the relay
/// does (frame, subscribe data, channel name, presence member).
pub fn frame_decode(data: &[u8]) {
    use crate::protocol::{ChannelName, ClientFrame, PresenceMember, SubscribeData};
    let Ok(frame) = ClientFrame::parse(data) else { return };
    let _ = frame.channel_name();
    if let Ok(subscribe) = frame.data_as::<SubscribeData>() {
        if let Ok(channel) = ChannelName::parse(&subscribe.channel) {
            assert!(!channel.as_str().is_empty() && channel.as_str().len() <= 200);
        }
        if let Some(channel_data) = subscribe.channel_data {
            let _ = PresenceMember::parse(&channel_data);
        }
    }
}

/// Untrusted bytes as a client's `sealcast:history` frame (the relay's
/// parser) and as a server's history page or refusal (the client's): a
/// read that parses is within the protocol's bounds.
pub fn history_read(data: &[u8]) {
    use crate::protocol::ClientFrame;
    use crate::protocol::history::{HistoryError, HistoryPage, MAX_PAGE_EVENTS, MAX_REQUEST_ID_BYTES, Read};
    if let Ok(frame) = ClientFrame::parse(data)
        && let Ok(read) = Read::parse(&frame)
    {
        assert!((1..=MAX_PAGE_EVENTS).contains(&read.limit()));
        assert!(read.request_id.as_ref().is_none_or(|id| id.len() <= MAX_REQUEST_ID_BYTES));
        assert!(!(read.since.is_some() && read.before.is_some()));
    }
    let _ = serde_json::from_slice::<HistoryPage>(data);
    let _ = serde_json::from_slice::<HistoryError>(data);
}

/// Untrusted bytes as `[document, change, other change]` deltas: parse,
/// apply, compose, transform, invert. Errors are expected; panics are bugs,
/// and every successful result must hold OT's invariants.
pub fn ot_apply(data: &[u8]) {
    use crate::ot::Delta;
    let Ok(Value::Array(parts)) = serde_json::from_slice::<Value>(data) else { return };
    for part in &parts {
        // The text parser (what the bindings use) agrees with the value's.
        assert_eq!(
            Delta::from_json_str(&part.to_string()),
            Delta::from_json(part),
            "text and value parse alike"
        );
    }
    let mut deltas = parts.iter().filter_map(|part| Delta::from_json(part).ok());
    let (Some(doc), Some(a)) = (deltas.next(), deltas.next()) else { return };
    let b = deltas.next().unwrap_or_default();
    let _ = doc.compose(&a);
    let _ = a.transform_position(doc.len(), true);
    let Ok(after) = doc.apply(&a) else { return };
    if let Ok(inverse) = a.invert(&doc) {
        assert_eq!(after.apply(&inverse).ok().as_ref(), Some(&doc), "invert must undo");
    }
    if let (Ok(b_after_a), Ok(a_after_b), Ok(after_b)) =
        (a.transform(&b, true), b.transform(&a, false), doc.apply(&b))
        && let (Ok(left), Ok(right)) = (after.apply(&b_after_a), after_b.apply(&a_after_b))
    {
        assert_eq!(left, right, "TP1");
    }
}

/// Untrusted bytes as a script of server frames and local edits for a
/// joined [`crate::doc::DocClient`]: `[[kind, a, b, x], …]`. Kind 0 is a
/// remote op `a` based on `b` whose delta `x` is sealed here (so the
/// fuzzer reaches the OT paths), 1 acks the op in flight as `a`, 2 is a
/// local edit `x`, 3 is event number `a` with raw data `x`, 4 a digest, 5
/// adds key version `a % 3 + 1` with hint `x`, 6 an edit `x` at version
/// `a`, 7 time passing by `a` ms, 8 the app refusing key version
/// `a % 3 + 1`, 9 asking for it again; anything else is a rejoin.
/// Errors and divergence are expected; panics are bugs.
pub fn doc_client(data: &[u8]) {
    use crate::doc::{DocClient, DocConfig, payload};
    use crate::ot::Delta;
    use crate::protocol::doc as wire;
    use serde_json::json;
    const EVENTS: [&str; 7] = [
        wire::STATE,
        wire::OP,
        wire::ACK,
        wire::DIGEST_RELAYED,
        wire::ERROR,
        wire::SNAPSHOT_STORED,
        wire::CURSOR,
    ];
    let Ok(Value::Array(steps)) = serde_json::from_slice::<Value>(data) else { return };
    let config = DocConfig { snapshot_every: 3, digest_every: 2, ..DocConfig::default() };
    // Half the scripts start without a key (the session key is asked for
    // after the join and settled against the recorded hint).
    let start_ring = if steps.len() % 2 == 1 { KeyRing::new() } else { ring() };
    let Ok(mut client) = DocClient::new("d", false, start_ring, "room-42", None, "f", config) else { return };
    client.join();
    let empty = json!({"head": 0, "snapshot": null, "ops": []});
    let _ = client.handle_event(EVENTS[0], &empty, None, Instant::now());
    let mut sealer = ring();
    for step in steps.iter().take(64) {
        let num = |i: usize| step.get(i).and_then(Value::as_u64).unwrap_or(0);
        let x = step.get(3).cloned().unwrap_or(Value::Null);
        let _ = match num(0) {
            0 => match Delta::from_json(&x) {
                Ok(delta) => {
                    let (seq, base) = (num(1), num(2));
                    let Ok(sealed) = payload::seal_op(&mut sealer, "room-42", "d", base, "r", &delta) else {
                        continue;
                    };
                    let op = json!({"seq": seq, "base": base, "op_id": "r", "payload": sealed});
                    client.handle_event(EVENTS[1], &op, None, Instant::now())
                }
                Err(_) => continue,
            },
            1 => {
                let Some(message) =
                    std::iter::from_fn(|| client.poll_transmit()).filter(|m| m.event == wire::SUBMIT).last()
                else {
                    continue;
                };
                let ack = json!({"op_id": message.data["op_id"], "seq": num(1)});
                client.handle_event(EVENTS[2], &ack, None, Instant::now())
            }
            2 => match Delta::from_json(&x) {
                Ok(delta) => client.local_edit(delta).map(drop),
                Err(_) => continue,
            },
            3 => client.handle_event(EVENTS[(num(1) % 7) as usize], &x, Some("u"), Instant::now()),
            4 => client.handle_event(
                EVENTS[3],
                &json!({"seq": num(1), "kv": 1, "digest": x}),
                None,
                Instant::now(),
            ),
            5 => {
                let key = Key::from_bytes(&[7; 32]);
                let hint = x.as_str().map(str::to_owned);
                client.add_key("room-42", (num(1) % 3) as u32 + 1, key, hint)
            }
            6 => match Delta::from_json(&x) {
                Ok(delta) => client.edit_at(num(1), delta).map(drop),
                Err(_) => continue,
            },
            7 => {
                client.handle_timeout(Instant::now() + std::time::Duration::from_millis(num(1)));
                Ok(())
            }
            8 => {
                client.key_refused("room-42", (num(1) % 3) as u32 + 1);
                Ok(())
            }
            9 => {
                client.ask_again("room-42", Some((num(1) % 3) as u32 + 1));
                Ok(())
            }
            _ => {
                client.join();
                Ok(())
            }
        };
        while client.poll_event().is_some() {}
        if client.is_ready() {
            assert!(client.view().is_ok(), "a ready client has a view");
        }
    }
}

thread_local! {
    static SEALED_EVENTS: std::cell::RefCell<Vec<Option<Value>>> = std::cell::RefCell::new(vec![None; 12]);
    static SEALED_OPS: std::cell::RefCell<Vec<Option<Value>>> = std::cell::RefCell::new(vec![None; 32]);
}

/// Variant `index` of a cache, made by `make` the first time.
fn sealed_variant(
    cache: &'static std::thread::LocalKey<std::cell::RefCell<Vec<Option<Value>>>>,
    index: usize,
    make: impl FnOnce(usize) -> Value,
) -> Value {
    cache.with(|cache| cache.borrow_mut()[index].get_or_insert_with(|| make(index)).clone())
}

/// The composite client ([`crate::client::ClientMachine`]) driven by a
/// byte script: frames (raw, templated, with sealed envelopes and ops that
/// open), timeouts, closes, the app's answers to its requests (in any
/// order, right or wrong), and commands, over its own link or an external
/// transport. Besides never panicking: no event hands the app ciphertext.
pub fn client_machine(data: &[u8]) {
    use std::collections::VecDeque;
    use std::time::Duration;

    use crate::client::{
        AuthRefusal, ChannelAuth, ClientMachine, DocOptions, Event, KeyGrant, KeyRefusal, KeyRequest,
        MachineConfig, Transmit,
    };
    use crate::crypto::find_envelopes;
    use crate::doc::{DocConfig, payload};
    use crate::ot::Delta;
    use crate::protocol::history::{self, Position};
    use crate::protocol::{doc as wire, server};

    const CHANNELS: [&str; 5] =
        ["presence-room", "private-a", "news", "presence-doc-d", "private-encrypted-x"];
    const EVENTS: [&str; 12] = [
        "client-chat",
        "client-presence-state",
        wire::STATE,
        wire::OP,
        wire::ACK,
        wire::DIGEST_RELAYED,
        wire::ERROR,
        wire::SNAPSHOT_STORED,
        wire::CURSOR,
        "pusher_internal:member_added",
        "pusher_internal:member_removed",
        "pusher_internal:subscription_succeeded",
    ];
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let Some(mode) = next() else { return };
    let t0 = Instant::now();
    let mut now = t0;
    let config = MachineConfig { max_held: 8, ..MachineConfig::default() };
    let external = mode & 1 == 1;
    let mut machine =
        if external { ClientMachine::external(config, now) } else { ClientMachine::new(config, now) };
    machine.connect();
    machine.handle_open(now);
    machine.handle_frame(now, &server::connection_established("1.1", 120));
    let (mut auths, mut keys): (VecDeque<(String, String)>, VecDeque<KeyRequest>) = Default::default();
    let mut steps = 0;
    while let Some(op) = next() {
        steps += 1;
        if steps > 48 {
            break;
        }
        let pick = |n: Option<u8>, len: usize| n.unwrap_or(0) as usize % len;
        let channel = CHANNELS[pick(next(), CHANNELS.len())];
        let small = u64::from(next().unwrap_or(0));
        // Some events and subscriptions carry a stream position.
        let position = (small % 3 == 0)
            .then(|| Position { offset: small % 7, epoch: ["e", "f"][small as usize % 2].into() });
        match op % 12 {
            0 => {
                let len = next().unwrap_or(0) as usize;
                let text: Vec<u8> = (0..len).filter_map(|_| next()).collect();
                machine.handle_frame(now, &String::from_utf8_lossy(&text));
            }
            1 | 2 => {
                // An event with sealed data (opens with the fuzz key, or names
                // another version) or a sealed op.
                let event = EVENTS[pick(next(), EVENTS.len())];
                // Sealing is the costly part of a step: the variants are
                // sealed once per process (the machine still opens each).
                let data = if op % 11 == 1 {
                    sealed_variant(&SEALED_EVENTS, small as usize % 12, |i| {
                        let scope = Scope::chat("room", "m").expect("static scope");
                        let mut data = serde_json::json!({"body": "secret", "n": i % 4});
                        let (kid, kv) = [("room-42", 1), ("other", 1), ("other", 2)][i / 4];
                        let mut ring = KeyRing::single(kid, kv, Key::from_bytes(&[7; 32])).expect("key");
                        let _ =
                            crate::client::sealed::seal_event(&mut data, &["/body"], &mut ring, kid, &scope);
                        data
                    })
                } else {
                    let base = u64::from(next().unwrap_or(0) % 8);
                    let mut data = sealed_variant(&SEALED_OPS, (base * 4 + small % 4) as usize, |i| {
                        let (base, at) = (i as u64 / 4, i % 4);
                        let mut delta = Delta::new();
                        delta.retain(at, None).insert_text("x😀", None);
                        let sealed = payload::seal_op(&mut ring(), "room-42", "d", base, "o", &delta)
                            .unwrap_or_default();
                        serde_json::json!({"seq": base + 1, "base": base, "op_id": "o", "payload": sealed,
                            "head": base, "ops": [], "snapshot": null, "code": "rate_limited", "digest": "x", "kv": 1})
                    });
                    data["head"] = small.into();
                    data
                };
                let raw = serde_json::value::RawValue::from_string(data.to_string()).expect("JSON");
                let user = (small % 2 == 0).then_some("u1");
                if external {
                    machine.handle_channel_event_at(
                        now,
                        channel,
                        event,
                        data,
                        user.map(str::to_owned),
                        position,
                    );
                } else {
                    let frame = server::channel_event_at(event, channel, Some(&raw), user, position.as_ref());
                    machine.handle_frame(now, &frame);
                }
            }
            3 => {
                now += Duration::from_millis(small * small * 10);
                machine.handle_timeout(now);
            }
            4 => {
                if let Some(request) = keys.pop_front() {
                    let result = match small % 5 {
                        0 => Err(KeyRefusal::Refused("refused".to_owned())),
                        4 => Err(KeyRefusal::Unavailable("offline".to_owned())),
                        1 => Ok(KeyGrant::new(9, Key::from_bytes(&[2; 32]))),
                        _ => Ok(KeyGrant::new(request.kv.unwrap_or(1), Key::from_bytes(&[7; 32]))),
                    };
                    machine.handle_key(now, &request, result);
                }
            }
            5 => {
                if let Some((socket_id, channel)) = auths.pop_front() {
                    let result = if small % 3 == 0 {
                        Err(AuthRefusal::new("no"))
                    } else {
                        let channel_data = Some(r#"{"user_id":"me"}"#.to_owned()).filter(|_| small % 2 == 0);
                        Ok(ChannelAuth { auth: "k:sig".into(), channel_data })
                    };
                    machine.handle_authorization(&socket_id, &channel, result);
                }
            }
            6 => {
                let code = [None, Some(1006), Some(4001), Some(4100), Some(4200)][small as usize % 5];
                machine.handle_closed(now, code, "closed");
                machine.handle_open(now);
                machine.handle_frame(now, &server::connection_established("2.2", small));
            }
            7 => {
                if external {
                    if small % 2 == 0 {
                        machine.handle_subscribed(now, channel);
                    } else {
                        machine.handle_unsubscribed(now, Some(channel).filter(|_| small % 3 == 0));
                    }
                } else {
                    let frame = server::subscription_succeeded(channel);
                    let frame = match &position {
                        Some(position) => server::with_position(frame, position),
                        None => frame,
                    };
                    machine.handle_frame(now, &frame);
                }
            }
            8 => {
                let _ = match small % 6 {
                    0 => machine.subscribe(channel),
                    1 => machine.trigger(channel, "client-x", serde_json::json!({"n": small})),
                    2 => {
                        let scope = Scope::chat("room", "m").expect("static scope");
                        let data = serde_json::json!({"body": "hi"});
                        machine.trigger_sealed(channel, "client-chat", data, &["/body"], "room-42", &scope)
                    }
                    3 => machine.send_presence_state(channel, "room-42", serde_json::json!(small)),
                    4 => machine.add_key("room-42", 1, Key::from_bytes(&[7; 32])),
                    _ => {
                        machine.unsubscribe(channel);
                        Ok(())
                    }
                };
            }
            11 => {
                // A history page (catch-up ids are `catch-up-N`) or refusal.
                let first = small % 5;
                let events: Vec<Value> = (first..first + small % 4)
                    .map(|offset| serde_json::json!({"offset": offset, "event": "client-chat", "data": {"n": offset}, "time_ms": 0}))
                    .collect();
                let (event, data) = if small % 4 == 3 {
                    let code = ["rate_limited", "history_off", "unavailable", "new_code"][small as usize % 4];
                    (
                        history::ERROR,
                        serde_json::json!({"request_id": format!("catch-up-{}", small % 3), "code": code, "message": "m"}),
                    )
                } else {
                    let gap = [None, Some("position_expired"), Some("epoch_changed")][small as usize % 3];
                    let epoch = ["e", "f"][small as usize % 2];
                    let id = format!("catch-up-{}", small % 3);
                    let more = small % 2 == 0;
                    let page = serde_json::json!({"request_id": id, "epoch": epoch, "head": first + 4,
                        "events": events, "more": more, "gap": gap});
                    (history::PAGE, page)
                };
                let raw = serde_json::value::RawValue::from_string(data.to_string()).expect("JSON");
                machine.handle_frame(now, &server::channel_event(event, channel, Some(&raw), None));
            }
            9 => {
                let options = DocOptions {
                    presence: true,
                    kid: "room-42".into(),
                    key_hint: None,
                    config: DocConfig { snapshot_every: 3, digest_every: 2, ..DocConfig::default() },
                };
                match small % 3 {
                    0 => {
                        let _ = machine.open_document("d", options);
                    }
                    1 => machine.close_document("d"),
                    _ => {}
                }
            }
            _ => {
                if let Ok(mut doc) = machine.document("d") {
                    let mut delta = Delta::new();
                    delta.retain(small as usize % 5, None).insert_text("é", None);
                    let _ = match small % 5 {
                        0 => doc.edit(delta).map(drop),
                        1 => doc.edit_at(small % 3, delta).map(drop),
                        2 => doc.undo().map(drop),
                        3 => doc.cursor(small as usize, 1),
                        _ => {
                            doc.restart();
                            Ok(())
                        }
                    };
                }
            }
        }
        while let Some(transmit) = machine.poll_transmit() {
            if let Transmit::Subscribe(channel) = transmit
                && small % 2 == 1
            {
                machine.handle_subscribed(now, &channel);
            }
        }
        while let Some(event) = machine.poll_event() {
            match event {
                Event::NeedAuthorization { socket_id, channel } => auths.push_back((socket_id, channel)),
                Event::NeedKey(request) => keys.push_back(request),
                Event::Message { data, .. } => {
                    assert!(find_envelopes(&data).is_empty(), "ciphertext handed to the app as a message")
                }
                _ => {}
            }
        }
        let _ = machine.poll_timeout();
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Replays the committed seed corpus (`seed-*`) of every target.
    #[test]
    fn corpus_replays_without_panics() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let mut replayed = 0;
        for (target, run) in [
            ("envelope_open", super::envelope_open as fn(&[u8])),
            ("envelope_round_trip", super::envelope_round_trip),
            ("frame_decode", super::frame_decode),
            ("ot_apply", super::ot_apply),
            ("doc_client", super::doc_client),
            ("client_machine", super::client_machine),
            ("history_read", super::history_read),
        ] {
            // Only the committed seeds: a local fuzzing run may be rewriting the rest.
            for entry in std::fs::read_dir(root.join(target)).expect("corpus directory") {
                let path = entry.expect("corpus entry").path();
                if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("seed-")) {
                    run(&std::fs::read(&path).expect("corpus file"));
                    replayed += 1;
                }
            }
        }
        assert!(replayed >= 10, "only {replayed} corpus files");
    }
}
