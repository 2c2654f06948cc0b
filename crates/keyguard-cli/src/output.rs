//! The output formats of `audit` and `replay`: a table for people, JSON lines and CSV for machines, OCSF
//! Compliance Findings (JSON lines) for Security Lake and SIEMs, and a self-contained HTML report for auditors.

use std::io::Write;

use keyguard_core::html::ReportContext;
use keyguard_core::{AuditRow, Verdict};

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
    match format {
        Format::Ocsf => {
            for row in rows {
                serde_json::to_writer(&mut *out, &keyguard_core::ocsf::compliance_finding(row, report.generated_at))?;
                writeln!(out)?;
            }
        }
        Format::Html => out.write_all(keyguard_core::html::render(report, rows).as_bytes())?,
        Format::Json => {
            for row in rows {
                serde_json::to_writer(&mut *out, row)?;
                writeln!(out)?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            for row in rows {
                w.serialize(row)?;
            }
            w.flush()?;
        }
        Format::Table => table(rows, out)?,
    }
    Ok(rows.iter().any(|r| r.verdict.is_finding()))
}

fn table(rows: &[AuditRow], out: &mut impl Write) -> anyhow::Result<()> {
    let header = ["user", "access key", "verdict", "gap", "password", "last used", "action", "reason"];
    let lines: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
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
    let mut widths = header.map(str::len);
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.len());
        }
    }
    let print = |out: &mut dyn Write, cells: &[&str]| -> std::io::Result<()> {
        let n = cells.len();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == n { writeln!(out, "{cell}")? } else { write!(out, "{cell:<w$}  ")? }
        }
        Ok(())
    };
    print(out, &header)?;
    for line in &lines {
        print(out, &line.iter().map(String::as_str).collect::<Vec<_>>())?;
    }
    let count = |v: Verdict| rows.iter().filter(|r| r.verdict == v).count();
    writeln!(
        out,
        "\n{} rows: {} violation, {} suspect, {} compliant, {} exempt",
        rows.len(),
        count(Verdict::Violation),
        count(Verdict::Suspect),
        count(Verdict::Compliant),
        count(Verdict::Exempt)
    )?;
    Ok(())
}
