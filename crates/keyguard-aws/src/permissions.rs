//! The AWS actions KeyGuard's code calls, built from the ports' own `ACTIONS`: the deployed roles must grant
//! exactly these (`keyguard permissions`, checked against the templates by tests/template).

use crate::iam::SdkIam;
use crate::ledger::DynamoLedger;
use crate::ports::{AccountDirectory, AccountReader, AlertPublisher, IamReader, KeyDeactivator, Ledger, SweepQueue};

/// Assuming the member role, from the function's role.
pub const ASSUME_ACTIONS: &[&str] = &["sts:AssumeRole"];

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
        crate::securityhub::ACTIONS,
    ])
}

/// The member role's actions in each member account: the guard's IAM actions, and Security Hub's (a finding is filed
/// in the key's own account, through its member role; the template grants these only with Security Hub on).
pub fn member_actions() -> Vec<&'static str> {
    sorted(&[&iam_actions(), crate::securityhub::ACTIONS])
}

fn sorted(lists: &[&[&'static str]]) -> Vec<&'static str> {
    let mut all: Vec<&'static str> = lists.concat();
    all.sort_unstable();
    all.dedup();
    all
}
