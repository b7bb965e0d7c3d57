//! `thinkbank-ai-worker`: reads configuration and runs the worker until SIGINT/SIGTERM.

use anyhow::Context as _;
use clap::Parser as _;
use thinkbank_ai_worker::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = thinkbank_common::logging::init("thinkbank-ai-worker");
    let config = Config::parse();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let shutdown = thinkbank_common::shutdown::on_signal();
    let result = thinkbank_ai_worker::run(config, listener, shutdown).await;
    telemetry.shutdown().await;
    result
}
