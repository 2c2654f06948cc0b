//! Which calls a replay keeps (`--since`, `--until`, `--account`), and which files can be left unread by their
//! S3-layout path alone.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use keyguard_core::IamCall;

/// Which calls count: a time range by `eventTime` (both ends inclusive) and accounts (`recipientAccountId`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Empty: every account.
    pub accounts: Vec<String>,
}

impl Filter {
    /// Whether the call is in range and in one of the accounts.
    pub fn keeps(&self, call: &IamCall) -> bool {
        self.since.is_none_or(|s| call.event_time >= s)
            && self.until.is_none_or(|u| call.event_time <= u)
            && (self.accounts.is_empty() || call.account.as_ref().is_some_and(|a| self.accounts.contains(a)))
    }

    /// Whether a file of the S3 delivery layout can hold calls this filter keeps, judged by its path:
    /// - the date (`.../YYYY/MM/DD/...`, the UTC day CloudTrail delivered it: its calls are no later), with a day
    ///   of slack, against `--since`;
    /// - the account folder (`AWSLogs/[<org-id>/]<account>/CloudTrail/...`: CloudTrail files each account's calls
    ///   under its own id, in an organization trail too) against `--account`.
    pub fn may_hold(&self, path: &str) -> bool {
        let date_ok = match (self.since, path_date(path)) {
            (Some(since), Some(day)) => day + TimeDelta::days(2) > since.date_naive(),
            _ => true,
        };
        let account_ok = match path_account(path) {
            Some(account) if !self.accounts.is_empty() => self.accounts.iter().any(|a| a == account),
            _ => true,
        };
        date_ok && account_ok
    }

    /// A usage error when the range is empty.
    pub fn check(&self) -> Result<(), String> {
        match (self.since, self.until) {
            (Some(s), Some(u)) if s > u => Err(format!("--since {s} is after --until {u}")),
            _ => Ok(()),
        }
    }
}

/// `--since`: RFC 3339, or a date for the start of that day (UTC).
pub fn since_bound(text: &str) -> Result<DateTime<Utc>, String> {
    bound(text, NaiveTime::MIN, TimeDelta::zero())
}

/// `--until`: RFC 3339, or a date for the whole of that day (UTC).
pub fn until_bound(text: &str) -> Result<DateTime<Utc>, String> {
    // The last instant of the day: eventTime may carry fractions of a second.
    bound(text, NaiveTime::MIN, TimeDelta::days(1) - TimeDelta::nanoseconds(1))
}

fn bound(text: &str, at: NaiveTime, plus: TimeDelta) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is neither RFC 3339 (2025-03-11T14:02:07Z) nor a date (2025-03-11)"))?;
    Ok(day.and_time(at).and_utc() + plus)
}

fn segments(path: &str) -> Vec<&str> {
    path.split(['/', '\\']).collect()
}

/// The `YYYY/MM/DD` of an S3-layout path, if it has one.
pub(crate) fn path_date(path: &str) -> Option<NaiveDate> {
    let parts = segments(path);
    parts.windows(3).rev().find_map(|w| {
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if !(digits(w[0], 4) && digits(w[1], 2) && digits(w[2], 2)) {
            return None;
        }
        NaiveDate::from_ymd_opt(w[0].parse().ok()?, w[1].parse().ok()?, w[2].parse().ok()?)
    })
}

/// The account of an S3-layout path: the 12-digit folder just before `CloudTrail/` (a trail of one account,
/// `AWSLogs/<account>/CloudTrail/...`, or an organization trail, `AWSLogs/<org-id>/<account>/CloudTrail/...`).
pub(crate) fn path_account(path: &str) -> Option<&str> {
    let parts = segments(path);
    parts
        .windows(2)
        .find(|w| w[1] == "CloudTrail" && w[0].len() == 12 && w[0].bytes().all(|b| b.is_ascii_digit()))
        .map(|w| w[0])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn bounds_read_dates_and_instants() {
        assert_eq!(since_bound("2025-03-11").unwrap().to_rfc3339(), "2025-03-11T00:00:00+00:00");
        assert_eq!(until_bound("2025-03-11").unwrap().to_rfc3339(), "2025-03-11T23:59:59.999999999+00:00");
        assert_eq!(until_bound("2025-03-11T14:02:07Z").unwrap().to_rfc3339(), "2025-03-11T14:02:07+00:00");
        assert!(since_bound("yesterday").is_err());
        let f = Filter {
            since: Some(since_bound("2025-03-12").unwrap()),
            until: Some(since_bound("2025-03-11").unwrap()),
            ..Filter::default()
        };
        assert!(f.check().is_err());
    }

    #[test]
    fn dates_and_accounts_from_paths() {
        let p = "AWSLogs/111122223333/CloudTrail/us-east-1/2025/03/11/111122223333_CloudTrail_us-east-1_x.json.gz";
        assert_eq!(path_date(p), NaiveDate::from_ymd_opt(2025, 3, 11));
        assert_eq!(path_account(p), Some("111122223333"));
        let org = "AWSLogs/o-abc123def4/444455556666/CloudTrail/us-east-1/2025/03/11/444455556666_CloudTrail_x.json.gz";
        assert_eq!(path_account(org), Some("444455556666"));
        assert_eq!(path_account("saved/events.jsonl"), None);
        let f = Filter { since: Some(since_bound("2025-03-13").unwrap()), ..Filter::default() };
        assert!(!f.may_hold(p));
        let f = Filter { since: Some(since_bound("2025-03-12T23:00:00Z").unwrap()), ..Filter::default() };
        assert!(f.may_hold(p), "a day of slack");
        assert!(f.may_hold("events.jsonl"));
        let f = Filter { accounts: vec!["111122223333".into()], ..Filter::default() };
        assert!(f.may_hold(p));
        assert!(!f.may_hold(org), "another account's folder");
        assert!(f.may_hold("events.jsonl"), "no account in the path: read, and filtered by record");
    }
}
