//! Lenient building blocks for the carriers' wire structs. Carriers send ids as strings one day and
//! numbers the next, flags as `true` or `1`, and add keys without notice (Clickpost: "do not apply
//! strict JSON check"), so the wire structs ignore unknown keys and use these types.

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;

use serde_json::value::RawValue;

use super::{NormalizeContext, NormalizeError};
use crate::model::Source;

/// The deepest nesting of arrays and objects accepted. Carrier payloads nest four or five levels;
/// a client's JSON parser may crash on a body nested thousands deep, so such a body is refused.
pub const MAX_DEPTH: usize = 64;

/// Whether the body nests arrays and objects deeper than [`MAX_DEPTH`]. A byte scan that keeps
/// only a counter, so it cannot overflow a stack on any depth, and runs before any tree is built.
/// Brackets inside strings do not count; the text need not be valid JSON.
pub(crate) fn too_deep(body: &[u8]) -> bool {
    // Fast path: a body with no more opening brackets than the limit cannot nest deeper than it.
    // Counting two bytes is vectorised; carrier payloads hold a few dozen brackets at most.
    if memchr::memchr2_iter(b'{', b'[', body)
        .nth(MAX_DEPTH)
        .is_none()
    {
        return false;
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Parses a body into a carrier's wire struct, turning serde's failures into precise errors.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, NormalizeError> {
    let text = std::str::from_utf8(body).map_err(|e| NormalizeError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let first = text.trim_start().as_bytes().first().copied();
    let found = match first {
        None => return Err(NormalizeError::Empty),
        Some(b'{') => None,
        Some(b'[') => Some("an array"),
        Some(b'"') => Some("a string"),
        Some(b'-' | b'0'..=b'9') => Some("a number"),
        Some(b't' | b'f') => Some("a boolean"),
        Some(b'n') => Some("null"),
        // Not the start of any JSON value: let the parser name the line and column.
        Some(_) => None,
    };
    if let Some(found) = found {
        return Err(NormalizeError::NotAnObject {
            what: "the body".to_owned(),
            found,
        });
    }
    // The fast path parses without tracking where it is; only a payload that fails is parsed
    // again with path tracking, to name the field in the error.
    serde_json::from_str(text).map_err(|e| {
        if !e.is_data() {
            return NormalizeError::Syntax(e);
        }
        let mut de = serde_json::Deserializer::from_str(text);
        match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(tracked) => NormalizeError::Field {
                path: tracked.path().to_string(),
                source: tracked.into_inner(),
            },
            // Unreachable (the same text failed a moment ago), but keep the first error if so.
            Ok(_) => NormalizeError::Field {
                path: ".".to_owned(),
                source: e,
            },
        }
    })
}

/// Parses one element of a batch (already known to be valid JSON), naming the element in errors.
pub(crate) fn parse_element<T: DeserializeOwned>(
    element: &RawValue,
    prefix: &str,
) -> Result<T, NormalizeError> {
    parse_json(element.get().as_bytes()).map_err(|e| match e {
        NormalizeError::Field { path, source } => NormalizeError::Field {
            path: if path == "." {
                prefix.to_owned()
            } else {
                format!("{prefix}.{path}")
            },
            source,
        },
        NormalizeError::NotAnObject { found, .. } => NormalizeError::NotAnObject {
            what: format!("`{prefix}`"),
            found,
        },
        other => other,
    })
}

/// A top-level text field of a JSON object body (a credential the carrier puts in the body),
/// read without building a tree. `None` if the body is not an object, or the field is absent,
/// blank, or not a string or integer.
pub(crate) fn field(body: &[u8], name: &str) -> Option<String> {
    struct Find<'n>(&'n str);
    impl<'de> Visitor<'de> for Find<'_> {
        type Value = Option<Str>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Option<Str>, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == self.0 {
                    found = map.next_value::<Option<Str>>().ok().flatten();
                } else {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    de.deserialize_map(Find(name))
        .ok()
        .flatten()
        .and_then(|v| text(&Some(v)))
}

/// The event's `source`, if the tenant wants it. Only called on a body that has already parsed,
/// so it cannot fail in practice; if it did, the event would simply go without `source`.
pub(crate) fn source(body: &[u8], ctx: &NormalizeContext) -> Option<Source> {
    if !ctx.include_source {
        return None;
    }
    std::str::from_utf8(body).ok().and_then(Source::from_json)
}

/// A text or id field that may arrive as a string or as an integer. Integers keep every digit
/// (`11633336773305`); numbers with a fraction or an exponent are refused rather than rounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Str(pub String);

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl Visitor<'_> for StrVisitor {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str, E> {
                Ok(Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str, E> {
                Ok(Str(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Str, E> {
                Ok(Str(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Str, E> {
                Ok(Str(v.to_string()))
            }
        }
        deserializer.deserialize_any(StrVisitor)
    }
}

/// An integer that may arrive as a number or as a numeric string (`4` or `"4"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Int(pub i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntVisitor;
        impl Visitor<'_> for IntVisitor {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or a string holding one")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v)
                    .map(Int)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Int, E> {
                v.trim()
                    .parse()
                    .map(Int)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_any(IntVisitor)
    }
}

/// A yes/no flag: `true`/`false`, `1`/`0`, or those as strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FlagVisitor;
        impl Visitor<'_> for FlagVisitor {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false, 1 or 0")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Flag, E> {
                match v {
                    0 => Ok(Flag(false)),
                    1 => Ok(Flag(true)),
                    _ => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Flag, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                match v.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" => Ok(Flag(true)),
                    "false" | "0" | "" => Ok(Flag(false)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(FlagVisitor)
    }
}

/// The text of an optional field, with blank strings treated as absent (carriers send `""` for
/// "no value").
pub(crate) fn text(field: &Option<Str>) -> Option<String> {
    field
        .as_ref()
        .map(|s| s.0.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The first of several optional fields that has text.
pub(crate) fn first_text<const N: usize>(fields: [&Option<Str>; N]) -> Option<String> {
    fields.into_iter().find_map(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Probe {
        id: Option<Str>,
        n: Option<Int>,
        flag: Option<Flag>,
    }

    fn probe(json: &str) -> Result<Probe, NormalizeError> {
        parse_json(json.as_bytes())
    }

    #[test]
    fn ids_arrive_as_strings_or_integers_and_keep_every_digit() {
        assert_eq!(
            probe(r#"{"id": 11633336773305}"#).unwrap().id,
            Some(Str("11633336773305".into()))
        );
        assert_eq!(
            probe(r#"{"id": "00030761872"}"#).unwrap().id,
            Some(Str("00030761872".into()))
        );
        assert_eq!(
            probe(r#"{"id": 18446744073709551615}"#).unwrap().id,
            Some(Str("18446744073709551615".into()))
        );
    }

    #[test]
    fn an_id_with_a_fraction_is_refused_not_rounded() {
        let err = probe(r#"{"id": 1.1633336773305e13}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("field `id`") && err.contains("a string or an integer"),
            "{err}"
        );
    }

    #[test]
    fn integers_and_flags_are_lenient() {
        let p = probe(r#"{"n": "18", "flag": 1}"#).unwrap();
        assert_eq!((p.n, p.flag), (Some(Int(18)), Some(Flag(true))));
        let p = probe(r#"{"n": 18, "flag": "false", "unknown": [1, 2]}"#).unwrap();
        assert_eq!((p.n, p.flag), (Some(Int(18)), Some(Flag(false))));
        assert!(probe(r#"{"n": "NA"}"#).is_err());
        assert!(probe(r#"{"flag": 2}"#).is_err());
    }

    #[test]
    fn errors_say_what_the_body_is() {
        let cases = [
            ("", "the body is empty"),
            ("  \n", "the body is empty"),
            ("[1]", "must be a JSON object, but it is an array"),
            ("\"x\"", "but it is a string"),
            ("42", "but it is a number"),
            ("null", "but it is null"),
            (
                "{\"id\": 1",
                "not valid JSON: EOF while parsing an object at line 1 column 8",
            ),
            (
                "{} {}",
                "not valid JSON: trailing characters at line 1 column 4",
            ),
            (
                "{\"id\": [1]}",
                "field `id` is invalid: invalid type: sequence",
            ),
        ];
        for (body, expected) in cases {
            let err = probe(body).unwrap_err().to_string();
            assert!(err.contains(expected), "{body:?}: {err}");
        }
        let err = parse_json::<Probe>(b"{\"id\": \"\xff\"}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the body is not valid UTF-8: invalid byte at offset 8"
        );
    }

    #[test]
    fn nesting_is_measured_outside_strings_and_at_any_depth() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(!too_deep(nested(MAX_DEPTH).as_bytes()));
        assert!(too_deep(nested(MAX_DEPTH + 1).as_bytes()));
        assert!(too_deep("[".repeat(1_000_000).as_bytes()));
        let in_strings = format!(
            r#"{{"a":"{}","b":"\"{}"}}"#,
            "[".repeat(500),
            "{".repeat(500)
        );
        assert!(!too_deep(in_strings.as_bytes()));
    }

    #[test]
    fn blank_text_counts_as_absent() {
        assert_eq!(text(&Some(Str("  ".into()))), None);
        assert_eq!(
            first_text([&None, &Some(Str("".into())), &Some(Str("b".into()))]),
            Some("b".into())
        );
    }
}
