//! The roles can do what the guard does, proven with IAM's policy simulator (`iam:SimulatePrincipalPolicy`)
//! against exactly the list of actions the guard's code calls.

use std::collections::BTreeMap;

use crate::clients::Clients;
use crate::errors;
use crate::report::Check;

pub const ACTIONS: &[&str] = &["iam:SimulatePrincipalPolicy", "sts:AssumeRole"];

/// A user name no account has: IAM resource ARNs need one, and a policy scoped to `user/*` covers it.
const PROBE_USER: &str = "keyguard-doctor-probe";

/// The actions the function's role must allow: the guard's own list, taken from one place.
pub fn guard_actions() -> Vec<&'static str> {
    keyguard_aws::required_actions()
}

/// A member account's role acts for the guard in IAM: the guard's IAM actions, plus reading the account's alias.
pub fn member_actions() -> Vec<&'static str> {
    let mut actions: Vec<&'static str> = guard_actions().into_iter().filter(|a| a.starts_with("iam:")).collect();
    actions.push("iam:ListAccountAliases");
    actions.sort_unstable();
    actions.dedup();
    actions
}

/// The resource the simulation asks about for an action. The simulator matches resources literally (`*` does
/// not match a policy scoped to `user/*` or to one topic), so each action is asked about a resource of its kind.
pub fn resource_for(action: &str, account: &str, topic: Option<&str>) -> String {
    match action {
        "iam:GetUser"
        | "iam:GetLoginProfile"
        | "iam:ListAccessKeys"
        | "iam:UpdateAccessKey"
        | "iam:GetAccessKeyLastUsed" => format!("arn:aws:iam::{account}:user/{PROBE_USER}"),
        "sns:Publish" => topic.map(str::to_string).unwrap_or_else(|| "*".into()),
        a if a.starts_with("sts:AssumeRole=") => a.trim_start_matches("sts:AssumeRole=").to_string(),
        _ => "*".into(),
    }
}

/// One simulated action: its name and IAM's decision (`allowed`, `implicitDeny`, `explicitDeny`).
pub type Decision = (String, String);

/// Simulates `actions` for `principal` (a role ARN), one call per kind of resource.
/// `sts:AssumeRole=<role arn>` asks about assuming that role.
pub async fn simulate(
    iam: &aws_sdk_iam::Client,
    principal: &str,
    actions: &[String],
    account: &str,
    topic: Option<&str>,
) -> Result<Vec<Decision>, String> {
    let mut by_resource: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in actions {
        let name = a.split('=').next().unwrap_or(a).to_string();
        by_resource.entry(resource_for(a, account, topic)).or_default().push(name);
    }
    let mut decisions = Vec::new();
    for (resource, names) in by_resource {
        let mut marker: Option<String> = None;
        loop {
            let out = iam
                .simulate_principal_policy()
                .policy_source_arn(principal)
                .set_action_names(Some(names.clone()))
                .resource_arns(&resource)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| errors::one_line(&e))?;
            decisions.extend(
                out.evaluation_results()
                    .iter()
                    .map(|r| (r.eval_action_name().to_string(), r.eval_decision().as_str().to_string())),
            );
            match (out.is_truncated(), out.marker()) {
                (true, Some(m)) => marker = Some(m.to_string()),
                _ => break,
            }
        }
    }
    Ok(decisions)
}

/// Judges a simulation: every action allowed, or the denied ones named.
pub fn judge(
    name: &str,
    principal: &str,
    asked: &[String],
    outcome: Result<Vec<Decision>, String>,
    fix_denied: &str,
) -> Check {
    let decisions = match outcome {
        Ok(d) => d,
        Err(e) => {
            let fix = if e.contains("AccessDenied") {
                "grant the doctor iam:SimulatePrincipalPolicy, or compare the role's policy with `keyguard permissions`"
            } else {
                "compare the role's policy with `keyguard permissions` (IAM's policy simulator did not answer)"
            };
            return Check::warn(
                name,
                format!("could not simulate {principal}'s policies ({e}): its permissions are unproven"),
                fix,
            );
        }
    };
    let mut denied: Vec<String> =
        decisions.iter().filter(|(_, d)| d != "allowed").map(|(a, d)| format!("{a} ({d})")).collect();
    let answered: Vec<&str> = decisions.iter().map(|(a, _)| a.as_str()).collect();
    denied.extend(
        asked
            .iter()
            .map(|a| a.split('=').next().unwrap_or(a))
            .filter(|a| !answered.contains(a))
            .map(|a| format!("{a} (not evaluated)")),
    );
    denied.sort();
    denied.dedup();
    if denied.is_empty() {
        Check::pass(name, format!("{principal} may call all {} actions the guard needs", asked.len()))
    } else {
        Check::fail(name, format!("{principal} is denied {}", denied.join(", ")), fix_denied)
    }
}

/// The function's role against the guard's list (and, in an organization, `sts:AssumeRole` on each member role).
pub async fn check_function_role(
    iam: &aws_sdk_iam::Client,
    role: &str,
    account: &str,
    topic: Option<&str>,
    member_roles: &[String],
) -> Check {
    let mut asked: Vec<String> = guard_actions().iter().map(|a| a.to_string()).collect();
    asked.extend(member_roles.iter().map(|r| format!("sts:AssumeRole={r}")));
    let outcome = simulate(iam, role, &asked, account, topic).await;
    judge(
        "permissions",
        role,
        &asked,
        outcome,
        "grant them to the function's role (template.yaml's GuardPolicy; `keyguard permissions` lists them), then `make deploy`",
    )
}

/// The member role's ARN in an account. `role` is a name (`keyguard-member`, optionally with a path) or an ARN.
pub fn member_role_arn(account: &str, role: &str) -> String {
    if role.starts_with("arn:") {
        let parts: Vec<&str> = role.splitn(6, ':').collect();
        if parts.len() == 6 {
            return format!("{}:{}:{}:{}:{account}:{}", parts[0], parts[1], parts[2], parts[3], parts[5]);
        }
    }
    format!("arn:aws:iam::{account}:role/{}", role.trim_start_matches('/'))
}

/// Assumes the member role in `account` and simulates its own policies from inside that account.
pub async fn check_member(clients: &Clients, account: &str, role: &str) -> Check {
    let name = format!("member {account}");
    let arn = member_role_arn(account, role);
    let assumed = clients.sts.assume_role().role_arn(&arn).role_session_name("keyguard-doctor").send().await;
    let credentials = match assumed {
        Ok(out) => match out.credentials() {
            Some(c) => aws_sdk_iam::config::Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_string()),
                None,
                "keyguard-doctor-member",
            ),
            None => {
                return Check::fail(name, format!("AssumeRole {arn} returned no credentials"), "run the doctor again");
            }
        },
        Err(e) => {
            let text = errors::one_line(&e);
            let fix = "deploy the member stack (infra/org/member.yaml) to this account, and run the doctor with \
                       credentials the member role trusts";
            return if errors::is_access_denied(errors::code(&e)) {
                Check::warn(name, format!("cannot assume {arn} from here ({text}): the account is unproven"), fix)
            } else {
                Check::fail(name, format!("cannot assume {arn}: {text}"), fix)
            };
        }
    };
    let member_iam = clients.iam_with(credentials);
    let asked: Vec<String> = member_actions().iter().map(|a| a.to_string()).collect();
    let outcome = simulate(&member_iam, &arn, &asked, account, None).await;
    judge(&name, &arn, &asked, outcome, "grant them to the member role (infra/org/member.yaml) and update the StackSet")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::report::Status;

    #[test]
    fn every_action_is_asked_about_a_resource_of_its_kind() {
        let topic = "arn:aws:sns:us-east-1:111122223333:keyguard";
        assert_eq!(
            resource_for("iam:UpdateAccessKey", "111122223333", Some(topic)),
            "arn:aws:iam::111122223333:user/keyguard-doctor-probe"
        );
        assert_eq!(resource_for("sns:Publish", "111122223333", Some(topic)), topic);
        assert_eq!(resource_for("iam:ListUsers", "111122223333", Some(topic)), "*");
        assert_eq!(
            resource_for("sts:AssumeRole=arn:aws:iam::222233334444:role/m", "111122223333", None),
            "arn:aws:iam::222233334444:role/m"
        );
        // Every action of the guard's list gets a resource that its template statement covers.
        for a in guard_actions() {
            let r = resource_for(a, "111122223333", Some(topic));
            assert!(r == "*" || r.starts_with("arn:aws:"), "{a} -> {r}");
        }
    }

    #[test]
    fn member_actions_are_the_guard_s_iam_actions_and_the_alias() {
        let m = member_actions();
        assert!(m.contains(&"iam:ListAccountAliases"));
        assert!(m.contains(&"iam:UpdateAccessKey"));
        assert!(m.iter().all(|a| a.starts_with("iam:")));
        assert!(!m.contains(&"sns:Publish"));
    }

    #[test]
    fn member_role_names_and_arns() {
        assert_eq!(
            member_role_arn("222233334444", "keyguard-member"),
            "arn:aws:iam::222233334444:role/keyguard-member"
        );
        assert_eq!(
            member_role_arn("222233334444", "/guard/keyguard-member"),
            "arn:aws:iam::222233334444:role/guard/keyguard-member"
        );
        assert_eq!(
            member_role_arn("222233334444", "arn:aws:iam::111122223333:role/keyguard-member"),
            "arn:aws:iam::222233334444:role/keyguard-member"
        );
    }

    #[test]
    fn judging_a_simulation() {
        let asked: Vec<String> = vec!["iam:GetUser".into(), "sns:Publish".into()];
        let allowed = vec![("iam:GetUser".into(), "allowed".into()), ("sns:Publish".into(), "allowed".into())];
        assert_eq!(judge("permissions", "r", &asked, Ok(allowed), "fix").status, Status::Pass);
        let denied = vec![("iam:GetUser".into(), "allowed".into()), ("sns:Publish".into(), "implicitDeny".into())];
        let c = judge("permissions", "r", &asked, Ok(denied), "fix");
        assert_eq!((c.status, c.detail.as_str()), (Status::Fail, "r is denied sns:Publish (implicitDeny)"));
        let partial = vec![("iam:GetUser".into(), "allowed".into())];
        assert!(judge("permissions", "r", &asked, Ok(partial), "fix").detail.contains("sns:Publish (not evaluated)"));
        assert_eq!(judge("permissions", "r", &asked, Err("500".into()), "fix").status, Status::Warn);
    }
}
