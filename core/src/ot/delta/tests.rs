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
