//! `keyguard doctor`: arguments in, the library's checklist out.

use std::time::Duration;

use keyguard_doctor::{DEFAULT_STACK, Doctor, LiveOptions, Options};

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// The CloudFormation stack the guard was deployed as (without it, the function is found by its KEYGUARD_*
    /// environment and its stack tag).
    #[arg(long, default_value = DEFAULT_STACK)]
    stack: String,
    /// The guard function's name or ARN, when it was deployed without the stack.
    #[arg(long)]
    function: Option<String>,
    /// Member accounts to check in organization mode (comma-separated; default: the function's KEYGUARD_ACCOUNTS).
    #[arg(long, value_delimiter = ',')]
    accounts: Vec<String>,
    /// The member role's name (default: the function's KEYGUARD_MEMBER_ROLE).
    #[arg(long)]
    member_role: Option<String>,
    /// Also run a canary: create an exempt, tagged user (path /keyguard-canary/) with a password and a key, wait for
    /// the function to log its decision, then delete the user. The only option that changes the account.
    #[arg(long)]
    live: bool,
    /// How long --live waits for the function's decision (e.g. 5m, 900s).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    live_timeout: Duration,
    /// Exit 0 when nothing failed even if some checks could only be warned about (a check whose service or
    /// permission is missing); by default the exit code is 0 only when every check passed.
    #[arg(long)]
    allow_warnings: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Format {
    Text,
    Json,
}

/// Prints the checklist; Ok(true) when every check passed (exit 0), Ok(false) otherwise (exit 1).
pub async fn run(args: DoctorArgs) -> anyhow::Result<bool> {
    let options = Options {
        stack: args.stack,
        function: args.function,
        accounts: args.accounts,
        member_role: args.member_role,
        live: args.live.then(|| LiveOptions { timeout: args.live_timeout, ..LiveOptions::default() }),
    };
    let sdk = keyguard_aws::sdk_config().await?;
    let report = Doctor::new(&sdk).run(&options).await;
    match args.format {
        Format::Text => print!("{}", report.to_text()),
        Format::Json => println!("{}", report.to_json()),
    }
    Ok(report.healthy(!args.allow_warnings))
}
