//! `thinkbank-gateway`: reads configuration and serves HTTP until SIGINT/SIGTERM.

use anyhow::Context as _;
use clap::Parser as _;
use thinkbank_gateway::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = thinkbank_common::logging::init("thinkbank-gateway");
    let config = Config::parse();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let shutdown = thinkbank_common::shutdown::on_signal();
    let result = thinkbank_gateway::run(config, listener, shutdown).await;
    telemetry.shutdown().await;
    result
}
