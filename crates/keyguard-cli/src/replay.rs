//! `keyguard replay`: arguments to the replay library's sources and options (crates/keyguard-replay).

use anyhow::Context;
use chrono::{DateTime, Utc};
use keyguard_core::Policy;
use keyguard_replay::{AthenaTable, Filter, LocalPaths, Options, Replayed, S3Prefix, Source};

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub policy: crate::PolicyArgs,
    /// Files, directories (S3 delivery layout: AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz)
    /// or s3://bucket/prefix. Files may be gzip'd CloudTrail log files, `.json` (a log file, one EventBridge event
    /// or an array of them) or `.jsonl` (JSON lines of EventBridge events). Digest files are skipped.
    #[arg(required_unless_present = "athena")]
    pub paths: Vec<String>,
    /// Query this Athena table over the trail's logs (TABLE or DATABASE.TABLE) instead of, or besides, reading files.
    #[arg(long, value_name = "TABLE")]
    pub athena: Option<String>,
    /// The Athena database of the table [default: default].
    #[arg(long, requires = "athena")]
    pub database: Option<String>,
    /// The Athena workgroup the query runs in.
    #[arg(long, requires = "athena")]
    pub workgroup: Option<String>,
    /// Where Athena writes the query's results (s3://bucket/prefix/), unless the workgroup sets it.
    #[arg(long, requires = "athena", value_name = "S3_URL")]
    pub output: Option<String>,
    /// Only calls at or after this time (RFC 3339, or YYYY-MM-DD for the start of that day, UTC).
    #[arg(long, value_parser = keyguard_replay::since_bound)]
    pub since: Option<DateTime<Utc>>,
    /// Only calls at or before this time (RFC 3339, or YYYY-MM-DD for the whole of that day, UTC).
    #[arg(long, value_parser = keyguard_replay::until_bound)]
    pub until: Option<DateTime<Utc>>,
    /// Only calls recorded in this account (`recipientAccountId`); repeat for several.
    #[arg(long = "account", value_name = "ACCOUNT")]
    pub accounts: Vec<String>,
    /// Parse threads [default: every core, or RAYON_NUM_THREADS].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// S3 objects downloaded at once.
    #[arg(long, default_value_t = 16)]
    pub downloads: usize,
    /// Calls of users not seen created yet that a worker holds before moving them to a temporary file
    /// (0: never; for measurements).
    #[arg(long, hide = true, default_value_t = keyguard_replay::SPILL_AFTER)]
    pub spill_after: usize,
    #[arg(long, value_enum, default_value_t = crate::output::Format::Table)]
    pub format: crate::output::Format,
}

/// Builds the sources, replays, prints the summary line to stderr.
pub async fn run(args: &ReplayArgs, policy: &Policy) -> anyhow::Result<Replayed> {
    let (remote, local): (Vec<&String>, Vec<&String>) = args.paths.iter().partition(|p| p.starts_with("s3://"));
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    if !local.is_empty() {
        sources.push(Box::new(LocalPaths::new(local)?));
    }
    if !remote.is_empty() || args.athena.is_some() {
        // An Athena table is queried in its own region, which only the configuration can say (no us-east-1 default).
        let sdk = match args.athena {
            Some(_) => keyguard_aws::sdk::sdk_config_requiring_region("replay --athena").await?,
            None => keyguard_aws::sdk_config().await?,
        };
        // Without usable credentials every object would fail on its own: one error with its fix instead.
        keyguard_aws::AwsError::check_credentials(&sdk).await?;
        for url in remote {
            sources.push(Box::new(S3Prefix::new(&sdk, url, args.downloads)?));
        }
        if let Some(table) = &args.athena {
            let client = aws_sdk_athena::Client::new(&sdk);
            let table = AthenaTable::new(client, table, args.database.as_deref())?
                .workgroup(args.workgroup.as_deref())?
                .output(args.output.as_deref())?;
            sources.push(Box::new(table));
        }
    }
    let options = Options {
        filter: Filter { since: args.since, until: args.until, accounts: args.accounts.clone() },
        jobs: args.jobs,
        spill_after: if args.spill_after == 0 { usize::MAX } else { args.spill_after },
        ..Options::new(policy.clone())
    };
    let replayed = keyguard_replay::replay(&sources, &options).await.context("replay")?;
    eprintln!("{}", replayed.summary());
    Ok(replayed)
}
