//! A CloudTrail trail that delivers IAM's calls to EventBridge in us-east-1: without one the guard never runs.

use aws_sdk_cloudtrail::types::{AdvancedEventSelector, EventSelector, Trail};

use crate::clients::GUARD_REGION;
use crate::errors;
use crate::report::Check;
use crate::selectors::{self, Coverage};

pub const ACTIONS: &[&str] =
    &["cloudtrail:DescribeTrails", "cloudtrail:GetEventSelectors", "cloudtrail:GetTrailStatus"];

const NAME: &str = "cloudtrail";

/// What the doctor learned about one trail.
#[derive(Debug, Clone)]
pub struct TrailFacts {
    pub name: String,
    pub arn: String,
    pub multi_region: bool,
    pub home_region: String,
    pub organization: bool,
    pub global_service_events: bool,
    pub logging: Result<bool, String>,
    pub coverage: Result<Coverage, String>,
}

impl TrailFacts {
    /// Whether the trail records us-east-1, where IAM's events are delivered.
    fn covers_guard_region(&self) -> bool {
        self.multi_region || self.home_region == GUARD_REGION
    }

    /// `Ok(description)` when this trail feeds the guard, `Err(why not)` otherwise.
    fn judge(&self) -> Result<String, String> {
        let who = format!("{}trail {}", if self.organization { "organization " } else { "" }, self.name);
        if !self.covers_guard_region() {
            return Err(format!("{who} records only {} (IAM's events are in {GUARD_REGION})", self.home_region));
        }
        if !self.global_service_events {
            return Err(format!("{who} excludes global service events (IAM)"));
        }
        match &self.logging {
            Ok(true) => {}
            Ok(false) => return Err(format!("{who} is not logging")),
            Err(e) => return Err(format!("{who}: status unreadable ({e})")),
        }
        let how = match &self.coverage {
            Ok(Coverage::All(how)) => how.clone(),
            Ok(Coverage::Partial(why)) => return Err(format!("{who}: {why}")),
            Ok(Coverage::None(why)) => return Err(format!("{who} logs, but not IAM's write events: {why}")),
            Err(e) => return Err(format!("{who}: event selectors unreadable ({e})")),
        };
        let scope = if self.multi_region { "multi-region".to_string() } else { self.home_region.clone() };
        Ok(format!("{who}: logging, {scope}, {how}"))
    }
}

/// Reads every trail that applies to us-east-1 (shadow and organization trails included) and judges them.
pub async fn check(cloudtrail: &aws_sdk_cloudtrail::Client) -> Check {
    let trails = match cloudtrail.describe_trails().include_shadow_trails(true).send().await {
        Ok(out) => out.trail_list().to_vec(),
        Err(e) => {
            return Check::fail(
                NAME,
                format!("cannot list trails: {}", errors::one_line(&e)),
                "grant the doctor cloudtrail:DescribeTrails (see `keyguard permissions --doctor`)",
            );
        }
    };
    let mut facts = Vec::new();
    for trail in &trails {
        facts.push(read(cloudtrail, trail).await);
    }
    judge(&facts)
}

async fn read(cloudtrail: &aws_sdk_cloudtrail::Client, trail: &Trail) -> TrailFacts {
    // Shadow and organization trails are addressed by ARN.
    let arn = trail.trail_arn().or(trail.name()).unwrap_or_default().to_string();
    let mut facts = TrailFacts {
        name: trail.name().unwrap_or_default().to_string(),
        arn: arn.clone(),
        multi_region: trail.is_multi_region_trail().unwrap_or(false),
        home_region: trail.home_region().unwrap_or_default().to_string(),
        organization: trail.is_organization_trail().unwrap_or(false),
        global_service_events: trail.include_global_service_events().unwrap_or(true),
        logging: Err("not read".into()),
        coverage: Err("not read".into()),
    };
    if !facts.covers_guard_region() {
        return facts;
    }
    facts.logging = cloudtrail
        .get_trail_status()
        .name(&arn)
        .send()
        .await
        .map(|s| s.is_logging().unwrap_or(false))
        .map_err(|e| errors::one_line(&e));
    facts.coverage = cloudtrail
        .get_event_selectors()
        .trail_name(&arn)
        .send()
        .await
        .map(|s| selectors::coverage(&classic(s.event_selectors()), &advanced(s.advanced_event_selectors())))
        .map_err(|e| errors::one_line(&e));
    facts
}

fn classic(selectors: &[EventSelector]) -> Vec<selectors::Classic> {
    selectors
        .iter()
        .map(|s| selectors::Classic {
            read_write_type: s.read_write_type().map(|t| t.as_str().to_string()),
            include_management_events: s.include_management_events(),
            exclude_management_event_sources: s.exclude_management_event_sources().to_vec(),
        })
        .collect()
}

fn advanced(selectors: &[AdvancedEventSelector]) -> Vec<selectors::Advanced> {
    selectors
        .iter()
        .map(|s| {
            s.field_selectors()
                .iter()
                .map(|f| selectors::Field {
                    field: f.field().to_string(),
                    equals: f.equals().to_vec(),
                    starts_with: f.starts_with().to_vec(),
                    ends_with: f.ends_with().to_vec(),
                    not_equals: f.not_equals().to_vec(),
                    not_starts_with: f.not_starts_with().to_vec(),
                    not_ends_with: f.not_ends_with().to_vec(),
                })
                .collect()
        })
        .collect()
}

/// Passes when at least one trail feeds the guard; otherwise says what is wrong with each.
pub fn judge(trails: &[TrailFacts]) -> Check {
    if trails.is_empty() {
        return Check::fail(
            NAME,
            "no CloudTrail trail: IAM calls never reach EventBridge, so the guard never runs",
            "create a multi-region trail that logs management events: `aws cloudtrail create-trail --name \
             management-events --s3-bucket-name BUCKET --is-multi-region-trail` then `aws cloudtrail start-logging \
             --name management-events` (or deploy the stack's optional trail)",
        );
    }
    let mut problems = Vec::new();
    for t in trails {
        match t.judge() {
            Ok(description) => return Check::pass(NAME, description),
            Err(why) => problems.push((t, why)),
        }
    }
    let fix = match problems.first() {
        Some((t, why)) if why.contains("not logging") => format!("aws cloudtrail start-logging --name {}", t.arn),
        Some((t, why)) if why.contains("not IAM's write events") || why.contains("narrow") => format!(
            "select management write events on {}: ReadWriteType All (or WriteOnly) with IncludeManagementEvents \
             true, or an advanced selector eventCategory = Management without readOnly = true",
            t.arn
        ),
        Some((t, why)) if why.contains("global service events") => format!(
            "aws cloudtrail update-trail --name {} --include-global-service-events (or make it multi-region)",
            t.arn
        ),
        _ => "create or extend a trail so that it logs management events in us-east-1 (a multi-region trail does)"
            .to_string(),
    };
    let detail = problems.into_iter().map(|(_, why)| why).collect::<Vec<_>>().join("; ");
    Check::fail(NAME, format!("no trail feeds the guard: {detail}"), fix)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::report::Status;

    fn trail(name: &str) -> TrailFacts {
        TrailFacts {
            name: name.into(),
            arn: format!("arn:aws:cloudtrail:us-east-1:111122223333:trail/{name}"),
            multi_region: true,
            home_region: "us-east-1".into(),
            organization: false,
            global_service_events: true,
            logging: Ok(true),
            coverage: Ok(Coverage::All("no custom selectors".into())),
        }
    }

    #[test]
    fn a_logging_trail_with_management_events_passes() {
        let c = judge(&[trail("main")]);
        assert_eq!(c.status, Status::Pass, "{c:?}");
        assert!(c.detail.contains("trail main: logging, multi-region"), "{c:?}");
    }

    #[test]
    fn each_flaw_fails_with_its_reason_and_fix() {
        assert_eq!(judge(&[]).status, Status::Fail);
        let stopped = TrailFacts { logging: Ok(false), ..trail("main") };
        let c = judge(&[stopped]);
        assert!(c.detail.contains("not logging") && c.fix.as_deref().unwrap().contains("start-logging"), "{c:?}");
        let read_only = TrailFacts { coverage: Ok(Coverage::None("ReadWriteType ReadOnly".into())), ..trail("main") };
        let c = judge(&[read_only]);
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("ReadOnly"), "{c:?}");
        let elsewhere = TrailFacts { multi_region: false, home_region: "eu-west-1".into(), ..trail("eu") };
        assert!(judge(&[elsewhere]).detail.contains("records only eu-west-1"));
        let no_global = TrailFacts { multi_region: false, global_service_events: false, ..trail("local") };
        assert!(judge(&[no_global]).detail.contains("global service events"));
    }

    #[test]
    fn one_good_trail_is_enough() {
        let stopped = TrailFacts { logging: Ok(false), ..trail("old") };
        let org = TrailFacts { organization: true, multi_region: false, ..trail("org") };
        let c = judge(&[stopped, org]);
        assert_eq!(c.status, Status::Pass);
        assert!(c.detail.starts_with("organization trail org: logging, us-east-1"), "{c:?}");
    }
}
