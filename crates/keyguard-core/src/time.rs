//! The date formats CloudTrail uses, all read as UTC.

use chrono::{DateTime, NaiveDateTime, Utc};

/// Parses any of the three date formats found in CloudTrail IAM events:
/// - RFC 3339 (`eventTime`, `2025-03-11T14:03:15Z`, with or without fractional seconds);
/// - the IAM response style `Mar 11, 2025 2:03:15 PM` (`responseElements.*.createDate`, UTC without a zone);
/// - basic ISO 8601 `20250311T135541Z` (session `creationDate` in some events).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ") {
        return Some(t.and_utc());
    }
    // The IAM response style; whitespace is folded first (single-digit days and hours vary in padding).
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    NaiveDateTime::parse_from_str(&folded, "%b %d, %Y %I:%M:%S %p").ok().map(|t| t.and_utc())
}

/// Renders a non-negative span as `1h 02m 03s` (or `8s`), for humans reading an alert.
pub fn human_span(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    let s = seconds.unsigned_abs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{sign}{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{sign}{m}m {s:02}s")
    } else {
        format!("{sign}{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn reads_the_three_formats() {
        let want = Utc.with_ymd_and_hms(2025, 3, 11, 14, 3, 15).single();
        assert_eq!(parse_time("2025-03-11T14:03:15Z"), want);
        assert_eq!(parse_time("Mar 11, 2025 2:03:15 PM"), want);
        assert_eq!(parse_time("20250311T140315Z"), want);
        assert_eq!(parse_time("2025-03-11T14:03:15+00:00"), want);
    }

    #[test]
    fn reads_fractions_single_digits_and_midnight() {
        let t = parse_time("2025-03-11T14:03:15.123Z").unwrap();
        assert_eq!(t.timestamp_subsec_millis(), 123);
        assert_eq!(parse_time("Mar 1, 2025 9:05:07 AM"), Utc.with_ymd_and_hms(2025, 3, 1, 9, 5, 7).single());
        assert_eq!(parse_time("Aug 1, 2024 12:00:01 AM"), Utc.with_ymd_and_hms(2024, 8, 1, 0, 0, 1).single());
        assert_eq!(parse_time("Aug 1, 2024 12:00:01 PM"), Utc.with_ymd_and_hms(2024, 8, 1, 12, 0, 1).single());
    }

    #[test]
    fn rejects_what_is_not_a_date() {
        for bad in ["", "yesterday", "2025-13-01T00:00:00Z", "Foo 1, 2025 1:00:00 PM"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn spans_read_like_a_clock() {
        assert_eq!(human_span(8), "8s");
        assert_eq!(human_span(68), "1m 08s");
        assert_eq!(human_span(3723), "1h 02m 03s");
        assert_eq!(human_span(-5), "-5s");
    }
}
