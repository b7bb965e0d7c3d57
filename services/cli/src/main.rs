//! `thinkbank`: the command-line client. See `thinkbank --help`.

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = thinkbank_cli::Cli::parse();
    match thinkbank_cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("thinkbank: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}
