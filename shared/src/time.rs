//! Carrier timestamps: every format in docs/carriers.md (§1.8, §2.5, §3.4) to UTC.
//!
//! The carriers send wall-clock times, mostly in IST. Clickpost's webhook times end in `Z` although
//! its docs say they are IST, so a trailing `Z` is treated as a label, not as information: the time
//! is read in the zone configured for the carrier. An explicit numeric offset (`+05:30`) is honoured.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// India Standard Time, the default zone for every carrier.
pub fn ist() -> FixedOffset {
    // 5h30m is within ±24h, so this cannot fail; `expect` documents the invariant.
    #[allow(clippy::expect_used)]
    FixedOffset::east_opt(5 * 3600 + 30 * 60).expect("IST is a valid offset")
}

/// The zone with no offset, for carrier times documented as UTC.
pub fn utc() -> FixedOffset {
    #[allow(clippy::expect_used)]
    FixedOffset::east_opt(0).expect("zero is a valid offset")
}

/// A carrier time that matches none of the accepted formats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{raw:?} is not a time in a known format (expected YYYY-MM-DDTHH:MM:SS[.ffffff][Z], YYYY-MM-DD HH:MM:SS[.ffffff] or DD MM YYYY HH:MM:SS)")]
pub struct TimeError {
    pub raw: String,
}

const NAIVE_FORMATS: [&str; 3] = [
    "%Y-%m-%dT%H:%M:%S%.f", // Clickpost: 2019-05-06T10:04:20(Z) and 2016-07-12T17:12:36.710
    "%Y-%m-%d %H:%M:%S%.f", // Shiprocket scans, Shipway, Clickpost returns: 2019-04-29 07:47:07.161221
    "%d %m %Y %H:%M:%S",    // Shiprocket current_timestamp: 23 05 2023 11:43:52
];

const OFFSET_FORMATS: [&str; 2] = ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%:z"];

/// Reads a carrier time in `zone` (see the module doc for the `Z` rule) and returns it in UTC.
pub fn to_utc(raw: &str, zone: FixedOffset) -> Result<DateTime<Utc>, TimeError> {
    let text = raw.trim();
    let wall_clock = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix('z'))
        .unwrap_or(text);
    for format in NAIVE_FORMATS {
        if let Ok(naive) = NaiveDateTime::parse_from_str(wall_clock, format) {
            return in_zone(naive, zone).ok_or_else(|| error(raw));
        }
    }
    for format in OFFSET_FORMATS {
        if let Ok(time) = DateTime::parse_from_str(text, format) {
            return Ok(time.with_timezone(&Utc));
        }
    }
    Err(error(raw))
}

/// A calendar date such as an expected delivery date: `YYYY-MM-DD`, optionally followed by a time
/// (`2025-01-05 23:59:59`), which is dropped. `None` when it is not a date.
pub fn to_date(raw: &str) -> Option<NaiveDate> {
    let text = raw.trim();
    let day = text.get(..10)?;
    let rest = &text[10..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('T')) {
        return None;
    }
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

fn in_zone(naive: NaiveDateTime, zone: FixedOffset) -> Option<DateTime<Utc>> {
    // A fixed offset has no gaps or folds, so `single` only fails out of chrono's range.
    zone.from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

fn error(raw: &str) -> TimeError {
    TimeError {
        raw: raw.to_owned(),
    }
}

/// Parses a zone written as `+05:30`, `-03:00`, `Z` or `UTC` (for settings and the CLI).
pub fn parse_zone(text: &str) -> Result<FixedOffset, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
        return Ok(utc());
    }
    if t.eq_ignore_ascii_case("ist") {
        return Ok(ist());
    }
    let invalid = || format!("invalid zone {text:?}: write it as an offset such as +05:30, or UTC");
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(invalid()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(invalid)?;
    let (h, m): (i32, i32) = (
        h.parse().map_err(|_| invalid())?,
        m.parse().map_err(|_| invalid())?,
    );
    if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
        return Err(invalid());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc_string(raw: &str, zone: FixedOffset) -> String {
        to_utc(raw, zone).unwrap().to_rfc3339()
    }

    #[test]
    fn clickpost_z_times_are_read_as_ist_wall_clock() {
        assert_eq!(
            utc_string("2023-02-07T18:09:00Z", ist()),
            "2023-02-07T12:39:00+00:00"
        );
    }

    #[test]
    fn every_documented_format_is_accepted() {
        let cases = [
            ("2019-05-06T10:04:20Z", "2019-05-06T04:34:20+00:00"),
            (
                "2022-11-09T11:00:48.702402Z",
                "2022-11-09T05:30:48.702402+00:00",
            ),
            ("2016-07-12T17:12:36.710", "2016-07-12T11:42:36.710+00:00"),
            (
                "2019-04-29 07:47:07.161221",
                "2019-04-29T02:17:07.161221+00:00",
            ),
            ("2023-05-19 11:59:16", "2023-05-19T06:29:16+00:00"),
            ("23 05 2023 11:43:52", "2023-05-23T06:13:52+00:00"),
        ];
        for (raw, expected) in cases {
            assert_eq!(utc_string(raw, ist()), expected, "{raw}");
        }
    }

    #[test]
    fn an_explicit_offset_wins_over_the_zone() {
        assert_eq!(
            utc_string("2023-02-07T18:09:00+01:00", ist()),
            "2023-02-07T17:09:00+00:00"
        );
    }

    #[test]
    fn times_documented_as_utc_are_read_in_utc() {
        assert_eq!(
            utc_string("2017-08-02T13:23:02Z", utc()),
            "2017-08-02T13:23:02+00:00"
        );
    }

    #[test]
    fn a_bad_time_names_the_value_and_the_formats() {
        let err = to_utc("07/02/2023 18:09", ist()).unwrap_err().to_string();
        assert!(err.contains("\"07/02/2023 18:09\"") && err.contains("DD MM YYYY"));
        assert!(to_utc("2023-02-30 10:00:00", ist()).is_err());
        assert!(to_utc("", ist()).is_err());
    }

    #[test]
    fn dates_take_the_day_and_ignore_a_time() {
        assert_eq!(
            to_date("2025-01-05 23:59:59").unwrap().to_string(),
            "2025-01-05"
        );
        assert_eq!(to_date("2020-03-25").unwrap().to_string(), "2020-03-25");
        assert_eq!(to_date("2020-03-2x"), None);
        assert_eq!(to_date("2020-03-251"), None);
        assert_eq!(to_date("é"), None);
    }

    #[test]
    fn zones_parse_from_offsets_and_names() {
        assert_eq!(parse_zone("+05:30").unwrap(), ist());
        assert_eq!(parse_zone("UTC").unwrap(), utc());
        assert_eq!(parse_zone("-03:00").unwrap().local_minus_utc(), -3 * 3600);
        assert!(parse_zone("+5").is_err());
        assert!(parse_zone("+25:00").is_err());
    }
}
