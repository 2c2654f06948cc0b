//! The SNS adapter: [`AlertPublisher`] over `aws-sdk-sns`.

use aws_sdk_sns::types::MessageAttributeValue;
use keyguard_core::Alert;

use crate::error::{AwsError, AwsErrorKind};
use crate::iam::aws_error;
use crate::ports::AlertPublisher;

#[derive(Debug, Clone)]
pub struct SdkSns {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SdkSns {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> SdkSns {
        SdkSns { client, topic_arn: topic_arn.into() }
    }
}

impl AlertPublisher for SdkSns {
    async fn publish(&self, alert: &Alert) -> Result<String, AwsError> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&alert.subject)
            .message(alert.sns_message())
            .message_structure("json");
        for (name, value) in &alert.attributes {
            let attribute =
                MessageAttributeValue::builder().data_type("String").string_value(value).build().map_err(|e| {
                    AwsError { operation: "sns:Publish", kind: AwsErrorKind::Other, message: e.to_string() }
                })?;
            request = request.message_attributes(name, attribute);
        }
        let out = request.send().await.map_err(|e| aws_error("sns:Publish", e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}

/// The chat outlet: each alert, as an Amazon Q Developer in chat applications custom notification, on a topic of
/// its own (the alert topic's subscribers keep their formats). Only decisions the team was alerted about just now
/// are posted; a duplicate delivery posts nothing.
#[derive(Debug, Clone)]
pub struct ChatOutlet {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl ChatOutlet {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> ChatOutlet {
        ChatOutlet { client, topic_arn: topic_arn.into() }
    }
}

impl crate::ports::Outlet for ChatOutlet {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn deliver<'a>(
        &'a self,
        delivery: &'a crate::ports::Delivery,
    ) -> futures::future::BoxFuture<'a, Result<(), AwsError>> {
        Box::pin(async move {
            if !delivery.alerted {
                return Ok(());
            }
            self.client
                .publish()
                .topic_arn(&self.topic_arn)
                .message(keyguard_core::chat::message(&delivery.facts))
                .send()
                .await
                .map_err(|e| aws_error("sns:Publish", e))?;
            Ok(())
        })
    }
}
