use serde_json::json;

use super::*;

fn d(value: serde_json::Value) -> Delta {
    Delta::from_json(&value).unwrap()
}

#[test]
fn compose_examples_from_quill() {
    let a = d(json!([{"insert": "A"}]));
    let b = d(json!([{"insert": "B"}]));
    assert_eq!(a.compose(&b).unwrap(), d(json!([{"insert": "BA"}])));
    let doc = d(json!([{"insert": "Hello"}]));
    let change = d(json!([{"retain": 5}, {"insert": " world", "attributes": {"bold": true}}]));
    assert_eq!(
        doc.compose(&change).unwrap(),
        d(json!([{"insert": "Hello"}, {"insert": " world", "attributes": {"bold": true}}]))
    );
    let del = d(json!([{"retain": 1}, {"delete": 3}]));
    assert_eq!(doc.compose(&del).unwrap(), d(json!([{"insert": "Ho"}])));
    // Attribute removal keeps null on retains, drops it on inserts.
    let fmt = d(json!([{"retain": 2, "attributes": {"bold": true}}]));
    let unfmt = d(json!([{"retain": 2, "attributes": {"bold": null}}]));
    assert_eq!(fmt.compose(&unfmt).unwrap(), d(json!([{"retain": 2, "attributes": {"bold": null}}])));
}

#[test]
fn transform_examples_from_quill() {
    let a = d(json!([{"insert": "A"}]));
    let b = d(json!([{"insert": "B"}]));
    assert_eq!(a.transform(&b, true).unwrap(), d(json!([{"retain": 1}, {"insert": "B"}])));
    assert_eq!(a.transform(&b, false).unwrap(), d(json!([{"insert": "B"}])));
    let del = d(json!([{"delete": 1}]));
    let ret = d(json!([{"retain": 1, "attributes": {"bold": true}}]));
    assert_eq!(del.transform(&ret, true).unwrap(), Delta::new());
}

#[test]
fn transform_position_examples() {
    let ins = d(json!([{"retain": 2}, {"insert": "abc"}]));
    assert_eq!(ins.transform_position(2, false), 5);
    assert_eq!(ins.transform_position(2, true), 2);
    assert_eq!(ins.transform_position(1, false), 1);
    let del = d(json!([{"retain": 1}, {"delete": 3}]));
    assert_eq!(del.transform_position(2, false), 1);
    assert_eq!(del.transform_position(6, false), 3);
}

#[test]
fn invert_round_trip() {
    let base = d(json!([{"insert": "Hello", "attributes": {"bold": true}}, {"insert": " world"}]));
    let change = d(
        json!([{"retain": 2}, {"delete": 4}, {"insert": "X"}, {"retain": 3, "attributes": {"italic": true, "bold": null}}]),
    );
    let after = base.compose(&change).unwrap();
    let inverse = change.invert(&base).unwrap();
    assert_eq!(after.compose(&inverse).unwrap(), base);
}

#[test]
fn surrogate_pairs_are_never_split() {
    let doc = d(json!([{"insert": "a😀b"}]));
    assert_eq!(doc.len(), 4);
    let ok = d(json!([{"retain": 1}, {"delete": 2}]));
    assert_eq!(doc.apply(&ok).unwrap(), d(json!([{"insert": "ab"}])));
    let split = d(json!([{"retain": 2}, {"delete": 1}]));
    assert_eq!(doc.apply(&split).unwrap_err(), OtError::SplitSurrogatePair);
}

#[test]
fn bad_ops_are_typed_errors() {
    let cases = [
        (json!([{"retain": 0}]), "invalid op length"),
        (json!([{"retain": -1}]), "invalid op length"),
        (json!([{"delete": 1.5}]), "invalid op length"),
        (json!([{"insert": ""}]), "invalid op length"),
        (json!([{"insert": 5}]), "invalid embed"),
        (json!([{"insert": {}}]), "invalid embed"),
        (json!([{"retain": {"image": 1}}]), "invalid embed"),
        (json!([{"insert": "x", "attributes": [1]}]), "invalid attributes"),
        (json!([{"delete": 1, "attributes": {"a": 1}}]), "invalid attributes"),
        (json!([{"insert": "x", "retain": 1}]), "malformed"),
        (json!([{"insert": "x", "extra": 1}]), "malformed"),
        (json!({"nops": []}), "malformed"),
        (json!([1]), "malformed"),
    ];
    for (value, expected) in cases {
        let err = Delta::from_json(&value).unwrap_err();
        assert!(err.to_string().starts_with(expected), "{value}: {err}");
    }
    let doc = d(json!([{"insert": "ab"}]));
    assert!(matches!(doc.apply(&d(json!([{"retain": 3}]))), Err(OtError::RetainPastEnd { .. })));
    assert_eq!(d(json!([{"retain": 1}])).apply(&Delta::new()).unwrap_err(), OtError::NotADocument);
}

#[test]
fn json_round_trip_and_normalization() {
    let value = json!({"ops": [{"insert": "a", "attributes": {"b": true}}, {"insert": {"image": "x.png"}}, {"retain": 2, "attributes": {"c": null}}, {"delete": 1}]});
    assert_eq!(Delta::from_json(&value).unwrap().to_json(), value);
    // Adjacent ops merge; an insert after a delete moves before it; empty attributes vanish.
    let merged = d(
        json!([{"insert": "a"}, {"insert": "b", "attributes": {}}, {"delete": 1}, {"delete": 2}, {"insert": "c"}]),
    );
    assert_eq!(merged.to_json(), json!({"ops": [{"insert": "abc"}, {"delete": 3}]}));
}

mod properties {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::super::*;
    use crate::ot::Attributes;

    fn arb_attributes(allow_null: bool) -> impl Strategy<Value = Option<Attributes>> {
        let value = if allow_null {
            prop_oneof![Just(json!(true)), Just(json!("red")), Just(json!(2)), Just(Value::Null)].boxed()
        } else {
            prop_oneof![Just(json!(true)), Just(json!("red")), Just(json!(2))].boxed()
        };
        prop::option::of(prop::collection::btree_map(
            prop_oneof![Just("bold"), Just("color"), Just("size")],
            value,
            1..3,
        ))
        .prop_map(|m| m.map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
    }

    /// Text with astral characters too: every boundary the generators pick
    /// is on a character, so surrogate pairs must survive all operations.
    fn arb_text() -> impl Strategy<Value = String> {
        prop::collection::vec(prop_oneof![Just('a'), Just('b'), Just('é'), Just('😀'), Just('\n')], 1..5)
            .prop_map(|chars| chars.into_iter().collect())
    }

    fn arb_document() -> impl Strategy<Value = Delta> {
        prop::collection::vec((arb_text(), arb_attributes(false)), 0..5).prop_map(|parts| {
            let mut doc = Delta::new();
            for (text, attributes) in parts {
                doc.insert_text(&text, attributes);
            }
            doc
        })
    }

    /// Character boundaries (in UTF-16 units) of a document.
    fn boundaries(doc: &Delta) -> Vec<usize> {
        let mut cuts = vec![0];
        let mut at = 0;
        for op in doc.ops() {
            match op {
                Op::Insert { insert: Insert::Text { text, .. }, .. } => {
                    for ch in text.chars() {
                        at += ch.len_utf16();
                        cuts.push(at);
                    }
                }
                other => {
                    at += other.len();
                    cuts.push(at);
                }
            }
        }
        cuts
    }

    /// A change to `doc` whose retains and deletes end on character boundaries.
    fn arb_change(doc: Delta) -> impl Strategy<Value = (Delta, Delta)> {
        let cuts = boundaries(&doc);
        let steps = prop::collection::vec(
            (0u8..3, any::<prop::sample::Index>(), arb_text(), arb_attributes(true)),
            0..6,
        );
        steps.prop_map(move |steps| {
            let mut change = Delta::new();
            let mut at_cut = 0usize;
            for (kind, index, text, attributes) in steps {
                let remaining = cuts.len() - 1 - at_cut;
                match kind {
                    0 => {
                        change.insert_text(
                            &text,
                            attributes.map(|a| a.into_iter().filter(|(_, v)| !v.is_null()).collect()),
                        );
                    }
                    _ if remaining == 0 => {}
                    1 => {
                        let next = at_cut + 1 + index.index(remaining);
                        change.retain(cuts[next] - cuts[at_cut], attributes);
                        at_cut = next;
                    }
                    _ => {
                        let next = at_cut + 1 + index.index(remaining);
                        change.delete(cuts[next] - cuts[at_cut]);
                        at_cut = next;
                    }
                }
            }
            (doc.clone(), change)
        })
    }

    fn doc_and_two_changes() -> impl Strategy<Value = (Delta, Delta, Delta)> {
        arb_document().prop_flat_map(|doc| {
            (arb_change(doc.clone()), arb_change(doc)).prop_map(|((d, a), (_, b))| (d, a, b))
        })
    }

    proptest! {
        /// TP1: both orders of applying concurrent changes converge.
        #[test]
        fn tp1_convergence((doc, a, b) in doc_and_two_changes(), priority in any::<bool>()) {
            let b_after_a = a.transform(&b, priority).unwrap();
            let a_after_b = b.transform(&a, !priority).unwrap();
            let left = doc.apply(&a).unwrap().apply(&b_after_a).unwrap();
            let right = doc.apply(&b).unwrap().apply(&a_after_b).unwrap();
            prop_assert_eq!(left, right);
        }

        /// Composition is associative on a document.
        #[test]
        fn compose_is_associative((doc, a, _) in doc_and_two_changes(), seed in any::<prop::sample::Index>()) {
            let after_a = doc.apply(&a).unwrap();
            let cuts = boundaries(&after_a);
            let mut b = Delta::new();
            b.retain(cuts[seed.index(cuts.len())], None).insert_text("X😀", None);
            let left = doc.compose(&a).unwrap().compose(&b).unwrap();
            let right = doc.compose(&a.compose(&b).unwrap()).unwrap();
            prop_assert_eq!(left, right);
        }

        /// The JSON text written directly is the text of the JSON value
        /// (digests hash it, so the bytes must not change), and both parse
        /// back to the change.
        #[test]
        fn json_text_is_the_json_values_text((doc, a, _) in doc_and_two_changes()) {
            for delta in [&doc, &a] {
                let text = delta.to_json_string();
                prop_assert_eq!(&text, &delta.to_json().to_string());
                prop_assert_eq!(&Delta::from_json_str(&text).unwrap(), delta);
            }
        }

        /// Inverting a change and applying it restores the document.
        #[test]
        fn invert_round_trip((doc, a, _) in doc_and_two_changes()) {
            let inverse = a.invert(&doc).unwrap();
            prop_assert_eq!(doc.apply(&a).unwrap().apply(&inverse).unwrap(), doc);
        }

        /// A cursor keeps pointing at the same character when a change only
        /// inserts (an insert at the cursor goes before it without priority).
        #[test]
        fn cursor_stays_on_its_character((doc, a, _) in doc_and_two_changes(), index in any::<prop::sample::Index>()) {
            let inserts_only = a.ops().iter().all(|op| !matches!(op, Op::Delete(_)));
            prop_assume!(inserts_only && !doc.is_empty());
            let cuts = boundaries(&doc);
            let cursor = cuts[index.index(cuts.len() - 1)];
            let moved = a.transform_position(cursor, false);
            let after = doc.apply(&a).unwrap();
            // The unit after the cursor is the same before and after (when it is
            // the first unit of a character; surrogate halves compare as slices).
            if let (Ok(before), Ok(now)) = (doc.slice(cursor, cursor + 1), after.slice(moved, moved + 1)) {
                let strip = |d: Delta| d.ops().iter().map(|op| match op { Op::Insert { insert, .. } => format!("{insert:?}"), other => format!("{other:?}") }).collect::<Vec<_>>();
                prop_assert_eq!(strip(before), strip(now));
            }
        }
    }
}
