//! Removing credential fields (Shipway's `hash`) from a body before any copy of it is stored or
//! pushed: the event's `source`, the quarantine. The text is edited, not rebuilt: every other byte
//! stays as the carrier sent it, so `source` remains the carrier's own payload.

use std::borrow::Cow;

/// The body without any object member whose key is one of `names`, at any depth. Works on text
/// that is not valid JSON too (a quarantined body), as far as it can be read: a member is removed
/// when its key is a string followed by `:`.
pub fn remove_members<'a>(body: &'a [u8], names: &[&str]) -> Cow<'a, [u8]> {
    if !names
        .iter()
        .any(|n| memchr::memmem::find(body, quoted(n).as_bytes()).is_some())
    {
        return Cow::Borrowed(body);
    }
    let cuts = member_spans(body, names);
    if cuts.is_empty() {
        return Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    for (start, end) in cuts {
        out.extend_from_slice(&body[at..start]);
        at = end;
    }
    out.extend_from_slice(&body[at..]);
    Cow::Owned(out)
}

/// As [`remove_members`], for text.
pub fn remove_members_str<'a>(text: &'a str, names: &[&str]) -> Cow<'a, str> {
    match remove_members(text.as_bytes(), names) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        // Cuts fall on ASCII delimiters, so the rest is still UTF-8.
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// The byte ranges to cut: each matching member with one adjacent comma.
fn member_spans(body: &[u8], names: &[&str]) -> Vec<(usize, usize)> {
    // For each open container: is it an object, and is the next string in it a key?
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let mut cuts = Vec::new();
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'{' => {
                stack.push((true, true));
                i += 1;
            }
            b'[' => {
                stack.push((false, false));
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                i += 1;
            }
            b',' => {
                if let Some(top) = stack.last_mut() {
                    top.1 = top.0;
                }
                i += 1;
            }
            b'"' => {
                let end = string_end(body, i);
                let is_key = stack.last().is_some_and(|top| top.0 && top.1);
                if let Some(top) = stack.last_mut() {
                    top.1 = false;
                }
                if is_key {
                    let key = &body[i + 1..end.saturating_sub(1).max(i + 1)];
                    if names.iter().any(|n| n.as_bytes() == key) {
                        if let Some(value_end) = value_end_after_colon(body, end) {
                            cuts.push(with_comma(body, i, value_end));
                            i = value_end;
                            continue;
                        }
                    }
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    cuts
}

/// The index just past the string that starts at `start` (a `"`), or the end of the text.
fn string_end(body: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    body.len()
}

fn skip_space(body: &[u8], mut i: usize) -> usize {
    while i < body.len() && body[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// After a key ending at `i`: the end of its value, if a `:` and a value follow.
fn value_end_after_colon(body: &[u8], i: usize) -> Option<usize> {
    let i = skip_space(body, i);
    if body.get(i) != Some(&b':') {
        return None;
    }
    let i = skip_space(body, i + 1);
    match body.get(i)? {
        b'"' => Some(string_end(body, i)),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < body.len() {
                match body[j] {
                    b'"' => {
                        j = string_end(body, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Some(body.len())
        }
        _ => {
            let mut j = i;
            while j < body.len() && !matches!(body[j], b',' | b'}' | b']') {
                j += 1;
            }
            // Trailing spaces belong to what follows.
            while j > i && body[j - 1].is_ascii_whitespace() {
                j -= 1;
            }
            Some(j)
        }
    }
}

/// The member `[start, end)` widened by one comma: the one after it, else the one before it.
fn with_comma(body: &[u8], start: usize, end: usize) -> (usize, usize) {
    let after = skip_space(body, end);
    if body.get(after) == Some(&b',') {
        return (start, skip_space(body, after + 1));
    }
    let mut before = start;
    while before > 0 && body[before - 1].is_ascii_whitespace() {
        before -= 1;
    }
    if before > 0 && body[before - 1] == b',' {
        return (before - 1, end);
    }
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrub(text: &str) -> String {
        String::from_utf8(remove_members(text.as_bytes(), &["hash"]).into_owned()).unwrap()
    }

    #[test]
    fn a_credential_member_is_removed_wherever_it_is() {
        assert_eq!(
            scrub(r#"{"hash":"abc","status_feed":[]}"#),
            r#"{"status_feed":[]}"#
        );
        assert_eq!(
            scrub(r#"{"status_feed":[], "hash" : "abc" }"#),
            r#"{"status_feed":[] }"#
        );
        assert_eq!(scrub(r#"{"hash":"abc"}"#), r#"{}"#);
        assert_eq!(
            scrub(r#"{"a":1,"api_input":{"hash":"x","b":2},"c":[{"hash":7}]}"#),
            r#"{"a":1,"api_input":{"b":2},"c":[{}]}"#
        );
    }

    #[test]
    fn values_and_other_keys_that_look_alike_are_kept() {
        let text = r#"{"note":"hash","hashes":"x","a":["hash",{"k":"\"hash\":1"}]}"#;
        assert_eq!(scrub(text), text);
        assert!(matches!(
            remove_members(text.as_bytes(), &["hash"]),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn the_result_is_valid_json_when_the_input_was() {
        for text in [
            r#"{"hash":"a","x":1}"#,
            r#"{"x":1,"hash":"a"}"#,
            r#"{"x":1,"hash":"a","y":2}"#,
            r#"{ "x" : 1 , "hash" : null , "y" : { "hash" : [1,{"z":"]"}] } }"#,
        ] {
            let out = scrub(text);
            let value: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert!(!out.contains("\"hash\""), "{out}");
            assert!(value.is_object());
        }
    }

    #[test]
    fn text_that_is_not_json_is_scrubbed_as_far_as_it_reads() {
        assert_eq!(scrub(r#"{"hash":"secret","a":"#), r#"{"a":"#);
        assert_eq!(scrub(r#"{"hash":"secr"#), "{");
    }
}
