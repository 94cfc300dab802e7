//! Command-line interface: `serve` runs the gRPC server, `verify` runs the
//! same decision path offline for CI pipelines and forensics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::config;
use crate::decision::{Engine, Outcome};

/// Portcullis verifier: matches images against the image policy and
/// verifies their signatures.
#[derive(Debug, Parser)]
#[command(name = "portcullis-verifier", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (portcullis.v1.Verifier and grpc.health.v1).
    Serve(ServeArgs),
    /// Decide on images offline and print one result per image. Exit status:
    /// 0 all allowed, 1 any denied, 2 usage or config error.
    Verify(VerifyArgs),
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The config file (validators and policy).
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    pub config: PathBuf,
    /// The address to listen on.
    #[arg(long, env = "PORTCULLIS_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// The deadline for calls that carry no grpc-timeout, in milliseconds.
    #[arg(long, env = "PORTCULLIS_DEFAULT_DEADLINE_MS", default_value_t = 8000)]
    pub default_deadline_ms: u64,
}

/// Options of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The config file (validators and policy).
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    pub config: PathBuf,
    /// The evaluation time for expiry checks (RFC 3339), for forensics and
    /// for replaying captured trust data. Default: now.
    #[arg(long)]
    pub at: Option<String>,
    /// Print a JSON array instead of text.
    #[arg(long)]
    pub json: bool,
    /// The image references, as written in a manifest.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// One line of `verify --json` output. Scripts depend on these names.
#[derive(Debug, Serialize)]
pub struct JsonResult {
    /// The image as given.
    pub image: String,
    /// Whether it is allowed.
    pub allowed: bool,
    /// The verified digest, or null.
    pub digest: Option<String>,
    /// The pinned reference, or null.
    pub reference: Option<String>,
    /// The matched rule's pattern, or null.
    pub rule: Option<String>,
    /// The validator's name, or null.
    pub validator: Option<String>,
    /// The reason code, e.g. `NO_MATCHING_RULE`.
    pub reason: String,
    /// The human message.
    pub message: String,
}

impl JsonResult {
    fn new(image: &str, outcome: &Outcome) -> Self {
        let r = outcome.to_response();
        let opt = |s: String| (!s.is_empty()).then_some(s);
        JsonResult {
            image: image.to_string(),
            allowed: r.is_allowed(),
            digest: opt(r.digest.clone()),
            reference: opt(r.reference.clone()),
            rule: opt(r.rule.clone()),
            validator: opt(r.validator.clone()),
            reason: r.reason_text(),
            message: r.message,
        }
    }
}

/// Runs `verify`; returns the process exit code.
pub async fn run_verify(args: VerifyArgs) -> ExitCode {
    let now: DateTime<Utc> = match &args.at {
        None => Utc::now(),
        Some(at) => match DateTime::parse_from_rfc3339(at) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => {
                eprintln!("error: --at {at:?} is not an RFC 3339 time: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let config = match config::load_file(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let engine = match Engine::new(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let outcomes =
        futures::future::join_all(args.images.iter().map(|i| engine.decide(i, now))).await;
    let all_allowed = outcomes.iter().all(Outcome::allowed);
    let results: Vec<JsonResult> = args
        .images
        .iter()
        .zip(&outcomes)
        .map(|(image, outcome)| JsonResult::new(image, outcome))
        .collect();
    if args.json {
        match serde_json::to_string_pretty(&results) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        for r in &results {
            let verdict = if r.allowed { "ALLOWED" } else { "DENIED" };
            let pinned = r
                .reference
                .as_deref()
                .map(|p| format!(" -> {p}"))
                .unwrap_or_default();
            println!("{}: {verdict} {}: {}{pinned}", r.image, r.reason, r.message);
        }
    }
    if all_allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Runs `serve` until Ctrl-C or SIGTERM.
pub async fn run_serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = config::load_file(&args.config)?;
    let engine = Arc::new(Engine::new(config)?);
    crate::server::serve(
        args.listen,
        engine,
        Duration::from_millis(args.default_deadline_ms),
        crate::server::shutdown_signal(),
    )
    .await
}
