//! The CloudTrail adapter: [`CreatorLookup`] over `LookupEvents` (event history, last 90 days, management events).

use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use keyguard_core::{Principal, parse_record};

use crate::error::AwsError;
use crate::iam::aws_error;
use crate::ports::CreatorLookup;

#[derive(Debug, Clone)]
pub struct SdkCloudTrail {
    client: aws_sdk_cloudtrail::Client,
}

impl SdkCloudTrail {
    pub fn new(client: aws_sdk_cloudtrail::Client) -> SdkCloudTrail {
        SdkCloudTrail { client }
    }
}

impl CreatorLookup for SdkCloudTrail {
    async fn key_creator(&self, access_key_id: &str) -> Result<Option<Principal>, AwsError> {
        // A CreateAccessKey event names the new key among its resources; LookupEvents takes one attribute, so the
        // event name is checked on what comes back. IAM events are in us-east-1's history.
        let attribute = LookupAttribute::builder()
            .attribute_key(LookupAttributeKey::ResourceName)
            .attribute_value(access_key_id)
            .build()
            .map_err(|e| AwsError::new("cloudtrail:LookupEvents", None, e.to_string()))?;
        let mut pages = self.client.lookup_events().lookup_attributes(attribute).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("cloudtrail:LookupEvents", e))?;
            for event in page.events() {
                if event.event_name() != Some("CreateAccessKey") {
                    continue;
                }
                let Some(record) = event.cloud_trail_event().and_then(|t| serde_json::from_str(t).ok()) else {
                    continue;
                };
                let Ok(call) = parse_record(&record, None, None) else { continue };
                if call.error_code.is_none() && call.access_key_id.as_deref() == Some(access_key_id) {
                    return Ok(Some(call.caller));
                }
            }
        }
        Ok(None)
    }
}
