//! Whatever bytes arrive, a normaliser answers with events or an error; it never panics.
//! Inputs: random bytes, random JSON-ish text, and the fixtures with bytes flipped, cut or
//! spliced, plus fixtures with values swapped for values of other types.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::Value;
use shared::{normalize, Carrier, NormalizeContext};

use crate::support::{carrier_of, fixture, SAMPLES};

fn ctx() -> NormalizeContext {
    NormalizeContext::new(
        shared::TenantId::parse("acme").unwrap(),
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap(),
    )
}

/// Runs every normaliser on the bytes; a panic fails the property.
fn all_carriers(body: &[u8]) {
    for carrier in Carrier::ALL {
        let _ = normalize(carrier, body, &ctx());
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, byte: u8 },
    Truncate { at: usize },
    Delete { at: usize, len: usize },
    Insert { at: usize, bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (
            any::<usize>(),
            prop::sample::select(vec![
                b"null".to_vec(),
                b"[]".to_vec(),
                b"{}".to_vec(),
                b"\"\"".to_vec(),
                b"-1".to_vec(),
                b"1e400".to_vec(),
                b"18446744073709551616".to_vec(),
                b"\"\\ud800\"".to_vec(),
                b"\xff\xfe".to_vec(),
                b"\"9999-99-99 99:99:99\"".to_vec(),
                b",".to_vec(),
                b"\"".to_vec(),
            ])
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
    ]
}

fn apply(mut body: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let n = body.len().max(1);
        match m {
            Mutation::Flip { at, byte } => {
                if !body.is_empty() {
                    body[at % n] = *byte;
                }
            }
            Mutation::Truncate { at } => body.truncate(at % n),
            Mutation::Delete { at, len } => {
                let start = (at % n).min(body.len());
                let end = (start + len).min(body.len());
                body.drain(start..end);
            }
            Mutation::Insert { at, bytes } => {
                let at = (at % n).min(body.len());
                body.splice(at..at, bytes.iter().copied());
            }
        }
    }
    body
}

/// Replaces the value at the `pick`-th node of the tree (depth first) with `replacement`.
fn replace_nth(value: &mut Value, pick: &mut usize, replacement: &Value) -> bool {
    if *pick == 0 {
        *value = replacement.clone();
        return true;
    }
    *pick -= 1;
    match value {
        Value::Object(map) => map.values_mut().any(|v| replace_nth(v, pick, replacement)),
        Value::Array(items) => items.iter_mut().any(|v| replace_nth(v, pick, replacement)),
        _ => false,
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
        prop::sample::select(vec![
            "NA",
            "",
            "2023-05-19 11:59:16",
            "23 05 2023 11:43:52",
            "8",
            "-1"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}|scans|status_feed|additional", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// 2000 cases per property by default; `PROPTEST_CASES` overrides (the quick test mode lowers it).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        all_carriers(&body);
    }

    #[test]
    fn random_json_never_panics(value in json_value()) {
        all_carriers(value.to_string().as_bytes());
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0..SAMPLES.len(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        all_carriers(&apply(fixture(SAMPLES[which]), &mutations));
    }

    #[test]
    fn fixtures_with_a_value_of_another_type_never_panic(
        which in 0..SAMPLES.len(),
        mut pick in 0usize..80,
        replacement in json_value(),
    ) {
        let name = SAMPLES[which];
        let carrier: Carrier = carrier_of(name).parse().unwrap();
        let mut value: Value = serde_json::from_slice(&fixture(name)).unwrap();
        replace_nth(&mut value, &mut pick, &replacement);
        let _ = normalize(carrier, value.to_string().as_bytes(), &ctx());
    }
}

/// A body nested `depth` levels, each level an array or an object member chosen by `shape`.
fn nested(depth: usize, shape: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut closers = Vec::new();
    for level in 0..depth {
        if shape[level % shape.len()].is_multiple_of(2) {
            body.push(b'[');
            closers.push(b']');
        } else {
            body.extend_from_slice(br#"{"status_feed":"#);
            closers.push(b'}');
        }
    }
    body.push(b'1');
    body.extend(closers.iter().rev());
    body
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// No depth overflows a stack, and every carrier refuses a body nested past the limit.
    #[test]
    fn nesting_past_the_limit_is_refused_and_never_overflows(
        depth in 0usize..20_000,
        shape in proptest::collection::vec(any::<u8>(), 1..4),
    ) {
        let body = nested(depth, &shape);
        for carrier in Carrier::ALL {
            let _ = carrier.spec().classify(&body);
            let _ = carrier.spec().scrub(&body);
            let result = normalize(carrier, &body, &ctx());
            if depth > shared::carriers::MAX_DEPTH {
                prop_assert!(
                    matches!(result, Err(shared::NormalizeError::TooDeep { .. })),
                    "{carrier} took {depth} levels"
                );
            }
        }
    }
}

#[test]
fn a_body_nested_a_million_levels_is_refused_by_every_carrier() {
    let body = nested(1_000_000, &[0, 1]);
    for carrier in Carrier::ALL {
        let err = normalize(carrier, &body, &ctx()).unwrap_err().to_string();
        assert_eq!(
            err,
            "the body nests JSON deeper than 64 levels; no carrier payload does"
        );
    }
}
