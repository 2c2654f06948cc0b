//! `keyguard`: the guard's rule in bulk. Thin over keyguard-core and keyguard-aws.

mod input;
mod output;
mod replay;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use keyguard_core::{Config, Mode};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "keyguard",
    version,
    about = "CIS AWS Foundations 1.11: no access keys at the initial setup of console users"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the guard on saved EventBridge events: each FILE holds one event, or JSON lines of events (`-` for stdin).
    /// Prints one JSON line per event. Configuration comes from the same KEYGUARD_* variables as the Lambda.
    Handle {
        /// Act by KEYGUARD_MODE (notify, deactivate). Without it nothing changes and nothing is published.
        #[arg(long)]
        apply: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Audit the account's current IAM state under the same rule: every key of every user, with its verdict.
    /// Exit code 0 when compliant, 1 when violations or suspects were found, 2 on error.
    Audit(AuditArgs),
    /// Replay CloudTrail history (S3-layout `.json.gz` files, `.json`, JSON lines of EventBridge events,
    /// `s3://bucket/prefix`, or an Athena table): every key of every user created in it, with its creator.
    /// Exit codes as for audit.
    Replay(replay::ReplayArgs),
    /// Print, as a JSON array, every AWS action the guard's code calls (the deployed role must grant exactly these).
    Permissions,
}

/// The rule's settings: flags override the KEYGUARD_* environment variables the Lambda reads.
#[derive(clap::Args, Debug, Clone)]
pub struct PolicyArgs {
    /// Setup window (e.g. 10m, 90s) [env: KEYGUARD_SETUP_WINDOW]
    #[arg(long)]
    window: Option<String>,
    /// Exempting user tag key [env: KEYGUARD_EXEMPT_TAG]
    #[arg(long)]
    exempt_tag: Option<String>,
    /// Comma-separated user-name globs [env: KEYGUARD_EXEMPT_USERS]
    #[arg(long)]
    exempt_users: Option<String>,
    /// Comma-separated user path prefixes [env: KEYGUARD_EXEMPT_PATHS]
    #[arg(long)]
    exempt_paths: Option<String>,
    /// Comma-separated creator ARN globs [env: KEYGUARD_EXEMPT_CREATORS]
    #[arg(long)]
    exempt_creators: Option<String>,
}

impl PolicyArgs {
    /// The configuration: flags first, then the environment. `mode` replaces KEYGUARD_MODE when given.
    pub fn config(&self, mode: Option<Mode>) -> anyhow::Result<Config> {
        let flags = [
            ("KEYGUARD_SETUP_WINDOW", &self.window),
            ("KEYGUARD_EXEMPT_TAG", &self.exempt_tag),
            ("KEYGUARD_EXEMPT_USERS", &self.exempt_users),
            ("KEYGUARD_EXEMPT_PATHS", &self.exempt_paths),
            ("KEYGUARD_EXEMPT_CREATORS", &self.exempt_creators),
        ];
        let config = Config::from_lookup(|name| {
            if name == "KEYGUARD_MODE" && mode.is_some() {
                return mode.map(|m| m.as_str().to_string());
            }
            flags.iter().find(|(n, _)| *n == name).and_then(|(_, v)| (*v).clone()).or_else(|| std::env::var(name).ok())
        })
        .context("configuration")?;
        Ok(config)
    }
}

#[derive(clap::Args, Debug)]
struct AuditArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// Act by KEYGUARD_MODE: deactivate exactly the violating keys (never used ones only, unless --include-used)
    /// and/or alert. Without it nothing changes.
    #[arg(long)]
    apply: bool,
    /// With --apply, also deactivate violating keys that have been used.
    #[arg(long)]
    include_used: bool,
    /// How many users to read at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Read every user instead of narrowing the account down with the credential report.
    #[arg(long)]
    no_credential_report: bool,
    /// Look up who created each flagged key in CloudTrail's event history (LookupEvents, last 90 days; needs
    /// cloudtrail:LookupEvents): a suspect becomes a violation or a self-service key.
    #[arg(long)]
    with_creators: bool,
    #[arg(long, value_enum, default_value_t = output::Format::Table)]
    format: output::Format,
}

#[tokio::main]
async fn main() -> ExitCode {
    keyguard_aws::logging::init();
    match run(Cli::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("keyguard: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Ok(true) when every event was handled (handle), or nothing was flagged (audit, replay).
async fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Permissions => {
            println!("{}", json!(keyguard_aws::required_actions()));
            Ok(true)
        }
        Command::Handle { apply, files } => handle(apply, &files).await,
        Command::Audit(args) => audit(args).await,
        Command::Replay(args) => {
            let config = args.policy.config(Some(Mode::DryRun))?;
            let replayed = replay::run(&args, &config.policy).await?;
            // The findings are printed even when some input could not be read; then the exit code is 2.
            let flagged = output::write_rows(&replayed.rows, args.format, &mut std::io::stdout().lock())?;
            anyhow::ensure!(
                replayed.errors() == 0,
                "{} input(s) could not be read (see the warnings above); the findings printed omit them",
                replayed.errors()
            );
            Ok(!flagged)
        }
    }
}

async fn handle(apply: bool, files: &[PathBuf]) -> anyhow::Result<bool> {
    let config = Config::from_lookup(|name| {
        // Without --apply the CLI is a dry run, whatever KEYGUARD_MODE says, and needs no topic.
        if !apply && name == "KEYGUARD_MODE" { Some("dry-run".into()) } else { std::env::var(name).ok() }
    })
    .context("configuration")?;
    let sdk = keyguard_aws::sdk_config().await;
    let guard = keyguard_aws::sdk_guard(&config, &sdk).context("configuration")?;
    let mut all_ok = true;
    for file in files {
        for item in input::read_events(file)? {
            let line = match item.value {
                Ok(event) => match guard.handle(&event).await {
                    // Serialized from the struct, so the fields keep their documented order.
                    Ok(report) => serde_json::to_string(&report)?,
                    Err(e) => {
                        all_ok = false;
                        json!({"source": item.source, "event_id": event_id(&event), "error": e.to_string(),
                               "error_type": e.kind(), "retryable": e.retryable()})
                        .to_string()
                    }
                },
                Err(problem) => {
                    all_ok = false;
                    json!({"source": item.source, "event_id": null, "error": problem, "error_type": "KeyGuard.BadEvent"})
                        .to_string()
                }
            };
            println!("{line}");
        }
    }
    Ok(all_ok)
}

async fn audit(args: AuditArgs) -> anyhow::Result<bool> {
    let config = args.policy.config(if args.apply { None } else { Some(Mode::DryRun) })?;
    let sdk = keyguard_aws::sdk_config().await;
    let guard = keyguard_aws::sdk_guard(&config, &sdk).context("configuration")?;
    let options = keyguard_aws::audit::Options {
        concurrency: args.concurrency.max(1),
        include_used: args.include_used,
        dry_run: !args.apply,
        credential_report: !args.no_credential_report,
        // An operator's explicit --apply follows CIS's remediation: unused violating keys are deactivated.
        deactivate_without_creator: true,
    };
    // A progress bar on a terminal only: piped output stays clean.
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_message("reading users");
        bar
    });
    let progress = |done: usize, total: usize| {
        if let Some(bar) = &bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    };
    // IAM's CloudTrail events are in us-east-1's event history, wherever the CLI runs.
    let creators = args.with_creators.then(|| {
        let config =
            aws_sdk_cloudtrail::config::Builder::from(&sdk).region(aws_config::Region::new("us-east-1")).build();
        keyguard_aws::SdkCloudTrail::new(aws_sdk_cloudtrail::Client::from_conf(config))
    });
    let outcome = guard.audit(&options, creators.as_ref(), &progress).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let flagged = output::write_rows(&outcome.rows, args.format, &mut std::io::stdout().lock())?;
    anyhow::ensure!(
        outcome.errors.is_empty(),
        "{} user(s) could not be audited: {}",
        outcome.errors.len(),
        outcome.errors.join("; ")
    );
    Ok(!flagged)
}

fn event_id(event: &serde_json::Value) -> Option<&str> {
    event.pointer("/detail/eventID").or_else(|| event.get("id")).and_then(|v| v.as_str())
}
