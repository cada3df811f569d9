use std::collections::VecDeque;

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn d(value: serde_json::Value) -> Delta {
    Delta::from_json(&value).unwrap()
}

fn text(doc: &Delta) -> String {
    doc.ops()
        .iter()
        .map(|op| match op {
            crate::ot::Op::Insert { insert: crate::ot::Insert::Text { text, .. }, .. } => text.clone(),
            _ => "□".into(),
        })
        .collect()
}

#[test]
fn one_op_in_flight_and_a_buffer() {
    let mut s = DocSession::new(d(json!([{"insert": "ab"}])), 3, 100).unwrap();
    s.local_edit(d(json!([{"insert": "X"}]))).unwrap();
    s.local_edit(d(json!([{"retain": 3}, {"insert": "Y"}]))).unwrap();
    // Only the first edit is sent; the second waits in the buffer.
    let first = s.poll_transmit().unwrap();
    assert_eq!((first.op_id, first.base), (100, 3));
    assert!(s.poll_transmit().is_none());
    assert_eq!(text(&s.view().unwrap()), "XabY");
    s.handle_ack(100, 4).unwrap();
    let second = s.poll_transmit().unwrap();
    assert_eq!((second.op_id, second.base), (101, 4));
    assert_eq!(text(s.canonical()), "Xab");
    s.handle_ack(101, 5).unwrap();
    assert_eq!(text(s.canonical()), "XabY");
    assert!(!s.has_pending());
}

#[test]
fn remote_ops_move_past_local_edits() {
    let mut s = DocSession::new(d(json!([{"insert": "hello"}])), 0, 1).unwrap();
    s.local_edit(d(json!([{"retain": 5}, {"insert": "!"}]))).unwrap();
    let _ = s.poll_transmit();
    // Someone else, based on 0, inserted at the start.
    s.handle_remote(1, 0, &d(json!([{"insert": ">> "}]))).unwrap();
    assert_eq!(text(&s.view().unwrap()), ">> hello!");
    assert_eq!(s.poll_event(), Some(DocEvent::RemoteChange(d(json!([{"insert": ">> "}])))));
    s.handle_ack(1, 2).unwrap();
    assert_eq!(text(s.canonical()), ">> hello!");
}

#[test]
fn protocol_violations_are_typed() {
    let mut s = DocSession::new(Delta::new(), 5, 1).unwrap();
    assert_eq!(s.handle_remote(7, 5, &Delta::new()), Err(SessionError::OutOfOrder { expected: 6, got: 7 }));
    // Started from a snapshot at 5: ops based before it cannot be placed.
    assert_eq!(s.handle_remote(6, 2, &Delta::new()), Err(SessionError::BaseOutOfRange { seq: 6, base: 2 }));
    assert_eq!(s.handle_ack(42, 6), Err(SessionError::UnexpectedAck { op_id: 42 }));
    let too_long = d(json!([{"retain": 3}, {"insert": "x"}]));
    assert!(matches!(s.local_edit(too_long), Err(SessionError::Ot(OtError::RetainPastEnd { .. }))));
    assert!(DocSession::new(d(json!([{"retain": 1}])), 0, 1).is_err());
}

#[test]
fn a_local_edit_that_splits_an_emoji_is_refused_before_it_is_sent() {
    // The minimal case of issue 11: "😀" is two UTF-16 units; an insert
    // between them is refused with a typed error and nothing is queued.
    let mut s = DocSession::new(d(json!([{"insert": "😀"}])), 1, 1).unwrap();
    let inside = d(json!([{"retain": 1}, {"insert": "x"}]));
    assert_eq!(s.local_edit(inside), Err(SessionError::Ot(OtError::SplitSurrogatePair)));
    let half_delete = d(json!([{"delete": 1}]));
    assert_eq!(s.local_edit(half_delete), Err(SessionError::Ot(OtError::SplitSurrogatePair)));
    assert!(s.poll_transmit().is_none());
    assert!(!s.has_pending());
    s.local_edit(d(json!([{"retain": 2}, {"insert": "x"}]))).unwrap();
    assert!(s.poll_transmit().is_some());
}

#[test]
fn a_sequenced_op_that_does_not_apply_is_a_no_op_for_everyone() {
    let mut s = DocSession::new(d(json!([{"insert": "😀ab"}])), 0, 1).unwrap();
    s.local_edit(d(json!([{"retain": 4}, {"insert": "!"}]))).unwrap();
    let mine = s.poll_transmit().unwrap();
    // A rogue op cutting the emoji, one past the end, one based on itself:
    // each is skipped, the document and the pending edit are untouched.
    let split = d(json!([{"retain": 1}, {"insert": "x"}]));
    assert_eq!(s.handle_remote(1, 0, &split), Ok(Integrated::Skipped(OtError::SplitSurrogatePair)));
    let past_end = d(json!([{"retain": 9}, {"delete": 1}]));
    assert!(matches!(
        s.handle_remote(2, 1, &past_end),
        Ok(Integrated::Skipped(OtError::RetainPastEnd { .. }))
    ));
    assert!(matches!(s.handle_remote(3, 3, &Delta::new()), Ok(Integrated::Skipped(_))));
    assert_eq!(s.seq(), 3);
    assert_eq!(text(s.canonical()), "😀ab");
    assert_eq!(s.poll_event(), None, "a skipped op changes nothing in the editor");
    // A later op based before the skipped ones still transforms through
    // them (as empty ops), and our op is acknowledged as usual.
    s.handle_remote(4, 0, &d(json!([{"insert": ">"}]))).unwrap();
    assert_eq!(s.handle_ack(mine.op_id, 5), Ok(Integrated::Applied));
    assert_eq!(text(s.canonical()), ">😀ab!");
}

/// A message from the sequencer to one client.
#[derive(Debug, Clone)]
enum Down {
    /// `bogus`: injected by a client outside the simulation, does not apply.
    Remote {
        seq: u64,
        base: u64,
        op: Delta,
        bogus: bool,
    },
    Ack {
        op_id: u64,
        seq: u64,
    },
}

/// Steps of the simulation: 0 = a client edits (at any position, so some
/// edits split an emoji and must be refused), 1 = deliver a submission to
/// the sequencer, 2 = deliver a server message to a client, 3 = a rogue
/// author sequences an op that does not apply (every client must skip it).
fn simulate(clients: usize, steps: &[(u8, usize, u16, u16, u8)]) {
    let mut sessions: Vec<DocSession> =
        (0..clients).map(|c| DocSession::new(Delta::new(), 0, (c as u64) << 32).unwrap()).collect();
    let mut up: Vec<VecDeque<Submission>> = vec![VecDeque::new(); clients];
    let mut down: Vec<VecDeque<Down>> = vec![VecDeque::new(); clients];
    let mut log: Vec<(u64, Delta)> = Vec::new(); // (base, raw op) in sequence order
    let sequence = |author: usize,
                    submission: Submission,
                    down: &mut Vec<VecDeque<Down>>,
                    log: &mut Vec<(u64, Delta)>| {
        log.push((submission.base, submission.op.clone()));
        let seq = log.len() as u64;
        for (client, inbox) in down.iter_mut().enumerate() {
            inbox.push_back(if client == author {
                Down::Ack { op_id: submission.op_id, seq }
            } else {
                Down::Remote { seq, base: submission.base, op: submission.op.clone(), bogus: false }
            });
        }
    };
    let deliver = |session: &mut DocSession, message: Down| match message {
        Down::Remote { seq, base, op, bogus } => {
            let outcome = session.handle_remote(seq, base, &op).unwrap();
            assert_eq!(matches!(outcome, Integrated::Skipped(_)), bogus, "op {seq}: {outcome:?}");
        }
        Down::Ack { op_id, seq } => {
            assert_eq!(session.handle_ack(op_id, seq).unwrap(), Integrated::Applied);
        }
    };
    for &(kind, who, a, b, ch) in steps {
        let c = who % clients;
        match kind % 4 {
            0 => {
                let view = sessions[c].view().unwrap();
                let len = view.len();
                let at = usize::from(a) % (len + 1);
                let mut change = Delta::new();
                change.retain(at, None);
                if b % 3 == 0 && at < len {
                    change.delete(1 + usize::from(b) % (len - at));
                } else {
                    let letter = ["a", "b", "é", "中", " ", "😀", "👩‍💻"][usize::from(ch) % 7];
                    let attrs = (b % 4 == 1).then(|| json!({"bold": true}).as_object().unwrap().clone());
                    change.insert_text(letter, attrs);
                }
                match sessions[c].local_edit(change) {
                    Ok(()) | Err(SessionError::Ot(OtError::SplitSurrogatePair)) => {}
                    Err(err) => panic!("local edit refused: {err}"),
                }
                while let Some(s) = sessions[c].poll_transmit() {
                    up[c].push_back(s);
                }
            }
            1 => {
                if let Some(s) = up[c].pop_front() {
                    sequence(c, s, &mut down, &mut log);
                }
            }
            3 => {
                // Reaches past any document this small.
                let op = if a % 2 == 0 {
                    d(json!([{"retain": 100_000}, {"insert": "!"}]))
                } else {
                    d(json!([{"delete": 100_000}]))
                };
                let base = (usize::from(b) % (log.len() + 1)) as u64;
                log.push((base, op.clone()));
                let seq = log.len() as u64;
                for inbox in down.iter_mut() {
                    inbox.push_back(Down::Remote { seq, base, op: op.clone(), bogus: true });
                }
            }
            _ => {
                if let Some(m) = down[c].pop_front() {
                    deliver(&mut sessions[c], m);
                    while let Some(s) = sessions[c].poll_transmit() {
                        up[c].push_back(s);
                    }
                }
            }
        }
    }
    // Quiesce: deliver everything until no messages remain.
    loop {
        let mut moved = false;
        for c in 0..clients {
            while let Some(s) = up[c].pop_front() {
                sequence(c, s, &mut down, &mut log);
                moved = true;
            }
            while let Some(m) = down[c].pop_front() {
                deliver(&mut sessions[c], m);
                while let Some(s) = sessions[c].poll_transmit() {
                    up[c].push_back(s);
                }
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    // Everyone converged, on the same canonical document as a replay of the
    // sequencer's log by a fresh observer.
    let mut observer = DocSession::new(Delta::new(), 0, u64::MAX / 2).unwrap();
    for (i, (base, op)) in log.iter().enumerate() {
        let _ = observer.handle_remote(i as u64 + 1, *base, op).unwrap();
    }
    for session in &sessions {
        assert!(!session.has_pending());
        assert_eq!(session.seq(), log.len() as u64);
        assert_eq!(session.canonical(), observer.canonical());
        assert_eq!(&session.view().unwrap(), observer.canonical());
    }
}

#[test]
fn three_clients_interleaved_deterministic() {
    let steps: Vec<(u8, usize, u16, u16, u8)> = (0..600u32)
        .map(|i| ((i * 7 % 3) as u8, (i * 5 % 3) as usize, (i * 13) as u16, (i * 11) as u16, i as u8))
        .collect();
    simulate(3, &steps);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random edits, random delivery order (per-link FIFO, like a
    /// WebSocket): every client converges on the sequencer's replay.
    #[test]
    fn random_sessions_converge(
        clients in 2usize..6,
        steps in prop::collection::vec((any::<u8>(), any::<usize>(), any::<u16>(), any::<u16>(), any::<u8>()), 0..300),
    ) {
        simulate(clients, &steps);
    }
}

#[test]
fn undo_reverts_own_changes_past_remote_ones() {
    let mut s = DocSession::new(d(json!([{"insert": "hello"}])), 0, 1).unwrap();
    s.local_edit(d(json!([{"retain": 5}, {"insert": " world"}]))).unwrap();
    let _ = s.poll_transmit();
    s.handle_ack(1, 1).unwrap();
    // Someone prepends text; our undo must still remove exactly " world".
    s.handle_remote(2, 1, &d(json!([{"insert": ">> "}]))).unwrap();
    assert_eq!(text(&s.view().unwrap()), ">> hello world");
    assert_eq!(s.can_undo(), (true, false));
    let change = s.undo().unwrap().unwrap();
    assert_eq!(change, d(json!([{"retain": 8}, {"delete": 6}])));
    assert_eq!(text(&s.view().unwrap()), ">> hello");
    assert_eq!(s.can_undo(), (false, true));
    // A remote edit between undo and redo moves the redo too.
    let sent = s.poll_transmit().unwrap();
    s.handle_ack(sent.op_id, 3).unwrap();
    s.handle_remote(4, 3, &d(json!([{"insert": "#"}]))).unwrap();
    s.redo().unwrap().unwrap();
    assert_eq!(text(&s.view().unwrap()), "#>> hello world");
    assert_eq!(s.undo().unwrap(), Some(d(json!([{"retain": 9}, {"delete": 6}]))));
    assert_eq!(s.undo().unwrap(), None, "the remote edits are not ours to undo");
    assert_eq!(text(&s.view().unwrap()), "#>> hello");
}

#[test]
fn an_undo_step_disappears_when_remote_edits_delete_its_text() {
    let mut s = DocSession::new(d(json!([{"insert": "abc"}])), 0, 1).unwrap();
    s.local_edit(d(json!([{"retain": 3}, {"insert": "XYZ"}]))).unwrap();
    let _ = s.poll_transmit();
    s.handle_ack(1, 1).unwrap();
    s.handle_remote(2, 1, &d(json!([{"retain": 2}, {"delete": 4}]))).unwrap();
    assert_eq!(text(&s.view().unwrap()), "ab");
    assert_eq!(s.undo().unwrap(), None);
}

#[test]
fn resubmit_reuses_the_op_id_with_a_current_base() {
    let mut s = DocSession::new(d(json!([{"insert": "ab"}])), 0, 7).unwrap();
    s.local_edit(d(json!([{"retain": 2}, {"insert": "!"}]))).unwrap();
    assert_eq!(s.poll_transmit().unwrap().base, 0);
    s.handle_remote(1, 0, &d(json!([{"insert": "x"}]))).unwrap();
    s.resubmit();
    let again = s.poll_transmit().unwrap();
    assert_eq!((again.op_id, again.base), (7, 1));
    assert_eq!(again.op, d(json!([{"retain": 3}, {"insert": "!"}])));
    assert_eq!(s.in_flight_id(), Some(7));
}
