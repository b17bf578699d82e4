//! Dates in a roster's `accessEndDate` column. Always accepted: an ISO 8601 calendar date
//! (`2025-12-31`) and an RFC 3339 date-time (`2025-12-31T17:00:00Z`, `…+01:00`). A partner's
//! column map may add chrono format strings (`%d/%m/%Y`).
//!
//! A date without a time means access ends at the *end* of that day in UTC, so it is stored
//! as the next day at 00:00:00Z: `2025-12-31` → `2026-01-01T00:00:00.000Z` (`9999-12-31`, the
//! usual "no end", becomes `9999-12-31T23:59:59.999Z`). A date-time is taken as given
//! (converted to UTC); a date-time format without an offset is read as UTC. Years outside
//! 0000–9999 are refused, as xsd:dateTime needs four digits.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use std::fmt::Write;

/// How the always-accepted formats are described in messages.
const BUILT_IN: &str = "YYYY-MM-DD, an RFC 3339 date-time such as 2025-12-31T17:00:00Z";

/// Parses an access end date; `None` when no accepted format matches.
pub fn parse_access_end(text: &str, extra_formats: &[String]) -> Option<DateTime<Utc>> {
    parse_iso(text)
        .or_else(|| {
            extra_formats
                .iter()
                .find_map(|f| parse_with_format(text, f))
        })
        .filter(|t| (0..=9999).contains(&t.year()))
}

/// The accepted formats, for error messages.
pub fn describe_formats(extra_formats: &[String]) -> String {
    let mut out = String::from(BUILT_IN);
    for f in extra_formats {
        out.push_str(", ");
        out.push_str(f);
    }
    out
}

fn parse_iso(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    let date_shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if date_shaped {
        return NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(end_of_day);
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// One chrono format: with an offset, a date-time without one (UTC), or a date alone (end
/// of that day). Tried in that order because a date-only parse would silently drop a time.
fn parse_with_format(text: &str, format: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::<FixedOffset>::parse_from_str(text, format) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
        return Some(Utc.from_utc_datetime(&t));
    }
    NaiveDate::parse_from_str(text, format)
        .ok()
        .and_then(end_of_day)
}

fn end_of_day(date: NaiveDate) -> Option<DateTime<Utc>> {
    if date.year() >= 10_000 {
        return None;
    }
    if date.year() == 9999 && date.month() == 12 && date.day() == 31 {
        // HR systems use 9999-12-31 for "no end"; the next day has no four-digit year, which
        // xsd:dateTime needs, so the last millisecond of that day stands for its end.
        return NaiveDate::from_ymd_opt(9999, 12, 31)
            .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 999))
            .map(|t| Utc.from_utc_datetime(&t));
    }
    date.succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
}

/// Checks a column map's date format: valid chrono syntax, and a date written with it reads
/// back as the same day (so `%d/%m` without a year, or a time-only format, is refused).
pub fn validate_format(format: &str) -> Result<(), String> {
    if format.trim().is_empty() {
        return Err("a date format must not be empty".into());
    }
    let items: Vec<Item<'_>> = StrftimeItems::new(format).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(format!(
            "date format {format:?} is not a valid chrono format string"
        ));
    }
    let sample_day = NaiveDate::from_ymd_opt(2025, 1, 31)
        .and_then(|d| d.and_hms_opt(13, 45, 56))
        .map(|t| Utc.from_utc_datetime(&t));
    let Some(sample) = sample_day else {
        return Err("internal error: sample date".into());
    };
    let mut written = String::new();
    if write!(written, "{}", sample.format_with_items(items.into_iter())).is_err() {
        return Err(format!(
            "date format {format:?} cannot be used to write a date"
        ));
    }
    let read_back = parse_with_format(&written, format);
    // A date-time format may drop seconds; a date-only one reads as the end of the day.
    let same_day = read_back.is_some_and(|t| {
        t.date_naive() == sample.date_naive() || Some(t) == end_of_day(sample.date_naive())
    });
    if same_day {
        Ok(())
    } else {
        Err(format!(
            "date format {format:?} does not identify a day (it needs a day, month and year)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_date_ends_at_the_end_of_that_day_utc() {
        assert_eq!(
            parse_access_end("2025-12-31", &[]),
            Some(utc("2026-01-01T00:00:00Z"))
        );
        assert_eq!(
            parse_access_end("2024-02-28", &[]),
            Some(utc("2024-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn date_times_are_taken_as_given_in_utc() {
        assert_eq!(
            parse_access_end("2025-12-31T17:30:00+01:00", &[]),
            Some(utc("2025-12-31T16:30:00Z"))
        );
        assert_eq!(
            parse_access_end("2025-12-31T17:30:00.250Z", &[]),
            Some(utc("2025-12-31T17:30:00.250Z"))
        );
    }

    #[test]
    fn the_no_end_sentinel_keeps_a_four_digit_year() {
        assert_eq!(
            parse_access_end("9999-12-31", &[]),
            Some(utc("9999-12-31T23:59:59.999Z"))
        );
        let formats = vec!["%d/%m/%Y".to_string()];
        assert_eq!(
            parse_access_end("31/12/9999", &formats),
            Some(utc("9999-12-31T23:59:59.999Z"))
        );
        assert_eq!(parse_access_end("01/01/10000", &formats), None);
    }

    #[test]
    fn rejects_what_is_not_a_date() {
        for bad in [
            "2025-02-30",
            "2025-13-01",
            "31/12/2025",
            "2025-1-5",
            "2025-12-31T17:00:00",
            "tomorrow",
            "",
            "+262143-12-31",
        ] {
            assert_eq!(parse_access_end(bad, &[]), None, "{bad}");
        }
    }

    #[test]
    fn extra_formats_from_the_column_map() {
        let formats = vec!["%d/%m/%Y".to_string(), "%d.%m.%Y %H:%M".to_string()];
        assert_eq!(
            parse_access_end("31/12/2025", &formats),
            Some(utc("2026-01-01T00:00:00Z"))
        );
        assert_eq!(
            parse_access_end("31.12.2025 17:00", &formats),
            Some(utc("2025-12-31T17:00:00Z"))
        );
        // ISO stays accepted alongside.
        assert_eq!(
            parse_access_end("2025-12-31", &formats),
            Some(utc("2026-01-01T00:00:00Z"))
        );
        assert_eq!(parse_access_end("12/31/2025", &formats), None);
        assert!(describe_formats(&formats).ends_with("%d/%m/%Y, %d.%m.%Y %H:%M"));
    }

    #[test]
    fn format_validation() {
        for ok in [
            "%d/%m/%Y",
            "%m/%d/%y",
            "%d.%m.%Y %H:%M",
            "%Y%m%d",
            "%d %B %Y",
            "%+",
        ] {
            assert_eq!(validate_format(ok), Ok(()), "{ok}");
        }
        for bad in ["", "%d/%m", "%H:%M", "%Q", "%Y-%m-%", "hello"] {
            assert!(validate_format(bad).is_err(), "{bad}");
        }
    }
}
