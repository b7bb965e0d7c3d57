//! The `thinkbank` command-line client. It talks to the gateway's public HTTP API only, like
//! any other client: bulk ingest with live progress, platform status, and search.

mod audit;
mod client;
mod ingest;
mod search;
mod status;

use std::{path::PathBuf, process::ExitCode};

pub use client::Client;

#[derive(Debug, clap::Parser)]
#[command(name = "thinkbank", version, about = "thinkbank command-line client")]
pub struct Cli {
    /// Base URL of the thinkbank gateway.
    #[arg(
        long,
        env = "THINKBANK_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,

    /// API key (or access token) sent as `Authorization: Bearer …`.
    #[arg(long, env = "THINKBANK_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Upload files (directories are walked recursively) and follow their ingestion until each
    /// is ready or failed. Exits 1 when any file failed.
    Ingest {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Uploads in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Target collection (UUID); the default collection when omitted.
        #[arg(long)]
        collection: Option<String>,
        /// Set each asset's external_id to its path, so re-ingesting a changed file replaces
        /// the old version.
        #[arg(long)]
        path_as_external_id: bool,
        /// No progress bars (for logs and CI).
        #[arg(long)]
        quiet: bool,
    },
    /// Show the gateway's readiness and the assets by status.
    Status,
    /// Search the knowledge base.
    Search {
        query: String,
        #[arg(long, default_value_t = 5)]
        top_k: u32,
    },
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain and report the first broken link. Exits 1 when it is broken.
    /// With --database-url the chain is read from PostgreSQL directly (trusting no gateway);
    /// otherwise the gateway's admin endpoint checks it (needs an admin key).
    Verify {
        #[arg(long, env = "THINKBANK_AUDIT_DATABASE_URL")]
        database_url: Option<String>,
        /// The gateway's audit key, to check keyed entries when reading PostgreSQL directly.
        #[arg(long, env = "THINKBANK_AUDIT_KEY", hide_env_values = true)]
        audit_key: Option<String>,
    },
}

/// Runs one command; the exit code reports partial failure (1) apart from errors (2).
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let client = Client::new(&cli.url, cli.api_key.as_deref())?;
    match cli.command {
        Command::Ingest {
            paths,
            concurrency,
            collection,
            path_as_external_id,
            quiet,
        } => {
            let options = ingest::Options {
                concurrency: concurrency.max(1),
                collection,
                path_as_external_id,
                quiet,
            };
            let summary = ingest::run(&client, &paths, &options).await?;
            Ok(if summary.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Status => status::run(&client).await.map(|()| ExitCode::SUCCESS),
        Command::Search { query, top_k } => search::run(&client, &query, top_k)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Audit {
            command:
                AuditCommand::Verify {
                    database_url,
                    audit_key,
                },
        } => audit::verify(&client, database_url.as_deref(), audit_key.as_deref()).await,
    }
}
