//! The output formats of `audit` and `replay`: a table for people, JSON lines and CSV for machines, OCSF
//! Compliance Findings (JSON lines) for Security Lake and SIEMs, and a self-contained HTML report for auditors.
//!
//! Across accounts, every format names each row's account (the table adds an `account` column when the rows span
//! several). An account, or a user, that could not be audited is an **error row** in every format, after the rows:
//! - table: a line with verdict `error` and the error as its reason, counted in the summary;
//! - json: `{"account": ..., "user": ... (only for one user), "error": ...}`;
//! - csv: a row of the same columns with verdict `error`, the error as `reason`, the other fields empty;
//! - ocsf: a Compliance Finding with compliance status Unknown (`keyguard_core::ocsf::not_assessed`);
//! - html: a "Not audited" section, and its count in the scope.

use std::io::Write;

use keyguard_core::html::ReportContext;
use keyguard_core::{AuditFailure, AuditRow, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
    /// OCSF 1.6.0 Compliance Findings (class 2003), one per line.
    Ocsf,
    /// One self-contained HTML file: scope, counts, a picture of the rule at work, every row.
    Html,
}

/// Writes the rows; returns whether any is a violation or a suspect (exit code 1). `report` says what the rows
/// are about (the HTML report shows it; OCSF takes its time).
pub fn write_rows(
    rows: &[AuditRow],
    format: Format,
    report: &ReportContext,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    write_report(rows, &[], format, report, out)
}

/// Writes the rows, then an error row per failure (see the module's comment); returns whether any row is a
/// violation or a suspect.
pub fn write_report(
    rows: &[AuditRow],
    failures: &[AuditFailure],
    format: Format,
    report: &ReportContext,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    match format {
        Format::Ocsf => {
            for row in rows {
                serde_json::to_writer(&mut *out, &keyguard_core::ocsf::compliance_finding(row, report.generated_at))?;
                writeln!(out)?;
            }
            for failure in failures {
                serde_json::to_writer(&mut *out, &keyguard_core::ocsf::not_assessed(failure, report.generated_at))?;
                writeln!(out)?;
            }
        }
        Format::Html => out.write_all(keyguard_core::html::render_with_failures(report, rows, failures).as_bytes())?,
        Format::Json => {
            for row in rows {
                serde_json::to_writer(&mut *out, row)?;
                writeln!(out)?;
            }
            for failure in failures {
                serde_json::to_writer(&mut *out, failure)?;
                writeln!(out)?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            for row in rows {
                w.serialize(row)?;
            }
            for failure in failures {
                w.serialize(CsvError::from(failure))?;
            }
            w.flush()?;
        }
        Format::Table => table(rows, failures, out)?,
    }
    Ok(rows.iter().any(|r| r.verdict.is_finding()))
}

/// A failure as a CSV row: [`AuditRow`]'s columns, in its order (a test holds them equal), verdict `error`.
#[derive(serde::Serialize)]
struct CsvError<'a> {
    account: &'a str,
    user: &'a str,
    access_key_id: &'a str,
    verdict: &'a str,
    reason: &'a str,
    user_created: &'a str,
    key_created: &'a str,
    gap_seconds: &'a str,
    has_password: &'a str,
    creator: &'a str,
    last_used: &'a str,
    action: &'a str,
}

impl<'a> From<&'a AuditFailure> for CsvError<'a> {
    fn from(f: &'a AuditFailure) -> CsvError<'a> {
        CsvError {
            account: &f.account,
            user: f.user.as_deref().unwrap_or(""),
            access_key_id: "",
            verdict: "error",
            reason: &f.error,
            user_created: "",
            key_created: "",
            gap_seconds: "",
            has_password: "",
            creator: "",
            last_used: "",
            action: "none",
        }
    }
}

fn table(rows: &[AuditRow], failures: &[AuditFailure], out: &mut impl Write) -> anyhow::Result<()> {
    // The account column only when the rows span several accounts: one account's table stays as it was.
    let mut accounts: Vec<&str> =
        rows.iter().map(|r| r.account.as_str()).chain(failures.iter().map(|f| f.account.as_str())).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let with_account = accounts.len() > 1;
    let header = ["account", "user", "access key", "verdict", "gap", "password", "last used", "action", "reason"];
    let mut lines: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.account.clone(),
                r.user.clone(),
                r.access_key_id.clone().unwrap_or_else(|| "-".into()),
                r.verdict.as_str().to_string(),
                r.gap_seconds.map(keyguard_core::time::human_span).unwrap_or_else(|| "-".into()),
                if r.has_password { "yes" } else { "no" }.to_string(),
                r.last_used.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "never".into()),
                r.action.as_str().to_string(),
                r.reason.clone(),
            ]
        })
        .collect();
    let dash = || "-".to_string();
    lines.extend(failures.iter().map(|f| {
        [
            f.account.clone(),
            f.user.clone().unwrap_or_else(dash),
            dash(),
            "error".to_string(),
            dash(),
            dash(),
            dash(),
            "none".to_string(),
            f.error.clone(),
        ]
    }));
    let skip = usize::from(!with_account);
    let header = &header[skip..];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(&line[skip..]) {
            *w = (*w).max(cell.len());
        }
    }
    let print = |out: &mut dyn Write, cells: &[&str]| -> std::io::Result<()> {
        let n = cells.len();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let w = *w;
            if i + 1 == n { writeln!(out, "{cell}")? } else { write!(out, "{cell:<w$}  ")? }
        }
        Ok(())
    };
    print(out, header)?;
    for line in &lines {
        print(out, &line[skip..].iter().map(String::as_str).collect::<Vec<_>>())?;
    }
    let count = |v: Verdict| rows.iter().filter(|r| r.verdict == v).count();
    write!(
        out,
        "\n{} rows: {} violation, {} suspect, {} compliant, {} exempt",
        rows.len(),
        count(Verdict::Violation),
        count(Verdict::Suspect),
        count(Verdict::Compliant),
        count(Verdict::Exempt)
    )?;
    if !failures.is_empty() {
        write!(out, "; {} not audited (error)", failures.len())?;
    }
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use chrono::{TimeZone, Utc};
    use keyguard_core::Action;

    fn row(account: &str, user: &str, verdict: Verdict) -> AuditRow {
        let at = Utc.with_ymd_and_hms(2025, 3, 11, 14, 2, 7).single().unwrap();
        AuditRow {
            account: account.into(),
            user: user.into(),
            access_key_id: Some(format!("AKIA{}", user.to_uppercase())),
            verdict,
            reason: format!("reason for {user}"),
            user_created: at,
            key_created: Some(at),
            gap_seconds: Some(0),
            has_password: true,
            creator: None,
            last_used: None,
            action: Action::DryRun,
        }
    }

    fn failure() -> AuditFailure {
        AuditFailure {
            account: "444455556666".into(),
            user: None,
            error: "sts:AssumeRole failed (AccessDenied): account 444455556666: cannot assume".into(),
        }
    }

    fn context() -> ReportContext {
        ReportContext {
            source: "audit".into(),
            accounts: vec![],
            generated_at: Utc.with_ymd_and_hms(2025, 3, 12, 9, 0, 0).single().unwrap(),
            window: chrono::TimeDelta::minutes(10),
            exemptions: vec![],
        }
    }

    fn written(rows: &[AuditRow], failures: &[AuditFailure], format: Format) -> String {
        let mut out = Vec::new();
        write_report(rows, failures, format, &context(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn one_account_table_has_no_account_column() {
        let text = written(&[row("111122223333", "maria", Verdict::Violation)], &[], Format::Table);
        assert!(text.starts_with("user "), "{text}");
        assert!(!text.contains("111122223333"), "{text}");
    }

    #[test]
    fn a_table_across_accounts_names_each_rows_account_and_lists_the_failed_one() {
        let rows = [row("111122223333", "maria", Verdict::Violation), row("210987654321", "maria", Verdict::Compliant)];
        let text = written(&rows, &[failure()], Format::Table);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("account       user"), "{text}");
        assert!(lines[1].starts_with("111122223333  maria"), "{text}");
        assert!(lines[2].starts_with("210987654321  maria"), "{text}");
        assert!(lines[3].starts_with("444455556666  -") && lines[3].contains(" error "), "{text}");
        assert!(lines[3].ends_with("cannot assume"), "{text}");
        assert!(text.contains("; 1 not audited (error)"), "{text}");
    }

    #[test]
    fn json_error_rows_name_the_account_and_the_error() {
        let text = written(&[row("111122223333", "maria", Verdict::Violation)], &[failure()], Format::Json);
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["account"], "111122223333");
        assert_eq!(lines[1], serde_json::json!({"account": "444455556666", "error": failure().error}));
    }

    #[test]
    fn csv_error_rows_have_the_rows_columns_and_verdict_error() {
        let text = written(&[row("111122223333", "maria", Verdict::Violation)], &[failure()], Format::Csv);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
        // The error row's columns are AuditRow's, in its order: the header written from either is the same.
        let alone = written(&[], &[failure()], Format::Csv);
        assert_eq!(alone.lines().next(), text.lines().next());
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let field = |r: &csv::StringRecord, name: &str| r[header.iter().position(|h| h == name).unwrap()].to_string();
        assert_eq!(field(&records[1], "account"), "444455556666");
        assert_eq!(field(&records[1], "verdict"), "error");
        assert_eq!(field(&records[1], "reason"), failure().error);
        assert_eq!(field(&records[0], "verdict"), "violation");
    }

    #[test]
    fn ocsf_and_html_carry_the_failure() {
        let ocsf = written(&[], &[failure()], Format::Ocsf);
        let finding: serde_json::Value = serde_json::from_str(ocsf.trim()).unwrap();
        assert_eq!(finding["compliance"]["status"], "Unknown");
        assert_eq!(finding["cloud"]["account"]["uid"], "444455556666");
        let html = written(&[], &[failure()], Format::Html);
        assert!(html.contains("id=\"not-audited\""));
    }
}
