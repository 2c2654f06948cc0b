//! Whether a trail's event selectors let IAM's write events through (pure, so every case is a unit test).
//!
//! A trail without custom selectors logs every management event: that is AWS's default for a new trail (moto
//! shows such a trail with empty selectors, AWS with one `ReadWriteType: All` selector; both mean the same).

use crate::rule::EXPECTED_EVENT_NAMES;

/// A classic event selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classic {
    /// `ReadOnly`, `WriteOnly` or `All` (AWS's default when absent).
    pub read_write_type: Option<String>,
    /// AWS's default when absent is true.
    pub include_management_events: Option<bool>,
    pub exclude_management_event_sources: Vec<String>,
}

/// One field selector of an advanced event selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Field {
    pub field: String,
    pub equals: Vec<String>,
    pub starts_with: Vec<String>,
    pub ends_with: Vec<String>,
    pub not_equals: Vec<String>,
    pub not_starts_with: Vec<String>,
    pub not_ends_with: Vec<String>,
}

/// An advanced event selector: an event is logged when every field selector matches it.
pub type Advanced = Vec<Field>;

/// What the selectors do to IAM's write events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    /// Every IAM write event the guard needs is logged; says why.
    All(String),
    /// Some may be filtered out by conditions the doctor cannot evaluate (e.g. on `userIdentity.arn`).
    Partial(String),
    /// They are not logged; says why.
    None(String),
}

/// Judges a trail's selectors (a trail has either classic or advanced ones).
pub fn coverage(classic: &[Classic], advanced: &[Advanced]) -> Coverage {
    if !advanced.is_empty() {
        return coverage_advanced(advanced);
    }
    if classic.is_empty() {
        return Coverage::All("no custom selectors: all management events (AWS's default)".into());
    }
    let mut reasons = Vec::new();
    for s in classic {
        let rw = s.read_write_type.as_deref().unwrap_or("All");
        if s.include_management_events == Some(false) {
            reasons.push("management events excluded".to_string());
        } else if rw == "ReadOnly" {
            reasons.push("ReadWriteType ReadOnly: write calls such as CreateAccessKey are not logged".to_string());
        } else if s.exclude_management_event_sources.iter().any(|src| src == "iam.amazonaws.com") {
            reasons.push("iam.amazonaws.com excluded from management events".to_string());
        } else {
            return Coverage::All(format!("management write events selected (ReadWriteType {rw})"));
        }
    }
    reasons.dedup();
    Coverage::None(reasons.join("; "))
}

/// The value an IAM write call has in each field advanced selectors can test; `None` for a field the doctor
/// cannot know in advance (`userIdentity.arn`, `errorCode`, ...).
fn iam_write_event_field(field: &str, event_name: &str) -> Option<String> {
    match field {
        "eventCategory" => Some("Management".into()),
        "readOnly" => Some("false".into()),
        "eventSource" => Some("iam.amazonaws.com".into()),
        "eventName" => Some(event_name.into()),
        "eventType" => Some("AwsApiCall".into()),
        _ => None,
    }
}

fn field_matches(f: &Field, value: &str) -> bool {
    (f.equals.is_empty() || f.equals.iter().any(|v| v == value))
        && (f.starts_with.is_empty() || f.starts_with.iter().any(|v| value.starts_with(v.as_str())))
        && (f.ends_with.is_empty() || f.ends_with.iter().any(|v| value.ends_with(v.as_str())))
        && !f.not_equals.iter().any(|v| v == value)
        && !f.not_starts_with.iter().any(|v| value.starts_with(v.as_str()))
        && !f.not_ends_with.iter().any(|v| value.ends_with(v.as_str()))
}

enum Match {
    Yes,
    /// Matches on every field the doctor knows; these other fields may still filter.
    Unknown(Vec<String>),
    No,
}

fn selector_matches(selector: &Advanced, event_name: &str) -> Match {
    let mut unknown = Vec::new();
    for f in selector {
        match iam_write_event_field(&f.field, event_name) {
            Some(value) if !field_matches(f, &value) => return Match::No,
            Some(_) => {}
            None => unknown.push(f.field.clone()),
        }
    }
    if unknown.is_empty() { Match::Yes } else { Match::Unknown(unknown) }
}

fn coverage_advanced(selectors: &[Advanced]) -> Coverage {
    let mut missing = Vec::new();
    let mut narrowed: Vec<String> = Vec::new();
    for name in EXPECTED_EVENT_NAMES {
        let outcomes: Vec<Match> = selectors.iter().map(|s| selector_matches(s, name)).collect();
        if outcomes.iter().any(|m| matches!(m, Match::Yes)) {
            continue;
        }
        let mut fields: Vec<String> = outcomes
            .into_iter()
            .filter_map(|m| if let Match::Unknown(f) = m { Some(f) } else { None })
            .flatten()
            .collect();
        if fields.is_empty() {
            missing.push(*name);
        } else {
            narrowed.append(&mut fields);
        }
    }
    if !missing.is_empty() {
        return Coverage::None(format!("advanced event selectors exclude IAM's {}", missing.join(", ")));
    }
    if !narrowed.is_empty() {
        narrowed.sort();
        narrowed.dedup();
        return Coverage::Partial(format!(
            "advanced event selectors narrow IAM write events by {}: some may not be logged",
            narrowed.join(", ")
        ));
    }
    Coverage::All("advanced event selectors include IAM's management write events".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn classic(rw: Option<&str>, management: Option<bool>, exclude: &[&str]) -> Classic {
        Classic {
            read_write_type: rw.map(str::to_string),
            include_management_events: management,
            exclude_management_event_sources: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn field(name: &str, equals: &[&str]) -> Field {
        Field { field: name.into(), equals: equals.iter().map(|s| s.to_string()).collect(), ..Field::default() }
    }

    fn is_all(c: &Coverage) -> bool {
        matches!(c, Coverage::All(_))
    }

    #[test]
    fn empty_selectors_are_aws_default_all_management_events() {
        assert!(is_all(&coverage(&[], &[])));
    }

    #[test]
    fn classic_selectors() {
        assert!(is_all(&coverage(&[classic(Some("All"), Some(true), &[])], &[])));
        assert!(is_all(&coverage(&[classic(Some("WriteOnly"), None, &[])], &[])));
        assert!(is_all(&coverage(&[classic(None, None, &["kms.amazonaws.com"])], &[])));
        let read_only = coverage(&[classic(Some("ReadOnly"), Some(true), &[])], &[]);
        assert!(matches!(&read_only, Coverage::None(r) if r.contains("ReadOnly")), "{read_only:?}");
        let no_management = coverage(&[classic(Some("All"), Some(false), &[])], &[]);
        assert!(matches!(&no_management, Coverage::None(r) if r.contains("management events excluded")));
        let no_iam = coverage(&[classic(Some("All"), Some(true), &["iam.amazonaws.com"])], &[]);
        assert!(matches!(&no_iam, Coverage::None(r) if r.contains("iam.amazonaws.com")));
        // One good selector among bad ones is enough.
        assert!(is_all(&coverage(&[classic(Some("ReadOnly"), None, &[]), classic(Some("All"), None, &[])], &[])));
    }

    #[test]
    fn advanced_selectors() {
        let all_management = vec![field("eventCategory", &["Management"])];
        assert!(is_all(&coverage(&[], &[all_management])));
        let write_only = vec![field("eventCategory", &["Management"]), field("readOnly", &["false"])];
        assert!(is_all(&coverage(&[], &[write_only])));

        let read_only = vec![field("eventCategory", &["Management"]), field("readOnly", &["true"])];
        let c = coverage(&[], &[read_only]);
        assert!(matches!(&c, Coverage::None(r) if r.contains("CreateAccessKey")), "{c:?}");

        let not_iam = vec![
            field("eventCategory", &["Management"]),
            Field { field: "eventSource".into(), not_equals: vec!["iam.amazonaws.com".into()], ..Field::default() },
        ];
        assert!(matches!(coverage(&[], &[not_iam]), Coverage::None(_)));

        let only_data = vec![field("eventCategory", &["Data"]), field("resources.type", &["AWS::S3::Object"])];
        assert!(matches!(coverage(&[], &[only_data]), Coverage::None(_)));

        // Only some IAM calls: the ones left out are named.
        let some =
            vec![field("eventCategory", &["Management"]), field("eventName", &["CreateUser", "CreateAccessKey"])];
        let c = coverage(&[], &[some]);
        assert!(
            matches!(&c, Coverage::None(r) if r.contains("CreateLoginProfile") && !r.contains("CreateUser")),
            "{c:?}"
        );

        // A prefix that covers every name the guard needs.
        let prefix = vec![
            field("eventCategory", &["Management"]),
            Field {
                field: "eventName".into(),
                starts_with: vec!["Create".into(), "Update".into()],
                ..Field::default()
            },
        ];
        assert!(is_all(&coverage(&[], &[prefix])));

        // Conditions on fields the doctor cannot know: a warning, not a pass.
        let by_caller = vec![
            field("eventCategory", &["Management"]),
            Field {
                field: "userIdentity.arn".into(),
                not_starts_with: vec!["arn:aws:sts::1:assumed-role/x".into()],
                ..Field::default()
            },
        ];
        assert!(matches!(coverage(&[], &[by_caller]), Coverage::Partial(r) if r.contains("userIdentity.arn")));
    }
}
