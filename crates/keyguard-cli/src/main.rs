//! `keyguard`: the guard's rule in bulk. Thin over keyguard-core and keyguard-aws.

mod input;

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
    /// Print, as a JSON array, every AWS action the guard's code calls (the deployed role must grant exactly these).
    Permissions,
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

/// Ok(true) when every event was handled.
async fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Permissions => {
            println!("{}", json!(keyguard_aws::required_actions()));
            Ok(true)
        }
        Command::Handle { apply, files } => handle(apply, &files).await,
    }
}

async fn handle(apply: bool, files: &[PathBuf]) -> anyhow::Result<bool> {
    let mut config = Config::from_lookup(|name| {
        // Without --apply the CLI is a dry run, whatever KEYGUARD_MODE says, and needs no topic.
        if !apply && name == "KEYGUARD_MODE" { Some("dry-run".into()) } else { std::env::var(name).ok() }
    })
    .context("configuration")?;
    if !apply {
        config.mode = Mode::DryRun;
    }
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

fn event_id(event: &serde_json::Value) -> Option<&str> {
    event.pointer("/detail/eventID").or_else(|| event.get("id")).and_then(|v| v.as_str())
}
