//! One Lambda invocation's payload to the right use case: an EventBridge event (an IAM call or the schedule) goes
//! to the guard, an SQS batch from the sweep queue to the sweep.

use serde_json::Value;

use crate::accounts::Accounts;
use crate::error::GuardError;
use crate::ports::{AlertPublisher, Ledger, SweepQueue};
use crate::service::Guard;

impl<A: Accounts, L: Ledger, P: AlertPublisher, Q: SweepQueue> Guard<A, L, P, Q> {
    /// Handles one invocation. The response is the event's report, or, for an SQS batch, Lambda's partial batch
    /// response (`batchItemFailures`).
    pub async fn invoke(&self, payload: &Value) -> Result<Value, GuardError> {
        // Boxed: the use cases' futures are deep, and the Lambda runtime nests them further.
        if let Some(records) = sqs_records(payload) {
            return Ok(Box::pin(self.sweep_batch(records)).await);
        }
        let report = Box::pin(self.handle(payload)).await?;
        serde_json::to_value(&report).map_err(|e| GuardError::Refused {
            event_id: report.event_id.clone(),
            why: format!("the report could not be serialized: {e}"),
        })
    }
}

/// The records of an SQS event (`{"Records": [{"eventSource": "aws:sqs", ...}]}`), if the payload is one.
fn sqs_records(payload: &Value) -> Option<&[Value]> {
    let records = payload.get("Records")?.as_array()?;
    let all_sqs =
        !records.is_empty() && records.iter().all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"));
    all_sqs.then_some(records.as_slice())
}
