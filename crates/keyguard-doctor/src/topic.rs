//! The alert topic has someone listening: at least one confirmed subscription.

use crate::errors;
use crate::report::Check;

pub const ACTIONS: &[&str] = &["sns:ListSubscriptionsByTopic"];

const NAME: &str = "subscriptions";

/// A subscription as ListSubscriptionsByTopic shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub protocol: String,
    /// `PendingConfirmation` until the endpoint confirms (e-mail: the link in SNS's message).
    pub arn: String,
}

impl Subscription {
    pub fn confirmed(&self) -> bool {
        self.arn.starts_with("arn:")
    }
}

pub async fn read(sns: &aws_sdk_sns::Client, topic: &str) -> Result<Vec<Subscription>, String> {
    let mut all = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let out = sns
            .list_subscriptions_by_topic()
            .topic_arn(topic)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| errors::one_line(&e))?;
        all.extend(out.subscriptions().iter().map(|s| Subscription {
            protocol: s.protocol().unwrap_or("?").to_string(),
            arn: s.subscription_arn().unwrap_or_default().to_string(),
        }));
        match out.next_token() {
            Some(t) => next = Some(t.to_string()),
            None => return Ok(all),
        }
    }
}

pub fn check(topic: Option<&str>, subscriptions: Result<Vec<Subscription>, String>) -> Check {
    let Some(topic) = topic else {
        return Check::warn(
            NAME,
            "no alert topic (the function has no KEYGUARD_TOPIC_ARN): nobody is alerted",
            "set the stack's topic (Mode notify or deactivate) and redeploy",
        );
    };
    let subscriptions = match subscriptions {
        Ok(s) => s,
        Err(e) => {
            let fix = if e.contains("NotFound") {
                "redeploy the stack: the function's KEYGUARD_TOPIC_ARN names a topic that does not exist"
            } else {
                "grant the doctor sns:ListSubscriptionsByTopic on the topic"
            };
            return Check::fail(NAME, format!("{topic}: {e}"), fix);
        }
    };
    let (confirmed, pending): (Vec<&Subscription>, Vec<&Subscription>) =
        subscriptions.iter().partition(|s| s.confirmed());
    let protocols = |subs: &[&Subscription]| subs.iter().map(|s| s.protocol.as_str()).collect::<Vec<_>>().join(", ");
    if confirmed.is_empty() {
        let detail = if pending.is_empty() {
            format!("{topic} has no subscription: alerts reach nobody")
        } else {
            format!(
                "{topic}: {} subscription(s) pending confirmation ({}), none confirmed: alerts reach nobody",
                pending.len(),
                protocols(&pending)
            )
        };
        return Check::fail(
            NAME,
            detail,
            format!(
                "confirm the subscription from the e-mail SNS sent, or subscribe: `aws sns subscribe --topic-arn {topic} \
                 --protocol email --notification-endpoint security@example.com`"
            ),
        );
    }
    let mut detail = format!("{topic}: {} confirmed ({})", confirmed.len(), protocols(&confirmed));
    if !pending.is_empty() {
        detail.push_str(&format!(", {} pending confirmation", pending.len()));
    }
    Check::pass(NAME, detail)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::report::Status;

    const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:keyguard";

    fn sub(protocol: &str, arn: &str) -> Subscription {
        Subscription { protocol: protocol.into(), arn: arn.into() }
    }

    #[test]
    fn pending_confirmation_is_not_confirmed() {
        let pending = vec![sub("email", "PendingConfirmation")];
        let c = check(Some(TOPIC), Ok(pending));
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("pending confirmation (email)"), "{c:?}");
        let c = check(Some(TOPIC), Ok(vec![]));
        assert!(c.detail.contains("no subscription"), "{c:?}");
    }

    #[test]
    fn one_confirmed_subscription_is_enough() {
        let subs = vec![sub("email", "PendingConfirmation"), sub("sqs", &format!("{TOPIC}:4f1c"))];
        let c = check(Some(TOPIC), Ok(subs));
        assert_eq!(c.status, Status::Pass);
        assert_eq!(c.detail, format!("{TOPIC}: 1 confirmed (sqs), 1 pending confirmation"));
    }

    #[test]
    fn no_topic_or_a_missing_one() {
        assert_eq!(check(None, Ok(vec![])).status, Status::Warn);
        let c = check(Some(TOPIC), Err("NotFound: Topic does not exist".into()));
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("does not exist"));
    }
}
