//! The three output formats of `audit` and `replay`: a table for people, JSON lines and CSV for machines.

use std::io::Write;

use keyguard_core::{AuditRow, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Writes the rows; returns whether any is a violation or a suspect (exit code 1).
pub fn write_rows(rows: &[AuditRow], format: Format, out: &mut impl Write) -> anyhow::Result<bool> {
    match format {
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
