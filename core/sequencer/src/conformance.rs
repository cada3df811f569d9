//! The contract every [`DocStore`] must meet, as tests: the server runs
//! them against its SQLite and Redis stores, this crate against
//! [`MemoryStore`](crate::MemoryStore). (Feature `conformance`.)

use crate::join::{JoinQuery, read_join};
use crate::store::{AppendOutcome, DocId, DocStore, Page, Snapshot, StoreError};

/// The contract every [`DocStore`] must meet; run against each backend: every [`DocStore`] implementation passes them.
pub fn conformance(store: &dyn DocStore) {
    let count = |n| Page { ops: n, bytes: usize::MAX };
    let doc = DocId::new("app", "doc-1");
    let other = DocId::new("app", "doc-2");
    let other_app = DocId::new("app-2", "doc-1");
    assert_eq!(store.head(&doc).unwrap(), 0);
    assert_eq!(store.append(&doc, 0, "c1-1", "op-a", None).unwrap(), AppendOutcome::Appended(1));
    // Any op id and payload bytes round-trip (separators included).
    let odd = DocId::new("app", "doc-odd");
    assert_eq!(store.append(&odd, 0, "a|b|9", "x|y|é", None).unwrap(), AppendOutcome::Appended(1));
    let stored = store.ops_since(&odd, 0, count(5)).unwrap();
    assert_eq!((stored[0].op_id.as_str(), stored[0].payload.as_str()), ("a|b|9", "x|y|é"));
    assert_eq!(store.append(&doc, 0, "c2-1", "op-b", None).unwrap(), AppendOutcome::Appended(2));
    assert_eq!(store.append(&doc, 2, "c1-2", "op-c", None).unwrap(), AppendOutcome::Appended(3));
    // Idempotent resubmission.
    assert_eq!(store.append(&doc, 0, "c2-1", "op-b", None).unwrap(), AppendOutcome::Duplicate(2));
    // An op id is its first author's: the same author resubmitting (with a
    // new base and payload, as a client does after a reconnect) is a
    // duplicate; anyone else, or the same bytes by anyone, is told apart.
    let ann = DocId::new("app", "doc-authors");
    assert_eq!(store.append(&ann, 0, "a-1", "p1", Some("ann")).unwrap(), AppendOutcome::Appended(1));
    assert_eq!(store.append(&ann, 1, "a-1", "p1-again", Some("ann")).unwrap(), AppendOutcome::Duplicate(1));
    assert!(matches!(
        store.append(&ann, 1, "a-1", "stolen", Some("mallory")),
        Err(StoreError::Conflict { seq: 1 })
    ));
    assert!(matches!(store.append(&ann, 1, "a-1", "anon", None), Err(StoreError::Conflict { seq: 1 })));
    assert_eq!(store.append(&ann, 0, "a-1", "p1", Some("bob")).unwrap(), AppendOutcome::Duplicate(1));
    assert_eq!(store.head(&ann).unwrap(), 1, "nothing was stored twice");
    // A page carries each op's author, as the live broadcast did; one
    // submitted anonymously has none.
    assert_eq!(store.append(&ann, 1, "anon-1", "p2", None).unwrap(), AppendOutcome::Appended(2));
    let page = store.ops_since(&ann, 0, count(5)).unwrap();
    let authors: Vec<Option<&str>> = page.iter().map(|op| op.author.as_deref()).collect();
    assert_eq!(authors, [Some("ann"), None]);
    assert_eq!(store.head(&doc).unwrap(), 3);
    // Documents and apps are separate sequences.
    assert_eq!(store.append(&other, 0, "c1-1", "x", None).unwrap(), AppendOutcome::Appended(1));
    assert_eq!(store.append(&other_app, 0, "c1-1", "y", None).unwrap(), AppendOutcome::Appended(1));
    // A base in the future is refused.
    assert!(matches!(store.append(&doc, 9, "c3-1", "z", None), Err(StoreError::Resync { .. })));
    let ops = store.ops_since(&doc, 1, count(10)).unwrap();
    assert_eq!(
        ops.iter().map(|o| (o.seq, o.base, o.op_id.as_str(), o.payload.as_str())).collect::<Vec<_>>(),
        vec![(2, 0, "c2-1", "op-b"), (3, 2, "c1-2", "op-c")]
    );
    assert_eq!(store.ops_since(&doc, 0, count(1)).unwrap().len(), 1);
    // Pages are bounded by bytes too, but never empty.
    let page = |bytes| Page { ops: 10, bytes };
    let two = 2 * (4 + 4 + 64);
    assert_eq!(store.ops_since(&doc, 0, page(two)).unwrap().len(), 2);
    assert_eq!(store.ops_since(&doc, 0, page(two - 1)).unwrap().len(), 1);
    assert_eq!(store.ops_since(&doc, 0, page(1)).unwrap().len(), 1);
    // Snapshots: newest wins; not past the head.
    assert!(store.latest_snapshot(&doc).unwrap().is_none());
    let snap = Snapshot { seq: 2, payload: "snap-2".into(), key_hint: Some("salt-1".into()) };
    store.put_snapshot(&doc, &snap, "ann").unwrap();
    store.put_snapshot(&doc, &Snapshot { seq: 1, payload: "old".into(), key_hint: None }, "ann").unwrap();
    assert_eq!(store.latest_snapshot(&doc).unwrap(), Some(snap));
    assert_eq!(store.snapshot_seqs(&doc).unwrap(), vec![2]);
    assert!(matches!(
        store.put_snapshot(&doc, &Snapshot { seq: 99, payload: "s".into(), key_hint: None }, "ann"),
        Err(StoreError::SnapshotAhead { .. })
    ));
    // Compaction drops history; older bases must resync.
    assert_eq!(store.compact(&doc, 2).unwrap(), 2);
    assert_eq!(store.ops_since(&doc, 0, count(10)).unwrap().len(), 1);
    assert!(matches!(store.append(&doc, 1, "c4-1", "late", None), Err(StoreError::Resync { oldest: 2, .. })));
    // A compacted op id is still a duplicate, never appended again.
    assert_eq!(store.append(&doc, 0, "c1-1", "op-a", None).unwrap(), AppendOutcome::Duplicate(1));
    store.compact(&ann, 1).unwrap();
    assert!(matches!(
        store.append(&ann, 1, "a-1", "x", Some("mallory")),
        Err(StoreError::Conflict { seq: 1 })
    ));
    assert_eq!(store.append(&ann, 1, "a-1", "x", Some("ann")).unwrap(), AppendOutcome::Duplicate(1));
    assert_eq!(store.find_op(&doc, "c1-1").unwrap(), Some(1));
    assert_eq!(store.find_op(&doc, "c1-2").unwrap(), Some(3));
    assert_eq!(store.find_op(&doc, "nope").unwrap(), None);
    assert_eq!(store.append(&doc, 2, "c4-2", "ok", None).unwrap(), AppendOutcome::Appended(4));
    // Limits.
    assert!(matches!(
        store.append(&doc, 4, "big", &"x".repeat(64 * 1024 + 1), None),
        Err(StoreError::TooLarge(_))
    ));

    // A snapshot that a later op bases before is refused; an accepted one
    // raises the floor for later ops.
    let fresh = DocId::new("app", "doc-3");
    store.append(&fresh, 0, "x1", "a", None).unwrap();
    store.append(&fresh, 0, "x2", "b", None).unwrap();
    let early = Snapshot { seq: 1, payload: "s1".into(), key_hint: None };
    assert!(matches!(store.put_snapshot(&fresh, &early, "x"), Err(StoreError::SnapshotStale { seq: 1 })));
    store.put_snapshot(&fresh, &Snapshot { seq: 2, payload: "s2".into(), key_hint: None }, "x").unwrap();
    assert!(matches!(store.append(&fresh, 1, "x3", "c", None), Err(StoreError::Resync { oldest: 2, .. })));
    assert_eq!(store.append(&fresh, 2, "x4", "d", None).unwrap(), AppendOutcome::Appended(3));

    // Snapshots are kept per uploader: Mallory's garbage does not displace
    // Ann's; each uploader's newer one replaces its own; a fourth uploader
    // displaces the oldest.
    let kept = DocId::new("app", "doc-snaps");
    for i in 0..10u64 {
        store.append(&kept, i, &format!("k{i}"), "p", None).unwrap();
    }
    let at = |seq: u64, payload: &str| Snapshot { seq, payload: payload.into(), key_hint: None };
    store.put_snapshot(&kept, &at(4, "ann-4"), "ann").unwrap();
    store.put_snapshot(&kept, &at(6, "garbage-6"), "mallory").unwrap();
    store.put_snapshot(&kept, &at(7, "garbage-7"), "mallory").unwrap();
    assert_eq!(store.snapshot_seqs(&kept).unwrap(), vec![7, 4]);
    assert_eq!(store.snapshot_at(&kept, 4).unwrap().map(|s| s.payload), Some("ann-4".into()));
    assert_eq!(store.latest_snapshot(&kept).unwrap().map(|s| s.payload), Some("garbage-7".into()));
    store.put_snapshot(&kept, &at(8, "bob-8"), "bob").unwrap();
    store.put_snapshot(&kept, &at(9, "carl-9"), "carl").unwrap();
    assert_eq!(store.snapshot_seqs(&kept).unwrap(), vec![9, 8, 7]);
    assert_eq!(store.snapshot_at(&kept, 4).unwrap(), None);

    // The session key hint: the first claim on a new document wins and
    // never changes; a document with ops but no hint (from before hints
    // were recorded) keeps none.
    let new = DocId::new("app", "doc-hint");
    assert_eq!(store.key_hint(&new).unwrap(), None);
    assert_eq!(store.claim_key_hint(&new, "salt-a").unwrap().as_deref(), Some("salt-a"));
    assert_eq!(store.claim_key_hint(&new, "salt-b").unwrap().as_deref(), Some("salt-a"));
    store.append(&new, 0, "h1", "p", None).unwrap();
    assert_eq!(store.claim_key_hint(&new, "salt-c").unwrap().as_deref(), Some("salt-a"));
    assert_eq!(store.key_hint(&new).unwrap().as_deref(), Some("salt-a"));
    assert_eq!(store.claim_key_hint(&doc, "late").unwrap(), None, "a document with history keeps no hint");
    let empty = DocId::new("app", "doc-empty-hint");
    assert_eq!(store.claim_key_hint(&empty, "").unwrap().as_deref(), Some(""));
    let state = read_join(store, &new, JoinQuery::default(), usize::MAX).unwrap();
    assert_eq!((state.head, state.key_hint.as_deref()), (1, Some("salt-a")));
}

/// The per-app document quota, on a store opened with
/// `max_documents_per_app = 2`.
/// The quota part of the contract's tests.
pub fn quota_conformance(store: &dyn DocStore) {
    let (a, b, c) = (DocId::new("q", "a"), DocId::new("q", "b"), DocId::new("q", "c"));
    store.append(&a, 0, "1", "p", None).unwrap();
    store.append(&b, 0, "1", "p", None).unwrap();
    assert!(matches!(store.append(&c, 0, "1", "p", None), Err(StoreError::Quota(_))));
    assert_eq!(
        store.append(&a, 1, "2", "p", None).unwrap(),
        AppendOutcome::Appended(2),
        "existing documents go on"
    );
    assert_eq!(
        store.append(&DocId::new("other-app", "c"), 0, "1", "p", None).unwrap(),
        AppendOutcome::Appended(1)
    );
    // A claimed hint creates a document: the quota counts it, and a claim
    // beyond the quota is refused like an append.
    assert!(matches!(store.claim_key_hint(&c, "h"), Err(StoreError::Quota(_))));
    let (x, y) = (DocId::new("q2", "x"), DocId::new("q2", "y"));
    store.claim_key_hint(&x, "h").unwrap();
    store.claim_key_hint(&DocId::new("q2", "z"), "h").unwrap();
    assert!(matches!(store.append(&y, 0, "1", "p", None), Err(StoreError::Quota(_))));
    assert_eq!(store.append(&x, 0, "1", "p", None).unwrap(), AppendOutcome::Appended(1));
    assert_eq!(store.claim_key_hint(&x, "other").unwrap().as_deref(), Some("h"), "existing documents go on");
}

/// The history limit counts op ids and per-op overhead (issue 11: a 1-byte
/// op with a 128-byte op id used to count as 1 byte), on a store opened
/// with `max_document_bytes = 1000`.
/// The history-cost part of the contract's tests.
pub fn history_cost_conformance(store: &dyn DocStore) {
    let doc = DocId::new("cost", "d");
    let long_id = |n: u32| format!("{n:0>128}");
    // 1 + 128 + 256 = 385 bytes each: two fit in 1,000, a third does not.
    assert_eq!(store.append(&doc, 0, &long_id(1), "p", None).unwrap(), AppendOutcome::Appended(1));
    assert_eq!(store.append(&doc, 1, &long_id(2), "p", None).unwrap(), AppendOutcome::Appended(2));
    assert!(matches!(store.append(&doc, 2, &long_id(3), "p", None), Err(StoreError::TooLarge(_))));
}
