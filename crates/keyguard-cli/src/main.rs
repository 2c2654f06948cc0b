//! `keyguard`: the guard's rule in bulk. Thin over keyguard-core and keyguard-aws.

mod doctor;
mod input;
mod output;
mod replay;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use futures::StreamExt;
use keyguard_aws::Accounts;
use keyguard_core::html::ReportContext;
use keyguard_core::{AuditFailure, Config, Mode};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "keyguard",
    version,
    about = "CIS AWS Foundations 1.11: no access keys at the initial setup of console users"
)]
struct Cli {
    /// Also log what the AWS SDK tried (credential providers, regions, each failed call's full report) to stderr.
    /// RUST_LOG overrides it.
    #[arg(short, long, global = true)]
    verbose: bool,
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
    Permissions {
        /// The member role's actions instead (organization deployments: infra/org/member.yaml).
        #[arg(long, conflicts_with = "doctor")]
        member: bool,
        /// The actions `keyguard doctor` needs instead (read-only; with --live, also the canary's).
        #[arg(long)]
        doctor: bool,
        #[arg(long, requires = "doctor")]
        live: bool,
    },
    /// Check that the guardrail is live: credentials, trail, rule, function, subscriptions, alarms, permissions.
    /// Prints a checklist (✔ pass, ✘ fail, ! warning) with what to do. Exit code 0 only when every check passed.
    Doctor(doctor::DoctorArgs),
    /// The ledger (DynamoDB): `keyguard ledger create --table NAME` makes one for local use and tests.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Create the ledger table (on-demand, TTL on `expires_at`); an existing table is left as it is.
    Create {
        #[arg(long)]
        table: String,
    },
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
    /// The configuration: flags first, then the environment. `mode` replaces KEYGUARD_MODE when given (the value in
    /// the environment must still be a valid mode: a typo is an error in every command).
    pub fn config(&self, mode: Option<Mode>) -> anyhow::Result<Config> {
        config_with(mode, |name| self.flag(name))
    }

    /// One setting: its flag, else its environment variable.
    fn setting(&self, name: &str) -> Option<String> {
        self.flag(name).or_else(|| std::env::var(name).ok())
    }

    /// The flag that stands for an environment variable, when given.
    fn flag(&self, name: &str) -> Option<String> {
        let flags = [
            ("KEYGUARD_SETUP_WINDOW", &self.window),
            ("KEYGUARD_EXEMPT_TAG", &self.exempt_tag),
            ("KEYGUARD_EXEMPT_USERS", &self.exempt_users),
            ("KEYGUARD_EXEMPT_PATHS", &self.exempt_paths),
            ("KEYGUARD_EXEMPT_CREATORS", &self.exempt_creators),
        ];
        flags.iter().find(|(n, _)| *n == name).and_then(|(_, v)| (*v).clone())
    }

    /// The exemptions in force, in words, for the evidence report (the same settings `config` reads).
    pub fn exemptions(&self) -> Vec<String> {
        let value = |name: &str| self.setting(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let tag = value("KEYGUARD_EXEMPT_TAG").unwrap_or_else(|| keyguard_core::config::DEFAULT_EXEMPT_TAG.into());
        let tag_value = value("KEYGUARD_EXEMPT_TAG_VALUE")
            .unwrap_or_else(|| keyguard_core::config::DEFAULT_EXEMPT_TAG_VALUE.into());
        let mut phrases = vec![format!("users tagged {tag}={tag_value}")];
        for (name, what) in [
            ("KEYGUARD_EXEMPT_PATHS", "users under the path"),
            ("KEYGUARD_EXEMPT_USERS", "user names matching"),
            ("KEYGUARD_EXEMPT_CREATORS", "keys created by principals matching"),
        ] {
            for item in value(name).unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()) {
                phrases.push(format!("{what} {item}"));
            }
        }
        phrases
    }
}

/// The configuration from `flag(name)` first, then the environment; `mode` replaces KEYGUARD_MODE when given, after
/// checking the environment's value.
fn config_with(mode: Option<Mode>, flag: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
    // The environment's KEYGUARD_MODE was checked in `run`, with every other variable.
    let config = Config::from_lookup(|name| {
        if name == "KEYGUARD_MODE" && mode.is_some() {
            return mode.map(|m| m.as_str().to_string());
        }
        flag(name).or_else(|| std::env::var(name).ok())
    })
    .context("configuration")?;
    Ok(config)
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
    /// How many users to read at once (per account).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Audit these accounts (comma-separated ids) through the member role, instead of the credentials' own account.
    #[arg(long, value_delimiter = ',', conflicts_with = "organization")]
    accounts: Vec<String>,
    /// Audit every active account of the organization (Organizations ListAccounts) through the member role.
    #[arg(long)]
    organization: bool,
    /// The member role's name [env: KEYGUARD_MEMBER_ROLE; default: KeyGuardMember].
    #[arg(long)]
    role_name: Option<String>,
    /// How many accounts to audit at once.
    #[arg(long, default_value_t = 4)]
    account_concurrency: usize,
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
    let cli = Cli::parse();
    keyguard_aws::logging::init_cli(cli.verbose);
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("keyguard: {}", error_line(&e));
            ExitCode::from(2)
        }
    }
}

/// The one line for an error that stopped a command: for a failed AWS call, what to do about it
/// (keyguard_aws::advice); otherwise the error and its context.
fn error_line(e: &anyhow::Error) -> String {
    let setting = keyguard_aws::advice::Setting::of(None);
    match keyguard_aws::advice::advise_chain(e.chain(), &setting) {
        Some(advice) => advice.to_string(),
        None => format!("{e:#}"),
    }
}

/// Ok(true) when every event was handled (handle), or nothing was flagged (audit, replay).
async fn run(cli: Cli) -> anyhow::Result<bool> {
    // A typo in any KEYGUARD_* variable is an error in every command, even where a flag or the command replaces it.
    keyguard_core::config::check_settings(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .context("configuration")?;
    match cli.command {
        Command::Permissions { member, doctor, live } => {
            let actions = if doctor {
                keyguard_doctor::required_actions(live)
            } else if member {
                keyguard_aws::permissions::member_actions()
            } else {
                keyguard_aws::permissions::guard_actions()
            };
            println!("{}", json!(actions));
            Ok(true)
        }
        Command::Ledger { command: LedgerCommand::Create { table } } => {
            let sdk = keyguard_aws::sdk_config().await?;
            keyguard_aws::DynamoLedger::new(aws_sdk_dynamodb::Client::new(&sdk), &table).create_table().await?;
            eprintln!("keyguard: ledger table {table} ready (set KEYGUARD_LEDGER_TABLE={table})");
            Ok(true)
        }
        Command::Doctor(args) => doctor::run(args).await,
        Command::Handle { apply, files } => handle(apply, &files).await,
        Command::Audit(args) => audit(args).await,
        Command::Replay(args) => {
            let config = args.policy.config(Some(Mode::DryRun))?;
            let replayed = replay::run(&args, &config.policy).await?;
            // The findings are printed even when some input could not be read; then the exit code is 2.
            let report = ReportContext {
                source: format!("replay of CloudTrail history: {}", args.paths.join(", ")),
                accounts: args.accounts.clone(),
                generated_at: chrono::Utc::now(),
                window: config.policy.window,
                exemptions: args.policy.exemptions(),
            };
            let flagged = output::write_rows(&replayed.rows, args.format, &report, &mut std::io::stdout().lock())?;
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
    // Without --apply the CLI is a dry run, whatever KEYGUARD_MODE says, and needs no topic.
    let config = config_with(if apply { None } else { Some(Mode::DryRun) }, |_| None)?;
    let sdk = keyguard_aws::sdk_config().await?;
    let guard = keyguard_aws::sdk_guard(&config, &sdk).await?;
    let mut all_ok = true;
    for file in files {
        for item in input::read_events(file)? {
            let line = match item.value {
                Ok(event) => match guard.handle(&event).await {
                    // Serialized from the struct, so the fields keep their documented order.
                    Ok(report) => serde_json::to_string(&report)?,
                    // No credentials, region or network: every event would fail the same way; stop with the fix.
                    Err(keyguard_aws::GuardError::Aws { source, .. }) if source.kind.affects_every_call() => {
                        return Err(source.into());
                    }
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
    let mut config = args.policy.config(if args.apply { None } else { Some(Mode::DryRun) })?;
    if !args.accounts.is_empty() || args.organization {
        let role = args
            .role_name
            .clone()
            .or_else(|| std::env::var("KEYGUARD_MEMBER_ROLE").ok().filter(|r| !r.trim().is_empty()))
            .unwrap_or_else(|| DEFAULT_MEMBER_ROLE.to_string());
        config.scope = if args.organization {
            keyguard_core::Scope::Organization { role }
        } else {
            keyguard_core::Scope::Listed { role, accounts: args.accounts.clone() }
        };
    }
    let sdk = keyguard_aws::sdk_config().await?;
    let guard = keyguard_aws::sdk_guard(&config, &sdk).await?;
    let accounts = match config.scope {
        keyguard_core::Scope::Own => vec![guard.accounts().own().await?],
        _ => guard.accounts().all().await?,
    };
    let options = keyguard_aws::audit::Options {
        concurrency: args.concurrency.max(1),
        include_used: args.include_used,
        dry_run: !args.apply,
        may_deactivate: args.apply,
        credential_report: !args.no_credential_report,
        // An operator's explicit --apply follows CIS's remediation: unused violating keys are deactivated.
        deactivate_without_creator: true,
        per_key_alerts: true,
    };
    // One safety valve for the whole run, across accounts.
    let valve = keyguard_aws::act::Valve::new("keyguard audit --apply", config.max_deactivations);
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
    let audits = futures::stream::iter(accounts.iter().cloned())
        .map(|account| {
            let (guard, options, creators, valve, progress) = (&guard, &options, creators.as_ref(), &valve, &progress);
            async move { (account.clone(), guard.audit(&account, options, creators, valve, progress).await) }
        })
        .buffered(args.account_concurrency.max(1));
    let results: Vec<_> = futures::StreamExt::collect(audits).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    // One account that could not be read at all: its error, as the one line with its fix, and no empty report.
    if let [(_, Err(e))] = results.as_slice() {
        return Err(e.clone().into());
    }
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let setting = keyguard_aws::advice::Setting::of(Some(&sdk));
    for (account, result) in results {
        match result {
            Ok(outcome) => {
                // The audit names a user it could not read as "user: error" (IAM user names hold no colon).
                failures.extend(outcome.errors.iter().map(|e| {
                    let (user, error) = e.split_once(": ").map_or((None, e.as_str()), |(u, e)| (Some(u), e));
                    AuditFailure { account: account.clone(), user: user.map(str::to_string), error: error.to_string() }
                }));
                rows.extend(outcome.rows);
            }
            Err(e) => failures.push(AuditFailure {
                account,
                user: None,
                error: keyguard_aws::advice::advise(&e, &setting).to_string(),
            }),
        }
    }
    let report = ReportContext {
        source: if args.apply {
            format!("audit of the current IAM state, acting by mode {}", config.mode.as_str())
        } else {
            "audit of the current IAM state (dry run: nothing changed)".to_string()
        },
        accounts: accounts.clone(),
        generated_at: chrono::Utc::now(),
        window: config.policy.window,
        exemptions: args.policy.exemptions(),
    };
    // One combined report: the accounts that failed are error rows in it, the others are reported in full.
    let flagged = output::write_report(&rows, &failures, args.format, &report, &mut std::io::stdout().lock())?;
    for f in &failures {
        match &f.user {
            Some(user) => eprintln!("keyguard: not audited: account {}: user {user}: {}", f.account, f.error),
            None => eprintln!("keyguard: not audited: account {}: {}", f.account, f.error),
        }
    }
    anyhow::ensure!(failures.is_empty(), "{} account(s) or user(s) could not be audited", failures.len());
    Ok(!flagged)
}

/// The member role's name when neither --role-name nor KEYGUARD_MEMBER_ROLE says (infra/org/member.yaml's default).
const DEFAULT_MEMBER_ROLE: &str = "KeyGuardMember";

fn event_id(event: &serde_json::Value) -> Option<&str> {
    event.pointer("/detail/eventID").or_else(|| event.get("id")).and_then(|v| v.as_str())
}
