//! The AWS actions KeyGuard's code calls, built from the ports' own `ACTIONS`: the deployed roles must grant
//! exactly these (`keyguard permissions`, checked against the templates by tests/template).

use crate::iam::SdkIam;
use crate::ledger::DynamoLedger;
use crate::ports::{AccountDirectory, AccountReader, AlertPublisher, IamReader, KeyDeactivator, Ledger, SweepQueue};

/// The member role's extra on top of its IAM actions: none (iam:ListAccountAliases is an account read).
/// Assuming the member role, from the function's role.
pub const ASSUME_ACTIONS: &[&str] = &["sts:AssumeRole"];

/// Security Hub findings (`KEYGUARD_SECURITY_HUB=on`), filed in each key's own account: by the function's role in its
/// own account, by the member role in a member account. (A placeholder until the Security Hub adapter's port declares
/// its own `ACTIONS`; then that replaces this list.)
pub const SECURITY_HUB_ACTIONS: &[&str] = &["securityhub:BatchImportFindings", "securityhub:GetFindings"];

/// What the guard does in an account's IAM (the function's role in its own account, the member role elsewhere).
pub fn iam_actions() -> Vec<&'static str> {
    sorted(&[<SdkIam as IamReader>::ACTIONS, <SdkIam as KeyDeactivator>::ACTIONS, <SdkIam as AccountReader>::ACTIONS])
}

/// Every action the Lambda's code calls (events, the sweep, every optional feature). Which of them a deployment
/// grants depends on its features (organization mode, Security Hub); the template grants each under its condition.
pub fn guard_actions() -> Vec<&'static str> {
    let iam = iam_actions();
    sorted(&[
        &iam,
        <crate::sns::SdkSns as AlertPublisher>::ACTIONS,
        <DynamoLedger as Ledger>::ACTIONS,
        <crate::sqs::SdkSweepQueue as SweepQueue>::ACTIONS,
        <crate::accounts::SdkDirectory as AccountDirectory>::ACTIONS,
        ASSUME_ACTIONS,
        SECURITY_HUB_ACTIONS,
    ])
}

/// The member role's actions in each member account: the guard's IAM actions, and Security Hub's (findings are filed
/// in the key's own account).
pub fn member_actions() -> Vec<&'static str> {
    sorted(&[&iam_actions(), SECURITY_HUB_ACTIONS])
}

fn sorted(lists: &[&[&'static str]]) -> Vec<&'static str> {
    let mut all: Vec<&'static str> = lists.concat();
    all.sort_unstable();
    all.dedup();
    all
}
