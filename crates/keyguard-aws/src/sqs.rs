//! The SQS adapter: [`SweepQueue`] over `aws-sdk-sqs` (`SendMessageBatch`, ten messages a call).

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::error::AwsError;
use crate::iam::aws_error;
use crate::ports::SweepQueue;

#[derive(Debug, Clone)]
pub struct SdkSweepQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SdkSweepQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> SdkSweepQueue {
        SdkSweepQueue { client, url: url.into() }
    }
}

impl SweepQueue for SdkSweepQueue {
    async fn send(&self, bodies: &[String]) -> Result<(), AwsError> {
        for (batch, chunk) in bodies.chunks(10).enumerate() {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, body) in chunk.iter().enumerate() {
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(format!("m{batch}-{i}"))
                    .message_body(body)
                    .build()
                    .map_err(|e| AwsError::new("sqs:SendMessage", None, e.to_string()))?;
                entries.push(entry);
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| aws_error("sqs:SendMessage", e))?;
            // A partly failed batch fails the schedule's event, which EventBridge retries: an account queued twice
            // is swept twice (idempotent), never skipped.
            if let Some(failed) = out.failed().first() {
                return Err(AwsError::new(
                    "sqs:SendMessage",
                    Some(failed.code()),
                    format!(
                        "{} of {} messages not queued: {}",
                        out.failed().len(),
                        chunk.len(),
                        failed.message().unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(())
    }
}
