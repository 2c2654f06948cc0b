//! The evidence report for auditors (`keyguard audit --format html`): one self-contained HTML file with the scope
//! (accounts, time, setup window, exemptions), the counts by verdict, a picture of the rule at work, and every row.
//! Accounts (or users) the audit could not read are listed in a section of their own, "Not audited", right after the
//! counts, and the scope says how many: an account that was not checked must not pass for a clean one.
//!
//! Self-contained means no network and no external assets: inline CSS, inline SVG, system fonts, and a Content
//! Security Policy that forbids loading anything. The HTML is built with `maud`, whose templates escape every
//! interpolated value, so user names, ARNs and reasons cannot inject markup.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::audit::{AuditFailure, AuditRow};
use crate::rule::Verdict;
use crate::time::human_span;

/// More dots than this make an unreadable picture; the table still lists every row.
pub const MAX_MARKS: usize = 400;

/// What the report is about, beside its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportContext {
    /// How the rows were obtained, e.g. "audit of the current IAM state".
    pub source: String,
    /// The accounts evaluated (when empty, the accounts of the rows).
    pub accounts: Vec<String>,
    pub generated_at: DateTime<Utc>,
    pub window: TimeDelta,
    /// The exemptions in force, one phrase each (e.g. "user tag keyguard:exempt").
    pub exemptions: Vec<String>,
}

const VERDICTS: [Verdict; 5] =
    [Verdict::Violation, Verdict::Suspect, Verdict::Exempt, Verdict::Compliant, Verdict::Ignored];

/// Worst first: the order of the table and the picture.
fn rank(v: Verdict) -> usize {
    VERDICTS.iter().position(|x| *x == v).unwrap_or(VERDICTS.len())
}

/// The whole report, as one HTML document.
pub fn render(ctx: &ReportContext, rows: &[AuditRow]) -> String {
    render_with_failures(ctx, rows, &[])
}

/// The whole report, with the accounts or users that could not be audited.
pub fn render_with_failures(ctx: &ReportContext, rows: &[AuditRow], failures: &[AuditFailure]) -> String {
    let mut sorted: Vec<&AuditRow> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        (rank(a.verdict), &a.account, &a.user, &a.access_key_id).cmp(&(
            rank(b.verdict),
            &b.account,
            &b.user,
            &b.access_key_id,
        ))
    });
    let mut accounts = if ctx.accounts.is_empty() {
        rows.iter().map(|r| r.account.clone()).chain(failures.iter().map(|f| f.account.clone())).collect::<Vec<_>>()
    } else {
        ctx.accounts.clone()
    };
    accounts.sort();
    accounts.dedup();
    let keys = rows.iter().filter(|r| r.access_key_id.is_some()).count();
    let many_accounts = accounts.len() > 1;
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                // Nothing may be loaded: the report must read the same offline, years later.
                meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "KeyGuard evidence report: CIS AWS Foundations Benchmark 1.11" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { "KeyGuard evidence report" }
                    p.subtitle {
                        "CIS AWS Foundations Benchmark 1.11: do not set up access keys during the initial setup of "
                        "IAM users that have a console password."
                    }
                }
                section #scope {
                    h2 { "Scope" }
                    dl {
                        dt { @if many_accounts { "Accounts" } @else { "Account" } }
                        dd.accounts {
                            @if accounts.is_empty() { "none found" }
                            @for (i, a) in accounts.iter().enumerate() { @if i > 0 { ", " } code { (a) } }
                        }
                        dt { "Generated" }
                        dd.generated { time datetime=(stamp(ctx.generated_at)) { (stamp(ctx.generated_at)) } }
                        dt { "Source" }
                        dd.source { (ctx.source) }
                        dt { "Setup window" }
                        dd.window { (window_text(ctx.window)) " after the user's creation" }
                        dt { "Exemptions" }
                        dd.exemptions {
                            @if ctx.exemptions.is_empty() { "none" }
                            @else { ul { @for e in &ctx.exemptions { li { (e) } } } }
                        }
                        dt { "Evaluated" }
                        dd.evaluated { (rows.len()) " rows, " (keys) " access keys" }
                        @if !failures.is_empty() {
                            dt { "Not audited" }
                            dd.not-audited { (failures.len()) " account(s) or user(s): see below" }
                        }
                    }
                }
                section #counts {
                    h2 { "Verdicts" }
                    div.cards {
                        @for v in &VERDICTS[..4] {
                            div class=(format!("card {}", v.as_str())) data-verdict=(v.as_str()) {
                                span.count { (rows.iter().filter(|r| r.verdict == *v).count()) }
                                span.label { (v.as_str()) }
                            }
                        }
                    }
                }
                @if !failures.is_empty() {
                    section #not-audited {
                        h2 { "Not audited" }
                        p {
                            "These could not be read, so nothing is known of their keys: they are not compliant, "
                            "only unchecked. Fix the cause and audit them again."
                        }
                        table {
                            thead { tr { th { "Account" } th { "User" } th { "Verdict" } th { "Error" } } }
                            tbody {
                                @for f in failures {
                                    tr.row.error data-verdict="error" data-account=(f.account) {
                                        td { code { (f.account) } }
                                        td.user { (f.user.as_deref().unwrap_or("(the whole account)")) }
                                        td.verdict { span.badge.error { "error" } }
                                        td.reason { (f.error) }
                                    }
                                }
                            }
                        }
                    }
                }
                section #picture {
                    h2 { "The rule at work" }
                    p {
                        "Each dot is one access key, placed by how long after its user it was created (logarithmic "
                        "scale). Keys in the shaded band were created within the setup window: those of users with a "
                        "console password, created by someone else, are violations."
                    }
                    (picture(&sorted, ctx.window))
                }
                section #findings {
                    h2 { "Findings" }
                    table {
                        thead { tr {
                            @if many_accounts { th { "Account" } }
                            th { "User" } th { "Access key" } th { "Verdict" } th { "Gap" } th { "Password" }
                            th { "Created by" } th { "Last used" } th { "Action" } th { "Reason" }
                        } }
                        tbody {
                            @for r in &sorted {
                                tr class=(format!("row {}", r.verdict.as_str())) data-verdict=(r.verdict.as_str())
                                    data-key=(r.access_key_id.as_deref().unwrap_or("")) {
                                    @if many_accounts { td { code { (r.account) } } }
                                    td.user { (r.user) }
                                    td.key { code { (r.access_key_id.as_deref().unwrap_or("-")) } }
                                    td.verdict { span class=(format!("badge {}", r.verdict.as_str())) { (r.verdict.as_str()) } }
                                    td.gap { (r.gap_seconds.map(human_span).unwrap_or_else(|| "-".into())) }
                                    td { @if r.has_password { "yes" } @else { "no" } }
                                    td.creator { (r.creator.as_deref().unwrap_or("unknown")) }
                                    td { (r.last_used.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "never".into())) }
                                    td.action { (r.action.as_str()) }
                                    td.reason { (r.reason) }
                                }
                            }
                        }
                    }
                }
                footer {
                    "Generated by KeyGuard " (env!("CARGO_PKG_VERSION")) " at " (stamp(ctx.generated_at))
                    ". This file is self-contained: it loads nothing from the network."
                }
            }
        }
    };
    page.into_string()
}

/// One dot per key on a logarithmic time axis (seconds from the user's creation), against the setup window.
fn picture(rows: &[&AuditRow], window: TimeDelta) -> Markup {
    const WIDTH: f64 = 960.0;
    const LABELS: f64 = 270.0;
    const RIGHT: f64 = 24.0;
    const TOP: f64 = 48.0;
    const ROW: f64 = 18.0;
    let marks: Vec<(&AuditRow, i64)> = rows
        .iter()
        .filter_map(|r| Some((*r, r.gap_seconds?.max(0))))
        .filter(|(r, _)| r.access_key_id.is_some())
        .collect();
    let hidden = marks.len().saturating_sub(MAX_MARKS);
    let marks = &marks[..marks.len().min(MAX_MARKS)];
    if marks.is_empty() {
        return html! { p.empty { "No access keys to draw." } };
    }
    let window_s = window.num_seconds().max(1);
    let max_gap = marks.iter().map(|(_, g)| *g).max().unwrap_or(0);
    let span = (max_gap.max(window_s * 20).max(60) as f64).ln_1p();
    let plot = WIDTH - LABELS - RIGHT;
    let x = |seconds: i64| LABELS + (seconds.max(0) as f64).ln_1p() / span * plot;
    let height = TOP + marks.len() as f64 * ROW + 34.0;
    let bottom = TOP + marks.len() as f64 * ROW;
    let ticks: Vec<(i64, &str)> = [
        (1, "1s"),
        (10, "10s"),
        (60, "1m"),
        (600, "10m"),
        (3600, "1h"),
        (86_400, "1d"),
        (604_800, "7d"),
        (2_592_000, "30d"),
        (31_536_000, "1y"),
        (315_360_000, "10y"),
    ]
    .into_iter()
    .filter(|(s, _)| (*s as f64).ln_1p() <= span)
    .collect();
    html! {
        svg #rule-picture xmlns="http://www.w3.org/2000/svg" role="img" width=(WIDTH) height=(fmt(height))
            viewBox=(format!("0 0 {WIDTH} {}", fmt(height)))
            aria-label="Each access key's delay after its user's creation, against the setup window" {
            rect.window-zone x=(LABELS) y=(fmt(TOP - 6.0)) width=(fmt(x(window_s) - LABELS)) height=(fmt(bottom - TOP + 6.0)) {}
            @for (s, label) in &ticks {
                line.tick x1=(fmt(x(*s))) x2=(fmt(x(*s))) y1=(fmt(TOP - 6.0)) y2=(fmt(bottom)) {}
                text.tick-label x=(fmt(x(*s))) y=(fmt(TOP - 12.0)) text-anchor="middle" { (label) }
            }
            line.window-line x1=(fmt(x(window_s))) x2=(fmt(x(window_s))) y1=(fmt(TOP - 30.0)) y2=(fmt(bottom)) {}
            text.window-label x=(fmt(x(window_s) + 4.0)) y=(fmt(TOP - 30.0)) {
                "setup window: " (window_text(window))
            }
            @for (i, (r, gap)) in marks.iter().enumerate() {
                @let y = TOP + i as f64 * ROW + ROW / 2.0;
                @let key = r.access_key_id.as_deref().unwrap_or("");
                text.row-label x=(fmt(LABELS - 8.0)) y=(fmt(y + 4.0)) text-anchor="end" {
                    (shorten(&r.user, 24)) " " (shorten(key, 20))
                }
                line class=(format!("gap-line {}", r.verdict.as_str())) x1=(LABELS) x2=(fmt(x(*gap))) y1=(fmt(y)) y2=(fmt(y)) {}
                circle class=(format!("mark {}", r.verdict.as_str())) cx=(fmt(x(*gap))) cy=(fmt(y)) r="5"
                    data-key=(key) data-user=(r.user) data-verdict=(r.verdict.as_str()) data-gap=(gap) {
                    title { (r.user) " " (key) ": " (r.verdict.as_str()) ", created " (human_span(*gap)) " after the user" }
                }
            }
            text.axis-label x=(fmt(LABELS + plot / 2.0)) y=(fmt(height - 8.0)) text-anchor="middle" {
                "time from the user's creation to the key's creation (log scale)"
            }
        }
        @if hidden > 0 {
            p.hidden-marks { (hidden) " more keys are not drawn; the table lists every one." }
        }
    }
}

/// `10m`, `1h 30m`: as the window is written in the configuration.
fn window_text(window: TimeDelta) -> String {
    humantime::format_duration(std::time::Duration::from_secs(window.num_seconds().max(0).unsigned_abs())).to_string()
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// At most `max` characters, the rest replaced by an ellipsis.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}\u{2026}", text.chars().take(max - 1).collect::<String>())
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

const CSS: &str = r#"
:root { --violation: #c62828; --suspect: #e65100; --compliant: #2e7d32; --exempt: #546e7a; --ignored: #9e9e9e;
        --ink: #1d2330; --muted: #5b6475; --line: #d8dde6; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       max-width: 1120px; margin: 2rem auto; padding: 0 1.25rem; line-height: 1.45; }
h1 { margin: 0; font-size: 1.7rem; }
h2 { font-size: 1.15rem; border-bottom: 1px solid var(--line); padding-bottom: .3rem; margin-top: 2rem; }
.subtitle { color: var(--muted); margin-top: .3rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .35rem 1.5rem; margin: 0; }
dt { font-weight: 600; color: var(--muted); }
dd { margin: 0; }
dd ul { margin: 0; padding-left: 1.1rem; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .92em; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; }
.card { border: 1px solid var(--line); border-left: 6px solid; border-radius: 6px; padding: .6rem 1rem; min-width: 9rem; }
.card .count { display: block; font-size: 1.8rem; font-weight: 700; }
.card .label { color: var(--muted); }
.card.violation { border-left-color: var(--violation); } .card.suspect { border-left-color: var(--suspect); }
.card.compliant { border-left-color: var(--compliant); } .card.exempt { border-left-color: var(--exempt); }
svg { max-width: 100%; height: auto; font-size: 11px; }
.window-zone { fill: #fff3e0; }
.window-line { stroke: var(--ink); stroke-width: 1.5; stroke-dasharray: 5 4; }
.window-label { font-weight: 600; fill: var(--ink); }
.tick { stroke: var(--line); } .tick-label, .axis-label, .row-label { fill: var(--muted); }
.row-label { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 10px; }
.gap-line { stroke-width: 2; opacity: .35; }
.mark { stroke: #fff; stroke-width: 1; }
.mark.violation, .badge.violation { fill: var(--violation); background: var(--violation); }
.mark.suspect, .badge.suspect { fill: var(--suspect); background: var(--suspect); }
.mark.compliant, .badge.compliant { fill: var(--compliant); background: var(--compliant); }
.mark.exempt, .badge.exempt { fill: var(--exempt); background: var(--exempt); }
.mark.ignored, .badge.ignored { fill: var(--ignored); background: var(--ignored); }
.badge.error { background: var(--ink); }
.gap-line.violation { stroke: var(--violation); } .gap-line.suspect { stroke: var(--suspect); }
.gap-line.compliant { stroke: var(--compliant); } .gap-line.exempt { stroke: var(--exempt); }
.gap-line.ignored { stroke: var(--ignored); }
table { border-collapse: collapse; width: 100%; font-size: .88rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f4f6f9; position: sticky; top: 0; }
td.creator, td.reason { word-break: break-word; }
.badge { color: #fff; border-radius: 3px; padding: .05rem .4rem; font-size: .8rem; white-space: nowrap; }
footer { margin: 2.5rem 0 1rem; color: var(--muted); font-size: .85rem; }
@media print { th { position: static; } body { margin: 0; max-width: none; } }
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Action;
    use chrono::TimeZone;

    fn row(user: &str, key: Option<&str>, verdict: Verdict, gap: i64) -> AuditRow {
        let created = Utc.with_ymd_and_hms(2025, 3, 11, 14, 2, 7).single().unwrap();
        AuditRow {
            account: "111122223333".into(),
            user: user.into(),
            access_key_id: key.map(str::to_string),
            verdict,
            reason: format!("reason for {user}"),
            user_created: created,
            key_created: key.map(|_| created + TimeDelta::seconds(gap)),
            gap_seconds: key.map(|_| gap),
            has_password: true,
            creator: None,
            last_used: None,
            action: Action::None,
        }
    }

    fn ctx() -> ReportContext {
        ReportContext {
            source: "audit of the current IAM state".into(),
            accounts: vec![],
            generated_at: Utc.with_ymd_and_hms(2025, 3, 12, 9, 0, 0).single().unwrap(),
            window: TimeDelta::minutes(10),
            exemptions: vec!["user tag keyguard:exempt".into()],
        }
    }

    #[test]
    fn the_report_has_scope_counts_picture_and_every_row() {
        let rows = vec![
            row("kenji", Some("AKIAKENJI"), Verdict::Compliant, 90_000),
            row("maria", Some("AKIAMARIA"), Verdict::Violation, 68),
            row("svc", None, Verdict::Compliant, 0),
        ];
        let page = render(&ctx(), &rows);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("default-src 'none'"), "a CSP that forbids loading anything");
        assert!(page.contains("<code>111122223333</code>"), "the account, from the rows");
        assert!(page.contains("2025-03-12T09:00:00Z"));
        assert!(page.contains("10m after the user"));
        assert!(page.contains("<li>user tag keyguard:exempt</li>"));
        assert_eq!(page.matches("<tr class=\"row ").count(), 3, "every row in the table");
        assert_eq!(page.matches("<circle class=\"mark ").count(), 2, "one dot per key");
        // The violation is listed first.
        assert!(page.find("data-key=\"AKIAMARIA\"").unwrap() < page.find("data-key=\"AKIAKENJI\"").unwrap());
        assert!(page.contains("setup window: 10m"));
        for external in ["http://", "https://", "src=", "<link", "<script", "@import", "url("] {
            let outside = page.replace("http://www.w3.org/2000/svg", "");
            assert!(!outside.contains(external), "{external} in a self-contained report");
        }
    }

    #[test]
    fn everything_user_controlled_is_escaped() {
        let mut evil = row("<script>alert(1)</script>", Some("AKIA\"><b>x"), Verdict::Violation, 5);
        evil.reason = "<img src=x onerror=alert(2)>".into();
        evil.creator = Some("arn:aws:sts::1:assumed-role/r/<svg onload=alert(3)>".into());
        evil.account = "1&2".into();
        let mut c = ctx();
        c.exemptions = vec!["<i>tag</i>".into()];
        c.source = "</title><script>".into();
        let page = render(&c, &[evil]);
        for raw in ["<script>", "<img", "<svg onload", "<b>x", "<i>tag", "</title><script>"] {
            assert!(!page.contains(raw), "{raw} must be escaped");
        }
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("data-key=\"AKIA&quot;&gt;&lt;b&gt;x\""));
        assert!(page.contains("1&amp;2"));
    }

    #[test]
    fn a_large_account_draws_at_most_max_marks_and_says_so() {
        let rows: Vec<AuditRow> = (0..MAX_MARKS + 5)
            .map(|i| row(&format!("u{i}"), Some(&format!("AKIA{i}")), Verdict::Compliant, i as i64 * 100))
            .collect();
        let page = render(&ctx(), &rows);
        assert_eq!(page.matches("<circle class=\"mark ").count(), MAX_MARKS);
        assert!(page.contains("5 more keys are not drawn"));
        assert_eq!(page.matches("<tr class=\"row ").count(), MAX_MARKS + 5);
    }

    #[test]
    fn accounts_not_audited_are_listed_and_counted() {
        let failures = vec![AuditFailure {
            account: "444455556666".into(),
            user: None,
            error: "sts:AssumeRole failed (AccessDenied): <denied>".into(),
        }];
        let page = render_with_failures(&ctx(), &[row("maria", Some("AKIAMARIA"), Verdict::Violation, 68)], &failures);
        assert!(page.contains("<section id=\"not-audited\">"), "{page}");
        assert!(page.contains("data-account=\"444455556666\""));
        assert!(page.contains("(the whole account)"));
        assert!(page.contains("&lt;denied&gt;"), "the error is escaped");
        assert!(page.contains("<code>111122223333</code>, <code>444455556666</code>"), "both accounts in scope");
        assert!(page.contains("<th>Account</th><th>User</th><th>Access key</th>"), "rows span accounts");
        assert!(!render(&ctx(), &[]).contains("not-audited"), "no section without failures");
    }

    #[test]
    fn no_keys_no_picture() {
        let page = render(&ctx(), &[row("svc", None, Verdict::Compliant, 0)]);
        assert!(page.contains("No access keys to draw."));
        assert!(!page.contains("<svg"));
    }
}
