//! Exemptions: a user tag (with the configured value), user path prefixes (whole segments), user-name globs,
//! creator ARN globs.
//!
//! An exemption is a way to silence the guard, so each one is narrow: the tag exempts only with its configured value
//! (`keyguard:exempt=false` exempts nothing), and a path prefix matches whole path segments (`/service` exempts
//! `/service/` and `/service/etl/`, never `/service-desk/`).
//!
//! Globs use `globset` (ripgrep's matcher: well kept, and it tells which pattern matched). They match
//! case-insensitively, as IAM names are unique case-insensitively, and `*` also crosses `/` so that
//! `arn:aws:sts::*:assumed-role/provisioner/*` reads as one expects.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::event::Principal;
use crate::rule::Exemption;

#[derive(Debug, Clone)]
pub struct Exemptions {
    tag_key: String,
    tag_value: String,
    paths: Vec<String>,
    users: Globs,
    creators: Globs,
}

/// A glob could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad glob {pattern:?}: {problem}")]
pub struct GlobError {
    pub pattern: String,
    pub problem: String,
}

impl Exemptions {
    /// Exemptions with the tag `tag_key` exempting when its value is the default, `true`.
    pub fn new(
        tag_key: &str,
        paths: &[String],
        user_globs: &[String],
        creator_globs: &[String],
    ) -> Result<Exemptions, GlobError> {
        Ok(Exemptions {
            tag_key: tag_key.to_string(),
            tag_value: crate::config::DEFAULT_EXEMPT_TAG_VALUE.to_string(),
            // IAM paths begin and end with `/`: a prefix is compared as whole segments.
            paths: paths.iter().map(|p| if p.ends_with('/') { p.clone() } else { format!("{p}/") }).collect(),
            users: Globs::new(user_globs)?,
            creators: Globs::new(creator_globs)?,
        })
    }

    /// No exemption but the default tag.
    pub fn none() -> Exemptions {
        Exemptions {
            tag_key: crate::config::DEFAULT_EXEMPT_TAG.to_string(),
            tag_value: crate::config::DEFAULT_EXEMPT_TAG_VALUE.to_string(),
            paths: Vec::new(),
            users: Globs::default(),
            creators: Globs::default(),
        }
    }

    /// The exempting tag value (`KEYGUARD_EXEMPT_TAG_VALUE`); any other value of the tag exempts nothing.
    pub fn with_tag_value(mut self, value: &str) -> Exemptions {
        self.tag_value = value.to_string();
        self
    }

    /// The tag (key, value) that exempts a user, for the re-enable advice in alerts.
    pub fn tag(&self) -> (&str, &str) {
        (&self.tag_key, &self.tag_value)
    }

    /// The first exemption the user matches: tag, then path, then name.
    pub fn for_user(&self, name: &str, path: &str, tags: &[(String, String)]) -> Option<Exemption> {
        // IAM tag keys are case-insensitive (their case is kept, not compared); values are compared exactly.
        if !self.tag_key.is_empty()
            && tags.iter().any(|(k, v)| k.eq_ignore_ascii_case(&self.tag_key) && v.trim() == self.tag_value)
        {
            return Some(Exemption::Tag { key: self.tag_key.clone(), value: self.tag_value.clone() });
        }
        let path = if path.ends_with('/') { path.to_string() } else { format!("{path}/") };
        if let Some(prefix) = self.paths.iter().find(|p| path.starts_with(p.as_str())) {
            return Some(Exemption::Path { prefix: prefix.clone() });
        }
        self.users.first_match(name).map(|pattern| Exemption::UserName { pattern })
    }

    /// A creator matches by its label (the session ARN of a role, the user ARN, the service) or, for an assumed
    /// role, by the role's own ARN, so that `arn:aws:iam::*:role/provisioner` works as one expects.
    pub fn for_creator(&self, creator: &Principal) -> Option<Exemption> {
        std::iter::once(creator.label())
            .chain(creator.issuer_arn.clone())
            .find_map(|arn| self.creators.first_match(&arn))
            .map(|pattern| Exemption::Creator { pattern })
    }
}

#[derive(Debug, Clone, Default)]
struct Globs {
    patterns: Vec<String>,
    set: GlobSet,
}

impl Globs {
    fn new(patterns: &[String]) -> Result<Globs, GlobError> {
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            let glob = GlobBuilder::new(p)
                .case_insensitive(true)
                .literal_separator(false)
                .build()
                .map_err(|e| GlobError { pattern: p.clone(), problem: e.kind().to_string() })?;
            builder.add(glob);
        }
        let set = builder.build().map_err(|e| GlobError { pattern: patterns.join(","), problem: e.to_string() })?;
        Ok(Globs { patterns: patterns.to_vec(), set })
    }

    fn first_match(&self, text: &str) -> Option<String> {
        let index = self.set.matches(text).into_iter().min()?;
        self.patterns.get(index).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn globs_match_case_insensitively_and_across_slashes() {
        let e = Exemptions::new(
            "keyguard:exempt",
            &strings(&["/service/"]),
            &strings(&["svc-*", "break-glass"]),
            &strings(&["arn:aws:sts::*:assumed-role/provisioner/*"]),
        )
        .unwrap();
        assert_eq!(e.for_user("SVC-etl", "/", &[]), Some(Exemption::UserName { pattern: "svc-*".into() }));
        assert_eq!(e.for_user("maria", "/", &[]), None);
        assert_eq!(e.for_user("maria", "/service/etl/", &[]), Some(Exemption::Path { prefix: "/service/".into() }));
        assert_eq!(
            e.for_user("maria", "/", &[("keyguard:exempt".into(), "true".into())]),
            Some(Exemption::Tag { key: "keyguard:exempt".into(), value: "true".into() })
        );
        let session = |role: &str| Principal {
            kind: "AssumedRole".into(),
            arn: Some(format!("arn:aws:sts::111122223333:assumed-role/{role}/run-1")),
            account_id: None,
            user_name: None,
            issuer_arn: Some(format!("arn:aws:iam::111122223333:role/{role}")),
            invoked_by: None,
        };
        assert!(e.for_creator(&session("provisioner")).is_some());
        assert!(e.for_creator(&session("other")).is_none());
        let by_role = Exemptions::new("t", &[], &[], &strings(&["arn:aws:iam::*:role/provisioner"])).unwrap();
        assert!(by_role.for_creator(&session("provisioner")).is_some(), "the role ARN matches too");
        assert!(
            e.for_user("x", "/", &[("KeyGuard:Exempt".into(), "true".into())]).is_some(),
            "tag keys are case-insensitive"
        );
    }

    #[test]
    fn the_tag_exempts_only_with_its_configured_value() {
        let e = Exemptions::new("keyguard:exempt", &[], &[], &[]).unwrap();
        for value in ["false", "", "yes", "TRUE ", "approved"] {
            let tags = [("keyguard:exempt".to_string(), value.to_string())];
            assert_eq!(e.for_user("x", "/", &tags).is_some(), value.trim() == "true", "{value:?}");
        }
        let custom = e.with_tag_value("break-glass");
        assert!(custom.for_user("x", "/", &[("keyguard:exempt".into(), "break-glass".into())]).is_some());
        assert!(custom.for_user("x", "/", &[("keyguard:exempt".into(), "true".into())]).is_none());
        assert_eq!(custom.tag(), ("keyguard:exempt", "break-glass"));
    }

    #[test]
    fn a_path_prefix_matches_whole_segments() {
        let e = Exemptions::new("t", &strings(&["/service"]), &[], &[]).unwrap();
        assert!(e.for_user("x", "/service/", &[]).is_some());
        assert!(e.for_user("x", "/service/etl/", &[]).is_some());
        assert!(e.for_user("x", "/service-desk/", &[]).is_none(), "/service must not exempt /service-desk/");
        assert!(e.for_user("x", "/servicex/", &[]).is_none());
        assert!(e.for_user("x", "/", &[]).is_none());
    }

    #[test]
    fn a_bad_glob_is_an_error_naming_it() {
        let err = Exemptions::new("t", &[], &strings(&["a[b"]), &[]).unwrap_err();
        assert_eq!(err.pattern, "a[b");
    }
}
