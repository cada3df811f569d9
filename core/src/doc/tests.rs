//! `DocClient` fed hand-made server frames (the real server is exercised
//! in `server/tests/doc_convergence.rs` and `server/tests/documents.rs`).

use crate::time::Instant;

use serde_json::{Value, json};

use super::*;
use crate::crypto::{Key, KeyRing};
use crate::ot::Delta;

fn ring() -> KeyRing {
    KeyRing::single("k", 1, Key::from_bytes(&[3; 32])).unwrap()
}

/// A client submitting each op as soon as the previous one is acknowledged
/// (pacing has its own test).
fn client(prefix: &str) -> DocClient {
    paced_client(prefix, std::time::Duration::ZERO)
}

fn paced_client(prefix: &str, submit_interval: std::time::Duration) -> DocClient {
    let config = DocConfig { snapshot_every: 4, digest_every: 2, submit_interval };
    DocClient::new("d", false, ring(), "k", Some("hint".into()), prefix, config).unwrap()
}

fn text(s: &str) -> Delta {
    let mut d = Delta::new();
    d.insert_text(s, None);
    d
}

fn frames(c: &mut DocClient) -> Vec<Value> {
    std::iter::from_fn(|| c.poll_transmit()).map(|m| json!({"event": m.event, "data": m.data})).collect()
}

fn events(c: &mut DocClient) -> Vec<DocClientEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn op(seq: u64, base: u64, op_id: &str, delta: &Delta) -> Value {
    let payload = payload::seal_op(&mut ring(), "k", "d", base, op_id, delta).unwrap();
    json!({"seq": seq, "base": base, "op_id": op_id, "payload": payload})
}

fn state(head: u64, ops: Vec<Value>) -> Value {
    json!({"head": head, "snapshot": null, "ops": ops})
}

/// [`state`] naming the document's recorded session hint.
fn hinted(head: u64, ops: Vec<Value>, key_hint: &str) -> Value {
    json!({"head": head, "snapshot": null, "ops": ops, "key_hint": key_hint})
}

fn joined(prefix: &str) -> DocClient {
    join(client(prefix))
}

fn join(mut c: DocClient) -> DocClient {
    c.join();
    assert_eq!(frames(&mut c)[0]["event"], "sealcast:doc-join");
    c.handle_event("sealcast_internal:doc-state", &state(0, vec![]), None, Instant::now()).unwrap();
    assert!(c.is_ready());
    events(&mut c);
    c
}

#[test]
fn edits_are_sealed_and_acks_complete_them() {
    let mut c = joined("a");
    c.local_edit(text("secret words")).unwrap();
    let sent = frames(&mut c);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["event"], "sealcast:doc-submit");
    assert!(!sent[0].to_string().contains("secret"), "the server must not see plaintext");
    let op_id = sent[0]["data"]["op_id"].as_str().unwrap().to_owned();
    c.handle_event(
        "sealcast_internal:doc-ack",
        &json!({"op_id": op_id, "seq": 1, "duplicate": false}),
        None,
        Instant::now(),
    )
    .unwrap();
    assert!(!c.has_pending());
    assert_eq!(c.canonical(), Some(&text("secret words")));
}

#[test]
fn a_missing_key_is_asked_for_once_and_nothing_is_dropped() {
    let mut c = joined("a");
    let mut other = KeyRing::single("k", 2, Key::from_bytes(&[4; 32])).unwrap();
    let p1 = payload::seal_op(&mut other, "k", "d", 0, "b-1", &text("x")).unwrap();
    let p2 = payload::seal_op(&mut other, "k", "d", 1, "b-2", &text("y")).unwrap();
    for (seq, base, id, p) in [(1, 0, "b-1", p1), (2, 1, "b-2", p2)] {
        let data = json!({"seq": seq, "base": base, "op_id": id, "payload": p});
        c.handle_event("sealcast_internal:doc-op", &data, None, Instant::now()).unwrap();
    }
    assert_eq!(
        events(&mut c),
        vec![DocClientEvent::KeyNeeded { kid: "k".into(), kv: Some(2), key_hint: None }]
    );
    assert_eq!(c.seq(), 0);
    c.add_key("k", 2, Key::from_bytes(&[4; 32]), None).unwrap();
    assert_eq!(c.seq(), 2);
    assert_eq!(c.canonical(), Some(&text("yx")));
}

#[test]
fn a_digest_mismatch_stops_input_and_offers_unsent_changes() {
    let mut c = joined("a");
    c.handle_event("sealcast_internal:doc-op", &op(1, 0, "b-1", &text("x")), None, Instant::now()).unwrap();
    c.handle_event("sealcast_internal:doc-op", &op(2, 1, "b-2", &text("y")), None, Instant::now()).unwrap();
    c.local_edit(text("mine")).unwrap();
    // A matching digest is fine; a different one is divergence.
    let own = payload::digest(&Key::from_bytes(&[3; 32]), "d", 2, c.canonical().unwrap());
    c.handle_event(
        "sealcast_internal:doc-digest",
        &json!({"seq": 2, "kv": 1, "digest": own}),
        None,
        Instant::now(),
    )
    .unwrap();
    assert!(c.is_ready());
    c.handle_event(
        "sealcast_internal:doc-digest",
        &json!({"seq": 2, "kv": 1, "digest": "AAAA"}),
        None,
        Instant::now(),
    )
    .unwrap();
    let last = events(&mut c).pop().unwrap();
    assert_eq!(
        last,
        DocClientEvent::Diverged {
            seq: 2,
            reason: DivergeReason::DigestMismatch,
            unsent: Some(text("mine"))
        }
    );
    assert!(matches!(c.local_edit(text("more")), Err(DocClientError::Diverged)));
    c.restart();
    assert_eq!(frames(&mut c).last().unwrap()["data"], json!({"key_hint": "hint"}));
}

#[test]
fn the_author_of_a_checkpoint_publishes_its_digest_and_snapshot() {
    let mut c = joined("a");
    c.handle_event("sealcast_internal:doc-op", &op(1, 0, "b-1", &text("x")), None, Instant::now()).unwrap();
    c.local_edit(text("ab")).unwrap();
    let id = frames(&mut c)[0]["data"]["op_id"].clone();
    c.handle_event("sealcast_internal:doc-ack", &json!({"op_id": id, "seq": 2}), None, Instant::now())
        .unwrap();
    let sent = frames(&mut c);
    assert_eq!(sent[0]["event"], "sealcast:doc-digest");
    assert_eq!(sent[0]["data"]["seq"], 2);
    // Snapshot every 4: not yet. At 4 (ours), yes, before the next submit.
    c.local_edit(text("c")).unwrap();
    let id = frames(&mut c)[0]["data"]["op_id"].clone();
    c.handle_event("sealcast_internal:doc-op", &op(3, 2, "b-2", &text("y")), None, Instant::now()).unwrap();
    c.local_edit(text("d")).unwrap();
    c.handle_event("sealcast_internal:doc-ack", &json!({"op_id": id, "seq": 4}), None, Instant::now())
        .unwrap();
    let sent: Vec<_> = frames(&mut c).iter().map(|f| f["event"].as_str().unwrap().to_owned()).collect();
    assert_eq!(sent, ["sealcast:doc-digest", "sealcast:doc-snapshot", "sealcast:doc-submit"]);
}

#[test]
fn a_rejoin_whose_history_was_compacted_reloads_and_offers_unsent() {
    let mut c = joined("a");
    c.handle_event("sealcast_internal:doc-op", &op(1, 0, "b-1", &text("x")), None, Instant::now()).unwrap();
    c.local_edit(text("typed offline")).unwrap();
    frames(&mut c);
    events(&mut c);
    // Reconnect: the ops after 1 are gone (compacted behind a snapshot at 1500).
    c.join();
    let join = frames(&mut c).pop().unwrap();
    assert_eq!(join["data"]["since"], 1);
    assert!(join["data"]["op_id"].is_string(), "asks whether the in-flight op was sequenced");
    c.handle_event(
        "sealcast_internal:doc-state",
        &json!({"head": 2000, "snapshot": null, "ops": [], "op_seq": null}),
        None,
        Instant::now(),
    )
    .unwrap();
    assert_eq!(
        frames(&mut c).pop().unwrap()["data"],
        json!({"key_hint": "hint"}),
        "falls back to the snapshot"
    );
    let snapshot = payload::seal_snapshot(&mut ring(), "k", "d", 2000, &text("new world")).unwrap();
    let state =
        json!({"head": 2000, "snapshot": {"seq": 2000, "payload": snapshot, "key_hint": "hint"}, "ops": []});
    c.handle_event("sealcast_internal:doc-state", &state, None, Instant::now()).unwrap();
    let events = events(&mut c);
    assert!(
        matches!(&events[..], [DocClientEvent::Ready { view, seq: 2000, unsent: Some(unsent), .. }]
            if *view == text("new world") && *unsent == text("typed offline")),
        "{events:?}"
    );
}

#[test]
fn bad_frames_are_typed_errors_and_bad_ops_are_skipped() {
    let mut c = joined("a");
    assert!(matches!(
        c.handle_event("sealcast_internal:doc-op", &json!({"seq": "x"}), None, Instant::now()),
        Err(DocClientError::Malformed(_))
    ));
    let mut forged = op(1, 0, "b-1", &text("x"));
    forged["op_id"] = json!("b-9"); // the server relabelled someone's op
    c.handle_event("sealcast_internal:doc-op", &forged, None, Instant::now()).unwrap();
    let garbage = json!({"seq": 2, "base": 0, "op_id": "m-1", "payload": "garbage", "user_id": "mallory"});
    c.handle_event("sealcast_internal:doc-op", &garbage, None, Instant::now()).unwrap();
    let skipped: Vec<_> = events(&mut c)
        .into_iter()
        .map(|e| match e {
            DocClientEvent::Skipped { seq, op_id, user_id, .. } => (seq, op_id, user_id),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(skipped, vec![(1, "b-9".into(), None), (2, "m-1".into(), Some("mallory".into()))]);
    // The document goes on.
    c.handle_event("sealcast_internal:doc-op", &op(3, 0, "b-2", &text("ok")), None, Instant::now()).unwrap();
    assert_eq!(c.canonical(), Some(&text("ok")));
    assert!(c.is_ready());
}

#[test]
fn remote_cursors_follow_later_edits() {
    let mut a = joined("a");
    let mut b = joined("b");
    for c in [&mut a, &mut b] {
        c.handle_event("sealcast_internal:doc-op", &op(1, 0, "x-1", &text("hello")), None, Instant::now())
            .unwrap();
    }
    a.cursor(2, 3).unwrap();
    let cursor = frames(&mut a).pop().unwrap();
    assert_eq!(cursor["event"], CURSOR_EVENT);
    b.handle_event("sealcast_internal:doc-op", &op(2, 1, "x-2", &text(">>")), None, Instant::now()).unwrap();
    events(&mut b);
    b.handle_event(CURSOR_EVENT, &cursor["data"], Some("ann"), Instant::now()).unwrap();
    assert_eq!(
        events(&mut b),
        vec![DocClientEvent::Cursor { user_id: Some("ann".into()), index: 4, length: 3 }]
    );
}

#[test]
fn a_cursor_under_a_key_the_ring_lacks_is_dropped_without_stopping_the_document() {
    let mut c = joined("a");
    let mut made_up = KeyRing::single("k", 999, Key::from_bytes(&[9; 32])).unwrap();
    let cursor = json!({"seq": 0, "cursor": payload::seal_cursor(&mut made_up, "k", "d", 0, 0, 0).unwrap()});
    c.handle_event(CURSOR_EVENT, &cursor, Some("mallory"), Instant::now()).unwrap();
    let seen = events(&mut c);
    assert!(
        matches!(&seen[..], [DocClientEvent::CursorError { user_id: Some(u), .. }] if u == "mallory"),
        "no key request, no wait: {seen:?}"
    );
    // The next op is integrated at once.
    c.handle_event("sealcast_internal:doc-op", &op(1, 0, "b-1", &text("on")), None, Instant::now()).unwrap();
    assert_eq!(c.canonical(), Some(&text("on")));
}

#[test]
fn ops_under_a_key_the_app_refused_are_skipped_and_it_is_not_asked_for_again() {
    let mut c = joined("a");
    let mut made_up = KeyRing::single("k", 999, Key::from_bytes(&[9; 32])).unwrap();
    for (seq, id) in [(1, "m-1"), (2, "m-2")] {
        let sealed = payload::seal_op(&mut made_up, "k", "d", 0, id, &text("junk")).unwrap();
        let data = json!({"seq": seq, "base": 0, "op_id": id, "payload": sealed});
        c.handle_event("sealcast_internal:doc-op", &data, Some("mallory"), Instant::now()).unwrap();
    }
    c.handle_event("sealcast_internal:doc-op", &op(3, 0, "b-1", &text("ok")), None, Instant::now()).unwrap();
    let asked = |e: &DocClientEvent| matches!(e, DocClientEvent::KeyNeeded { kv: Some(999), .. });
    assert_eq!(events(&mut c).iter().filter(|e| asked(e)).count(), 1);
    assert_eq!(c.seq(), 0, "waiting for the key");
    c.key_refused("k", 999);
    let seen = events(&mut c);
    let skipped: Vec<u64> = seen
        .iter()
        .filter_map(|e| match e {
            DocClientEvent::Skipped { seq, reason: SkipReason::KeyRefused { .. }, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(skipped, vec![1, 2], "both skipped, the second without asking: {seen:?}");
    assert!(!seen.iter().any(asked));
    assert_eq!(c.canonical(), Some(&text("ok")));
    assert!(c.is_ready());
    // A restart (after `Diverged`, say) asks the app again.
    c.restart();
    frames(&mut c);
    let sealed = payload::seal_op(&mut made_up, "k", "d", 0, "m-1", &text("junk")).unwrap();
    let history = state(1, vec![json!({"seq": 1, "base": 0, "op_id": "m-1", "payload": sealed})]);
    c.handle_event("sealcast_internal:doc-state", &history, None, Instant::now()).unwrap();
    assert_eq!(events(&mut c).iter().filter(|e| asked(e)).count(), 1, "asked again after the restart");
}

#[test]
fn asking_again_raises_key_needed_again_while_the_key_is_missing() {
    let mut c = joined("a");
    let mut other = KeyRing::single("k", 2, Key::from_bytes(&[4; 32])).unwrap();
    let sealed = payload::seal_op(&mut other, "k", "d", 0, "b-1", &text("x")).unwrap();
    let data = json!({"seq": 1, "base": 0, "op_id": "b-1", "payload": sealed});
    c.handle_event("sealcast_internal:doc-op", &data, None, Instant::now()).unwrap();
    let needed = |c: &mut DocClient| {
        events(c).into_iter().filter(|e| matches!(e, DocClientEvent::KeyNeeded { kv: Some(2), .. })).count()
    };
    assert_eq!(needed(&mut c), 1);
    c.ask_again("k", Some(1)); // not asked: nothing
    assert_eq!(needed(&mut c), 0);
    c.ask_again("k", Some(2));
    assert_eq!(needed(&mut c), 1, "asked again");
    c.add_key("k", 2, Key::from_bytes(&[4; 32]), None).unwrap();
    assert_eq!(c.canonical(), Some(&text("x")));
    c.ask_again("k", Some(2)); // answered: nothing left to ask
    assert_eq!(needed(&mut c), 0);
}

#[test]
fn a_replayed_op_is_skipped() {
    let mut c = joined("a");
    let first = op(1, 0, "b-1", &text("x"));
    c.handle_event("sealcast_internal:doc-op", &first, None, Instant::now()).unwrap();
    // The server sequences the same sealed op again (base 0 is still valid).
    let mut replay = first.clone();
    replay["seq"] = json!(2);
    c.handle_event("sealcast_internal:doc-op", &replay, None, Instant::now()).unwrap();
    assert!(matches!(events(&mut c).pop(), Some(DocClientEvent::Skipped { seq: 2, .. })));
    assert_eq!(c.canonical(), Some(&text("x")), "the replay was not applied");
    assert_eq!(c.seq(), 2);
}

#[test]
fn messages_held_for_a_missing_key_are_bounded() {
    let mut c = joined("a");
    let mut other = KeyRing::single("k", 9, Key::from_bytes(&[8; 32])).unwrap();
    let sealed = payload::seal_op(&mut other, "k", "d", 0, "b-1", &text("x")).unwrap();
    for seq in 1..=10_001u64 {
        let data = json!({"seq": seq, "base": 0, "op_id": format!("b-{seq}"), "payload": sealed});
        c.handle_event("sealcast_internal:doc-op", &data, None, Instant::now()).unwrap();
    }
    assert!(matches!(
        events(&mut c).pop(),
        Some(DocClientEvent::Diverged { reason: DivergeReason::BadRemote(_), .. })
    ));
    assert!(matches!(c.local_edit(text("y")), Err(DocClientError::Diverged)));
}

fn submitted(c: &mut DocClient) -> Vec<String> {
    frames(c)
        .into_iter()
        .filter(|f| f["event"] == "sealcast:doc-submit")
        .map(|f| f["data"]["op_id"].as_str().unwrap().to_owned())
        .collect()
}

fn refuse(c: &mut DocClient, code: &str, op_id: &str, now: Instant) {
    let error = json!({"code": code, "message": "no", "op_id": op_id});
    c.handle_event("sealcast_internal:doc-error", &error, None, now).unwrap();
}

#[test]
fn a_rate_limited_op_is_resubmitted_after_a_growing_wait() {
    let mut c = joined("a");
    let t0 = Instant::now();
    c.local_edit(text("x")).unwrap();
    let id = submitted(&mut c).pop().unwrap();
    refuse(&mut c, "rate_limited", &id, t0);
    assert!(matches!(events(&mut c)[..], [DocClientEvent::Refused { retry_in: Some(RETRY_FIRST), .. }]));
    assert_eq!(c.poll_timeout(), Some(t0 + RETRY_FIRST));
    c.handle_timeout(t0);
    assert!(submitted(&mut c).is_empty(), "not before the wait is over");
    c.handle_timeout(t0 + RETRY_FIRST);
    assert_eq!(submitted(&mut c), vec![id.clone()], "the same op id again");
    refuse(&mut c, "rate_limited", &id, t0);
    assert_eq!(c.poll_timeout(), Some(t0 + 2 * RETRY_FIRST), "the wait doubles");
    // Edits typed meanwhile are kept, and go out after the ack.
    c.local_edit(Delta::from_json(&json!([{"retain": 1}, {"insert": "y"}])).unwrap()).unwrap();
    c.handle_timeout(t0 + RETRY_FIRST * 2);
    assert_eq!(submitted(&mut c), vec![id.clone()]);
    c.handle_event("sealcast_internal:doc-ack", &json!({"op_id": id, "seq": 1}), None, t0).unwrap();
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(submitted(&mut c).len(), 1, "the buffered edit follows");
    assert_eq!(c.view().unwrap(), text("xy"));
}

#[test]
fn an_op_refused_for_good_is_handed_back_and_the_view_reset() {
    let mut c = joined("a");
    c.local_edit(text("big")).unwrap();
    let id = submitted(&mut c).pop().unwrap();
    c.local_edit(Delta::from_json(&json!([{"retain": 3}, {"insert": "!"}])).unwrap()).unwrap();
    refuse(&mut c, "too_large", &id, Instant::now());
    let seen = events(&mut c);
    assert!(matches!(&seen[0], DocClientEvent::Refused { retry_in: None, .. }), "{seen:?}");
    assert!(
        matches!(&seen[1], DocClientEvent::Ready { view, unsent: Some(unsent), .. }
            if view.is_empty() && *unsent == text("big!")),
        "{seen:?}"
    );
    assert!(!c.has_pending());
    // A refusal naming some other op id changes nothing and tells the app
    // nothing.
    c.local_edit(text("z")).unwrap();
    refuse(&mut c, "too_large", "someone-else", Instant::now());
    assert!(c.has_pending());
    assert!(events(&mut c).iter().all(|e| !matches!(e, DocClientEvent::Refused { .. })));
}

#[test]
fn a_rejoin_resends_a_refused_op_once_and_late_refusals_of_its_copies_are_dropped() {
    // Found by the convergence test: an op rate-limited, then a reconnect.
    // The join's `Ready` resends the op; the retry timed from the refusal
    // must not send a second copy, and a refusal of an earlier copy (here
    // after the op was acknowledged) is nobody's business.
    let mut c = joined("a");
    let t0 = Instant::now();
    c.local_edit(text("x")).unwrap();
    let id = submitted(&mut c).pop().unwrap();
    refuse(&mut c, "rate_limited", &id, t0);
    events(&mut c);
    assert!(c.poll_timeout().is_some());
    c.join(); // the connection dropped
    frames(&mut c);
    refuse(&mut c, "rate_limited", &id, t0); // answered on the old connection
    c.handle_event("sealcast_internal:doc-state", &state(0, vec![]), None, t0).unwrap();
    assert_eq!(submitted(&mut c), vec![id.clone()], "the join resends it");
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t0 + RETRY_MAX);
    assert!(submitted(&mut c).is_empty(), "no second copy");
    c.handle_event("sealcast_internal:doc-ack", &json!({"op_id": id, "seq": 1}), None, t0).unwrap();
    c.local_edit(Delta::from_json(&json!([{"retain": 1}, {"insert": "y"}])).unwrap()).unwrap();
    let next = submitted(&mut c).pop().unwrap();
    for code in ["rate_limited", "storage", "unavailable", "too_large"] {
        refuse(&mut c, code, &id, t0);
    }
    assert!(events(&mut c).is_empty());
    assert_eq!(c.poll_timeout(), None);
    assert!(c.has_pending());
    c.handle_event("sealcast_internal:doc-ack", &json!({"op_id": next, "seq": 2}), None, t0).unwrap();
    assert_eq!(c.view().unwrap(), text("xy"));
}

#[test]
fn a_snapshot_or_digest_refused_for_now_is_retried_quietly() {
    let mut c = joined("a");
    for code in ["rate_limited", "storage", "unavailable"] {
        for request in ["sealcast:doc-snapshot", "sealcast:doc-digest"] {
            let error = json!({"code": code, "message": "no", "request": request});
            c.handle_event("sealcast_internal:doc-error", &error, None, Instant::now()).unwrap();
        }
    }
    assert!(events(&mut c).is_empty());
    assert_eq!(c.poll_timeout(), None, "not a join or submit retry");
}

#[test]
fn an_op_id_conflict_rejoins_then_resubmits_under_a_fresh_id() {
    let mut c = joined("a");
    c.local_edit(text("mine")).unwrap();
    let id = submitted(&mut c).pop().unwrap();
    // First a rejoin asking about the op: it may be ours after all.
    refuse(&mut c, "conflict", &id, Instant::now());
    let join = frames(&mut c).pop().unwrap();
    assert_eq!(
        (join["event"].as_str(), join["data"]["op_id"].as_str()),
        (Some("sealcast:doc-join"), Some(&*id))
    );
    // The rejoin finds nothing of ours: the same id goes again ...
    c.handle_event("sealcast_internal:doc-state", &state(0, vec![]), None, Instant::now()).unwrap();
    assert_eq!(submitted(&mut c), vec![id.clone()]);
    // ... and conflicts again: then it is someone else's, ours goes fresh.
    refuse(&mut c, "conflict", &id, Instant::now());
    let again = submitted(&mut c);
    assert_eq!(again.len(), 1);
    assert_ne!(again[0], id);
    assert!(events(&mut c).is_empty());
}

#[test]
fn an_op_id_conflict_over_our_own_earlier_op_is_its_ack() {
    // Our op was sequenced before a reconnect; the resubmission conflicts
    // (the server knew us under another identity then); the rejoin finds
    // the op among the ops since and takes it as the ack: applied once.
    let mut c = joined("a");
    c.local_edit(text("once")).unwrap();
    let sent: Vec<Value> = frames(&mut c);
    let id = sent[0]["data"]["op_id"].as_str().unwrap().to_owned();
    let payload = sent[0]["data"]["payload"].clone();
    refuse(&mut c, "conflict", &id, Instant::now());
    frames(&mut c);
    let ours = json!({"seq": 1, "base": 0, "op_id": id, "payload": payload});
    c.handle_event("sealcast_internal:doc-state", &state(1, vec![ours]), None, Instant::now()).unwrap();
    assert!(!c.has_pending());
    assert_eq!(c.canonical(), Some(&text("once")));
    assert!(submitted(&mut c).is_empty(), "nothing resubmitted");
}

#[test]
fn an_edit_at_an_older_version_lands_where_the_user_typed() {
    // Issue 11, item 3: document "abc"; B's insert of "X" at 0 reached the
    // SDK but not the editor; the user types "Y" after "abc".
    let mut a = joined("a");
    a.handle_event("sealcast_internal:doc-op", &op(1, 0, "b-1", &text("abc")), None, Instant::now()).unwrap();
    let DocClientEvent::RemoteChange { change, version: shown, .. } = events(&mut a).pop().unwrap() else {
        panic!("a remote change")
    };
    let mut editor = Delta::new().apply(&change).unwrap();
    a.handle_event("sealcast_internal:doc-op", &op(2, 1, "b-2", &text("X")), None, Instant::now()).unwrap();
    let typed = Delta::from_json(&json!([{"retain": 3}, {"insert": "Y"}])).unwrap();
    editor = editor.apply(&typed).unwrap();
    let mut at = a.edit_at(shown, typed).unwrap();
    // The editor applies what it receives in order, only at its version.
    for event in events(&mut a) {
        if let DocClientEvent::RemoteChange { change, base, version } = event
            && base == at
        {
            editor = editor.apply(&change).unwrap();
            at = version;
        }
    }
    assert_eq!(editor, text("XabcY"));
    assert_eq!(a.view().unwrap(), text("XabcY"));
    assert_eq!(a.versioned_view().unwrap().1, at);
}

#[test]
fn undo_arrives_as_a_change_in_order() {
    let mut c = joined("a");
    let v = c.local_edit(text("hi")).unwrap();
    assert!(c.undo().unwrap());
    let events = events(&mut c);
    assert!(
        matches!(&events[..], [DocClientEvent::RemoteChange { change, base, .. }]
            if *base == v && c.view().unwrap().is_empty() && text("hi").apply(change).unwrap().is_empty()),
        "{events:?}"
    );
    assert!(c.redo().unwrap());
    assert_eq!(c.view().unwrap(), text("hi"));
    assert!(!c.redo().unwrap(), "nothing more to redo");
}

#[test]
fn a_joiner_falls_back_from_a_snapshot_that_does_not_open() {
    // Issue 11, item 5: a co-subscriber without the key uploaded garbage as
    // the newest snapshot; the server keeps the older ones and their ops.
    let mut c = client("j");
    c.join();
    frames(&mut c);
    let garbage = json!({"seq": 3, "payload": "garbage", "key_hint": null});
    let state = json!({"head": 3, "snapshot": garbage, "snapshots": [3, 1], "ops": []});
    c.handle_event("sealcast_internal:doc-state", &state, None, Instant::now()).unwrap();
    assert!(!c.is_ready());
    let retry = frames(&mut c).pop().unwrap();
    assert_eq!(retry["data"], json!({"snapshot": 1, "key_hint": "hint"}), "asks for the older snapshot");
    let good = payload::seal_snapshot(&mut ring(), "k", "d", 1, &text("ab")).unwrap();
    let state = json!({"head": 3, "snapshot": {"seq": 1, "payload": good, "key_hint": null}, "snapshots": [3, 1],
        "ops": [op(2, 1, "b-1", &Delta::from_json(&json!([{"retain": 2}, {"insert": "c"}])).unwrap()),
                op(3, 2, "b-2", &Delta::from_json(&json!([{"retain": 3}, {"insert": "d"}])).unwrap())]});
    c.handle_event("sealcast_internal:doc-state", &state, None, Instant::now()).unwrap();
    assert!(c.is_ready());
    assert_eq!(c.view().unwrap(), text("abcd"));

    // With no older snapshot left, the whole history is replayed.
    let mut d = client("k");
    d.join();
    frames(&mut d);
    let state = json!({"head": 1, "snapshot": garbage, "snapshots": [3], "ops": []});
    d.handle_event("sealcast_internal:doc-state", &state, None, Instant::now()).unwrap();
    assert_eq!(frames(&mut d).pop().unwrap()["data"], json!({"since": 0, "key_hint": "hint"}));
    let state =
        json!({"head": 1, "snapshot": garbage, "snapshots": [3], "ops": [op(1, 0, "b-1", &text("x"))]});
    d.handle_event("sealcast_internal:doc-state", &state, None, Instant::now()).unwrap();
    assert_eq!(d.view().unwrap(), text("x"));
}

#[test]
fn a_rejoin_that_continues_the_session_keeps_the_editors_version() {
    let mut c = joined("a");
    c.handle_event("sealcast_internal:doc-op", &op(1, 0, "b-1", &text("abc")), None, Instant::now()).unwrap();
    let shown = c.version();
    events(&mut c);
    // A reconnect: the rejoin catches up on op 2 (an insert at 0).
    c.join();
    assert_eq!(frames(&mut c).pop().unwrap()["data"]["since"], 1);
    let state = state(2, vec![op(2, 1, "b-2", &text("X"))]);
    c.handle_event("sealcast_internal:doc-state", &state, None, Instant::now()).unwrap();
    let caught_up = events(&mut c);
    assert!(
        matches!(&caught_up[..], [DocClientEvent::RemoteChange { base, .. }] if *base == shown),
        "the missed op arrives as a change, with no Ready: {caught_up:?}"
    );
    // The editor had not applied it and typed at the end: still fine.
    let typed = Delta::from_json(&json!([{"retain": 3}, {"insert": "Y"}])).unwrap();
    c.edit_at(shown, typed).unwrap();
    assert_eq!(c.view().unwrap(), text("XabcY"));
}

// ---- the document session key (docs/keys.md) ----

fn keyless(prefix: &str) -> DocClient {
    DocClient::new("d", false, KeyRing::new(), "k", None, prefix, DocConfig::default()).unwrap()
}

#[test]
fn a_client_without_a_key_asks_for_the_recorded_session_and_claims_it_after() {
    let mut c = keyless("a");
    c.join();
    assert_eq!(frames(&mut c)[0]["data"], json!({}), "nothing to claim without a key");
    let state = hinted(1, vec![op(1, 0, "b-1", &text("x"))], "salt-1");
    c.handle_event("sealcast_internal:doc-state", &state, None, Instant::now()).unwrap();
    assert!(!c.is_ready());
    let needed = DocClientEvent::KeyNeeded { kid: "k".into(), kv: None, key_hint: Some("salt-1".into()) };
    assert_eq!(events(&mut c), vec![needed]);
    // The provider's hint counts only for a new session.
    c.add_key("k", 1, Key::from_bytes(&[3; 32]), Some("ignored".into())).unwrap();
    assert!(c.is_ready());
    assert_eq!(c.canonical(), Some(&text("x")));
    c.join();
    assert_eq!(frames(&mut c).pop().unwrap()["data"]["key_hint"], "salt-1");
}

#[test]
fn a_new_document_claims_a_new_session_key_and_yields_to_an_earlier_claim() {
    let mut c = keyless("a");
    c.join();
    frames(&mut c);
    c.handle_event("sealcast_internal:doc-state", &state(0, vec![]), None, Instant::now()).unwrap();
    let new_session = DocClientEvent::KeyNeeded { kid: "k".into(), kv: None, key_hint: None };
    assert_eq!(events(&mut c), vec![new_session]);
    // A hint the server would refuse is refused here, the key not taken.
    let long = Some("h".repeat(257));
    assert!(matches!(c.add_key("k", 1, Key::from_bytes(&[9; 32]), long), Err(DocClientError::Malformed(_))));
    // The new key comes with its hint: joined again, claiming it.
    c.add_key("k", 1, Key::from_bytes(&[9; 32]), Some("mine".into())).unwrap();
    assert!(!c.is_ready());
    assert_eq!(frames(&mut c), vec![json!({"event": "sealcast:doc-join", "data": {"key_hint": "mine"}})]);
    // Another client's claim came first: switch to its session.
    let lost = hinted(1, vec![op(1, 0, "b-1", &text("x"))], "theirs");
    c.handle_event("sealcast_internal:doc-state", &lost, None, Instant::now()).unwrap();
    assert!(!c.is_ready());
    let theirs = DocClientEvent::KeyNeeded { kid: "k".into(), kv: None, key_hint: Some("theirs".into()) };
    assert_eq!(events(&mut c), vec![theirs]);
    c.add_key("k", 1, Key::from_bytes(&[3; 32]), None).unwrap();
    assert!(c.is_ready(), "the held state opens under the recorded session's key");
    assert_eq!(c.canonical(), Some(&text("x")));
    // What it seals now opens for the others, and its snapshots name the
    // recorded session.
    c.local_edit(text("y")).unwrap();
    let submit = frames(&mut c).pop().unwrap();
    let payload = submit["data"]["payload"].as_str().unwrap();
    let op_id = submit["data"]["op_id"].as_str().unwrap();
    assert!(payload::open_op(&ring(), "d", 1, op_id, payload).is_ok());
    c.join();
    assert_eq!(frames(&mut c).pop().unwrap()["data"]["key_hint"], "theirs");
}

#[test]
fn a_key_the_app_named_for_another_session_is_replaced_by_the_recorded_one() {
    // `client` holds key 1 as session "hint"; the server recorded "other".
    let mut c = client("a");
    c.join();
    assert_eq!(frames(&mut c)[0]["data"], json!({"key_hint": "hint"}));
    let other = hinted(0, vec![], "other");
    c.handle_event("sealcast_internal:doc-state", &other, None, Instant::now()).unwrap();
    assert!(!c.is_ready());
    let needed = DocClientEvent::KeyNeeded { kid: "k".into(), kv: None, key_hint: Some("other".into()) };
    assert_eq!(events(&mut c), vec![needed]);
    c.add_key("k", 1, Key::from_bytes(&[5; 32]), None).unwrap();
    assert!(c.is_ready());
    // A key the app gave without a hint is used as it is (a fixed key per
    // document): nothing is claimed, no recorded hint replaces it.
    let mut fixed = DocClient::new("d", false, ring(), "k", None, "f", DocConfig::default()).unwrap();
    fixed.join();
    assert_eq!(frames(&mut fixed)[0]["data"], json!({}));
    let recorded = hinted(0, vec![], "someone's");
    fixed.handle_event("sealcast_internal:doc-state", &recorded, None, Instant::now()).unwrap();
    assert!(fixed.is_ready());
}

/// A fast typist: keystrokes 16 ms apart (60/s), each acknowledged 3 ms
/// after it is sent. With a 25 ms submit interval the ops go out at most
/// every 25 ms, the keystrokes typed meanwhile composed into them, and
/// the document is what was typed; without pacing every keystroke is its
/// own op (what met the server's 50 ops/s limit).
#[test]
fn a_fast_typist_is_paced_into_fewer_ops() {
    let interval = std::time::Duration::from_millis(25);
    // 63 keystrokes (every 16 ms for 1 s): paced, at most one op per 25 ms.
    for (submit_interval, most_ops) in [(interval, 41), (std::time::Duration::ZERO, 63)] {
        let mut c = join(paced_client("a", submit_interval));
        let t0 = Instant::now();
        let ms = |n: u64| t0 + std::time::Duration::from_millis(n);
        let mut sent: Vec<(u64, String)> = Vec::new();
        let mut seq = 0;
        let mut typed = String::new();
        // One second of typing, on a 1 ms clock: time is handed to the
        // client as a driver would (before an edit, and when it asked).
        for now in 0..=1100u64 {
            if now % 16 == 0 && now < 1000 {
                c.handle_timeout(ms(now));
                let letter = char::from(b'a' + (now / 16 % 26) as u8);
                let mut edit = Delta::new();
                edit.retain(typed.chars().count(), None);
                edit.insert_text(&letter.to_string(), None);
                c.local_edit(edit).unwrap();
                typed.push(letter);
            }
            if c.poll_timeout().is_some_and(|at| at <= ms(now)) {
                c.handle_timeout(ms(now));
            }
            for op_id in submitted(&mut c) {
                sent.push((now, op_id));
            }
            // The ack of the oldest unacknowledged op, 3 ms after it went.
            if let Some((at, op_id)) = sent.get(seq as usize).cloned()
                && now >= at + 3
            {
                seq += 1;
                let ack = json!({"op_id": op_id, "seq": seq});
                c.handle_event("sealcast_internal:doc-ack", &ack, None, ms(now)).unwrap();
            }
        }
        assert!(sent.len() <= most_ops, "{} ops for 63 keystrokes ({submit_interval:?})", sent.len());
        if submit_interval.is_zero() {
            assert_eq!(sent.len(), 63, "unpaced: an op per keystroke");
        } else {
            let gaps = sent.windows(2).map(|w| w[1].0 - w[0].0);
            assert!(gaps.clone().all(|gap| gap >= 25), "ops closer than the interval: {sent:?}");
        }
        assert!(!c.has_pending());
        assert_eq!(c.view().unwrap(), text(&typed));
    }
}
