//! The checklist: one line per check, pass / fail / warning, with what to do.

use serde::Serialize;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Warn,
}

impl Status {
    pub fn symbol(self) -> &'static str {
        match self {
            Status::Pass => "✔",
            Status::Fail => "✘",
            Status::Warn => "!",
        }
    }
}

/// One line of the checklist. Serialized as `{check, status, detail, fix}` for `--format json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// A stable name: `credentials`, `cloudtrail`, `stack`, `function`, `rule`, `rule-pattern`, `rule-target`,
    /// `subscriptions`, `alarms`, `permissions`, `member <account>`, `live`.
    pub check: String,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about it (none when the check passed).
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(check: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { check: check.into(), status: Status::Pass, detail: detail.into(), fix: None }
    }

    pub fn fail(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { check: check.into(), status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }

    pub fn warn(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { check: check.into(), status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// Every check's outcome, in the order they ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// The check of that name, if it ran.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.check == name)
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// Whether the guardrail is live: no check failed (and, when `strict`, none could only be warned about).
    pub fn healthy(&self, strict: bool) -> bool {
        self.count(Status::Fail) == 0 && (!strict || self.count(Status::Warn) == 0)
    }

    /// The checklist for a person: `✔ name  detail`, with an indented `fix:` under every other line.
    pub fn to_text(&self) -> String {
        let width = self.checks.iter().map(|c| c.check.chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!("{} {:<width$}  {}\n", c.status.symbol(), c.check, c.detail));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("  {:<width$}  fix: {fix}\n", ""));
            }
        }
        let (failed, warned) = (self.count(Status::Fail), self.count(Status::Warn));
        let verdict = if failed > 0 { "the guardrail is NOT live" } else { "the guardrail is live" };
        out.push_str(&format!(
            "\n{} passed, {failed} failed, {warned} warning{}: {verdict}\n",
            self.count(Status::Pass),
            if warned == 1 { "" } else { "s" }
        ));
        out
    }

    /// The checklist for automation: a JSON array of `{check, status, detail, fix}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.checks).unwrap_or_else(|_| "[]".into())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn sample() -> Report {
        Report {
            checks: vec![
                Check::pass("credentials", "account 111122223333"),
                Check::fail("rule", "keyguard-rule is DISABLED", "aws events enable-rule --name keyguard-rule"),
                Check::warn("permissions", "could not simulate", "grant iam:SimulatePrincipalPolicy"),
            ],
        }
    }

    #[test]
    fn text_has_one_line_per_check_and_the_fixes() {
        let text = sample().to_text();
        assert!(text.contains("✔ credentials  account 111122223333\n"), "{text}");
        assert!(text.contains("✘ rule         keyguard-rule is DISABLED\n"), "{text}");
        assert!(text.contains("fix: aws events enable-rule --name keyguard-rule"), "{text}");
        assert!(text.contains("! permissions  could not simulate"), "{text}");
        assert!(text.ends_with("1 passed, 1 failed, 1 warning: the guardrail is NOT live\n"), "{text}");
    }

    #[test]
    fn json_is_an_array_of_check_status_detail_fix() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(
            v[0],
            serde_json::json!({"check": "credentials", "status": "pass", "detail": "account 111122223333", "fix": null})
        );
        assert_eq!(v[1]["status"], "fail");
        assert_eq!(v[2]["status"], "warn");
        assert_eq!(v.as_array().unwrap().len(), 3);
    }

    #[test]
    fn healthy_means_no_failure_and_strict_means_no_warning_either() {
        let mut r = sample();
        assert!(!r.healthy(false));
        r.checks.remove(1);
        assert!(r.healthy(false));
        assert!(!r.healthy(true));
        r.checks.remove(1);
        assert!(r.healthy(true));
    }
}
