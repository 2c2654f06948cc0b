//! The ledger adapter: [`Ledger`] over one DynamoDB table (`aws-sdk-dynamodb`).
//!
//! One item per key, `pk = "<account>#<access key id>"`: the account is part of the key's identity (key ids are
//! unique, but an organization's ledger must never mix accounts). Attributes: `user`, `creator` (the principal as
//! JSON), `created`, `deactivation_started`, `deactivated`, `owed` (an alert still to publish, as JSON), `sent` (a
//! string set of the alert kinds already published) and `expires_at` (the table's TTL attribute: an item lives
//! [`RETENTION_DAYS`] after its last write). Every write is one `UpdateItem`: an idempotent upsert, so a retried
//! event writes the same thing again, and reads are strongly consistent so that a retry sees its own writes.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use keyguard_core::Principal;

use crate::error::{AwsError, AwsErrorKind};
use crate::iam::aws_error;
use crate::ports::{KeyRecord, Ledger, OwedAlert};

/// How long the ledger remembers a key after its last write: long enough for a password added months after the key,
/// and for watching a deactivated key being re-enabled.
pub const RETENTION_DAYS: i64 = 400;
/// The TTL attribute (the template enables TTL on it).
pub const TTL_ATTRIBUTE: &str = "expires_at";

#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> DynamoLedger {
        DynamoLedger { client, table: table.into() }
    }

    /// Creates the table (on-demand, TTL on [`TTL_ATTRIBUTE`]) for local use and tests (`keyguard ledger create`);
    /// the template creates the deployed one. An existing table is fine.
    pub async fn create_table(&self) -> Result<(), AwsError> {
        let key = |name: &str| -> Result<(AttributeDefinition, KeySchemaElement), AwsError> {
            let definition = AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| AwsError::new("dynamodb:CreateTable", None, e.to_string()))?;
            let schema = KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| AwsError::new("dynamodb:CreateTable", None, e.to_string()))?;
            Ok((definition, schema))
        };
        let (definition, schema) = key("pk")?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(definition)
            .key_schema(schema)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created.map_err(|e| aws_error("dynamodb:CreateTable", e)) {
            Ok(_) => {}
            Err(e) if e.message.contains("ResourceInUse") => return Ok(()),
            Err(e) => return Err(e),
        }
        let ttl = TimeToLiveSpecification::builder()
            .attribute_name(TTL_ATTRIBUTE)
            .enabled(true)
            .build()
            .map_err(|e| AwsError::new("dynamodb:UpdateTimeToLive", None, e.to_string()))?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(|e| aws_error("dynamodb:UpdateTimeToLive", e))?;
        Ok(())
    }

    fn update(&self, account: &str, access_key_id: &str, user: &str, at: DateTime<Utc>) -> Update {
        let mut values = HashMap::new();
        values.insert(":user".to_string(), s(user));
        values.insert(
            ":expires".to_string(),
            AttributeValue::N((at + TimeDelta::days(RETENTION_DAYS)).timestamp().to_string()),
        );
        Update {
            request: self.client.update_item().table_name(&self.table).key("pk", s(&pk(account, access_key_id))),
            set: vec!["#user = :user".into(), format!("{TTL_ATTRIBUTE} = :expires")],
            tail: String::new(),
            values,
        }
    }
}

/// One `UpdateItem` being put together.
struct Update {
    request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    set: Vec<String>,
    tail: String,
    values: HashMap<String, AttributeValue>,
}

impl Update {
    fn set(mut self, clause: &str, name: &str, value: AttributeValue) -> Update {
        self.set.push(clause.to_string());
        self.values.insert(name.to_string(), value);
        self
    }

    async fn send(self) -> Result<(), AwsError> {
        let expression = format!("SET {}{}", self.set.join(", "), self.tail);
        self.request
            .update_expression(expression)
            .expression_attribute_names("#user", "user")
            .set_expression_attribute_values(Some(self.values))
            .send()
            .await
            .map_err(|e| aws_error("dynamodb:UpdateItem", e))?;
        Ok(())
    }
}

fn pk(account: &str, access_key_id: &str) -> String {
    format!("{account}#{access_key_id}")
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_string())
}

fn stamp(t: DateTime<Utc>) -> AttributeValue {
    s(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn json<T: serde::Serialize>(operation: &'static str, value: &T) -> Result<AttributeValue, AwsError> {
    serde_json::to_string(value).map(AttributeValue::S).map_err(|e| AwsError {
        operation,
        kind: AwsErrorKind::Other,
        message: e.to_string(),
    })
}

impl Ledger for DynamoLedger {
    async fn key(&self, account: &str, access_key_id: &str) -> Result<Option<KeyRecord>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&pk(account, access_key_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_error("dynamodb:GetItem", e))?;
        let Some(item) = out.item() else { return Ok(None) };
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let time =
            |name: &str| text(name).and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc));
        // A record this version cannot read is treated as partly unknown, never as an error that blocks the guard.
        Ok(Some(KeyRecord {
            user: text("user").unwrap_or_default(),
            creator: text("creator").and_then(|c| serde_json::from_str::<Principal>(&c).ok()),
            created: time("created"),
            deactivation_started: time("deactivation_started"),
            deactivated: time("deactivated"),
            owed_alert: text("owed").and_then(|o| serde_json::from_str::<OwedAlert>(&o).ok()),
            sent: item.get("sent").and_then(|v| v.as_ss().ok()).cloned().unwrap_or_default(),
        }))
    }

    async fn record_creator(
        &self,
        account: &str,
        access_key_id: &str,
        user: &str,
        creator: &Principal,
        created: DateTime<Utc>,
    ) -> Result<(), AwsError> {
        self.update(account, access_key_id, user, Utc::now())
            .set("creator = :creator", ":creator", json("dynamodb:UpdateItem", creator)?)
            .set("created = :created", ":created", stamp(created))
            .send()
            .await
    }

    async fn owe(
        &self,
        account: &str,
        access_key_id: &str,
        user: &str,
        owed: &OwedAlert,
        deactivating: bool,
        at: DateTime<Utc>,
    ) -> Result<(), AwsError> {
        let update = self.update(account, access_key_id, user, at).set(
            "owed = :owed",
            ":owed",
            json("dynamodb:UpdateItem", owed)?,
        );
        let update = if deactivating {
            update.set("deactivation_started = if_not_exists(deactivation_started, :started)", ":started", stamp(at))
        } else {
            update
        };
        update.send().await
    }

    async fn sent(
        &self,
        account: &str,
        access_key_id: &str,
        user: &str,
        kind: &str,
        deactivated: bool,
        at: DateTime<Utc>,
    ) -> Result<(), AwsError> {
        let mut update = self.update(account, access_key_id, user, at);
        if deactivated {
            update = update.set("deactivated = if_not_exists(deactivated, :done)", ":done", stamp(at));
        }
        update.values.insert(":kind".to_string(), AttributeValue::Ss(vec![kind.to_string()]));
        update.tail = " REMOVE owed ADD sent :kind".to_string();
        update.send().await
    }
}
