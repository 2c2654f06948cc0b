//! An AWS Organization in moto (DESIGN.md §4): the default account 123456789012 is the management (central)
//! account, `CreateAccount` adds members, and STS `AssumeRole` into a member gives credentials whose calls land in
//! that member's own backends (moto checks no trust policy, and the role need not exist).

use anyhow::{Context, Result};
use aws_config::SdkConfig;
use aws_sdk_iam::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_organizations::error::ProvideErrorMetadata;

use crate::{ACCOUNT, unique};

/// The role Organizations creates in each account it creates.
pub const ACCESS_ROLE: &str = "OrganizationAccountAccessRole";

/// The organization of moto's default account, and the member accounts made for one test.
#[derive(Debug, Clone)]
pub struct Org {
    pub id: String,
    /// The management account (moto's default account, where the central guard runs).
    pub management: String,
    /// Accounts created for this test (each test makes its own, so tests sharing a moto never share a member).
    pub members: Vec<String>,
}

impl Org {
    /// The organization of the default account (created on first use, found afterwards), with `members` new member
    /// accounts created in it.
    pub async fn create(sdk: &SdkConfig, members: usize) -> Result<Org> {
        let client = aws_sdk_organizations::Client::new(sdk);
        let created = client
            .create_organization()
            .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
            .send()
            .await;
        let organization = match created {
            Ok(out) => out.organization().cloned(),
            Err(e) if e.code() == Some("AlreadyInOrganizationException") => {
                client.describe_organization().send().await?.organization().cloned()
            }
            Err(e) => return Err(e.into()),
        }
        .context("an organization")?;
        let mut org = Org {
            id: organization.id().context("organization id")?.to_string(),
            management: organization.master_account_id().unwrap_or(ACCOUNT).to_string(),
            members: Vec::new(),
        };
        for _ in 0..members {
            org.members.push(org.add_account(sdk).await?);
        }
        Ok(org)
    }

    /// One more member account (Organizations `CreateAccount`; moto creates it at once, with a random id).
    pub async fn add_account(&self, sdk: &SdkConfig) -> Result<String> {
        let name = unique("member");
        let out = aws_sdk_organizations::Client::new(sdk)
            .create_account()
            .account_name(&name)
            .email(format!("{name}@example.com"))
            .send()
            .await?;
        let status = out.create_account_status().context("CreateAccountStatus")?;
        Ok(status.account_id().context("the new account's id")?.to_string())
    }

    /// SDK configuration acting in member `account` through its `OrganizationAccountAccessRole`.
    pub async fn member_sdk(&self, sdk: &SdkConfig, account: &str) -> Result<SdkConfig> {
        assume(sdk, account, ACCESS_ROLE).await
    }
}

/// SDK configuration with the credentials of `role` assumed in `account` (STS AssumeRole from `sdk`'s identity).
pub async fn assume(sdk: &SdkConfig, account: &str, role: &str) -> Result<SdkConfig> {
    let out = aws_sdk_sts::Client::new(sdk)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/{role}"))
        .role_session_name("keyguard-tests")
        .send()
        .await?;
    let c = out.credentials().context("credentials")?;
    let credentials = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "keyguard-tests-assumed",
    );
    Ok(sdk.to_builder().credentials_provider(SharedCredentialsProvider::new(credentials)).build())
}
