//! `thinkbank ingest`: uploads files with bounded concurrency, follows each asset's progress
//! over SSE (`/api/v1/assets/{id}/events`) with a bar per file and one overall, skips
//! duplicates, and ends with a summary of what is ready and what failed and why.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use futures::StreamExt as _;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use thinkbank_common::sse::SseParser;

use crate::client::{Client, error_message};

#[derive(Debug, Clone)]
pub struct Options {
    pub concurrency: usize,
    pub collection: Option<String>,
    pub path_as_external_id: bool,
    pub quiet: bool,
}

/// How one file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ready { chunks: u64 },
    Duplicate,
    Failed(String),
}

#[derive(Debug, Default)]
pub struct Summary {
    pub ready: usize,
    pub duplicates: usize,
    pub failed: usize,
}

pub async fn run(client: &Client, paths: &[PathBuf], options: &Options) -> anyhow::Result<Summary> {
    let files = collect_files(paths)?;
    if files.is_empty() {
        anyhow::bail!("no files found in {}", display_paths(paths));
    }
    let bars = MultiProgress::with_draw_target(if options.quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let overall = bars.add(ProgressBar::new(files.len() as u64));
    overall.set_style(style("{prefix:>12} [{bar:30}] {pos}/{len} files {elapsed}"));
    overall.set_prefix("total");

    let results: Vec<(PathBuf, Outcome)> = futures::stream::iter(files)
        .map(|path| {
            let bars = bars.clone();
            let overall = overall.clone();
            async move {
                let bar = bars.insert_before(&overall, ProgressBar::new(100));
                bar.set_style(style("{prefix:>12} [{bar:30}] {percent:>3}% {msg}"));
                bar.set_prefix(short_name(&path));
                let outcome = ingest_one(client, &path, options, &bar).await;
                bar.finish_and_clear();
                overall.inc(1);
                let line = match &outcome {
                    Outcome::Ready { chunks } => {
                        format!("ready      {} ({chunks} chunks)", path.display())
                    }
                    Outcome::Duplicate => format!("duplicate  {}", path.display()),
                    Outcome::Failed(reason) => format!("failed     {}: {reason}", path.display()),
                };
                // Above the bars on a terminal; plain lines in logs and pipes.
                if bars.is_hidden() {
                    println!("{line}");
                } else {
                    let _ = bars.println(&line);
                }
                (path, outcome)
            }
        })
        .buffer_unordered(options.concurrency)
        .collect()
        .await;
    overall.finish_and_clear();

    let mut summary = Summary::default();
    let mut failures = Vec::new();
    for (path, outcome) in &results {
        match outcome {
            Outcome::Ready { .. } => summary.ready += 1,
            Outcome::Duplicate => summary.duplicates += 1,
            Outcome::Failed(reason) => {
                summary.failed += 1;
                failures.push(format!("  {}: {reason}", path.display()));
            }
        }
    }
    println!(
        "ingested {} files: {} ready, {} duplicates skipped, {} failed",
        results.len(),
        summary.ready,
        summary.duplicates,
        summary.failed
    );
    for line in failures {
        println!("{line}");
    }
    Ok(summary)
}

async fn ingest_one(client: &Client, path: &Path, options: &Options, bar: &ProgressBar) -> Outcome {
    bar.set_message("uploading");
    match upload_and_follow(client, path, options, bar).await {
        Ok(outcome) => outcome,
        Err(error) => Outcome::Failed(format!("{error:#}")),
    }
}

async fn upload_and_follow(
    client: &Client,
    path: &Path,
    options: &Options,
    bar: &ProgressBar,
) -> anyhow::Result<Outcome> {
    let bytes = tokio::fs::read(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name),
    );
    if let Some(collection) = &options.collection {
        form = form.text("collection_id", collection.clone());
    }
    if options.path_as_external_id {
        form = form.text("external_id", path.display().to_string());
    }
    let response = client
        .http()
        .post(client.url("/api/v1/assets"))
        .multipart(form)
        .send()
        .await
        .context("upload failed")?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        return Ok(Outcome::Failed(error_message(status, &body)));
    }
    if body["deduplicated"].as_bool() == Some(true) {
        return Ok(Outcome::Duplicate);
    }
    let id = body["asset"]["id"]
        .as_str()
        .context("the gateway returned no asset id")?
        .to_owned();
    follow(client, &id, bar).await
}

/// Follows the asset's SSE progress stream until a final status.
async fn follow(client: &Client, id: &str, bar: &ProgressBar) -> anyhow::Result<Outcome> {
    let response = client
        .http()
        .get(client.url(&format!("/api/v1/assets/{id}/events")))
        .send()
        .await
        .context("cannot follow progress")?;
    let mut body = response.bytes_stream();
    let mut parser = SseParser::default();
    let mut last = serde_json::Value::Null;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("progress stream broke off")?;
        for event in parser.feed(&String::from_utf8_lossy(&chunk)) {
            match event.event.as_str() {
                "asset" => {
                    let asset: serde_json::Value =
                        serde_json::from_str(&event.data).unwrap_or_default();
                    let progress = asset["progress"].as_f64().unwrap_or(0.0);
                    #[expect(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        reason = "0..=100"
                    )]
                    bar.set_position((progress.clamp(0.0, 1.0) * 100.0) as u64);
                    bar.set_message(asset["stage"].as_str().unwrap_or("").to_owned());
                    last = asset;
                }
                "error" => {
                    let body: serde_json::Value =
                        serde_json::from_str(&event.data).unwrap_or_default();
                    anyhow::bail!(
                        "{}",
                        body["error"]["message"]
                            .as_str()
                            .unwrap_or("progress stream failed")
                    );
                }
                _ => {}
            }
        }
    }
    Ok(match last["status"].as_str() {
        Some("ready") => Outcome::Ready {
            chunks: last["chunk_count"].as_u64().unwrap_or(0),
        },
        Some(status) => Outcome::Failed(
            last["error"]
                .as_str()
                .map_or_else(|| status.to_owned(), str::to_owned),
        ),
        None => Outcome::Failed("the progress stream ended without a status".into()),
    })
}

/// Files under `paths`, directories walked recursively, hidden entries skipped, sorted.
fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let metadata =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if metadata.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn short_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.chars().count() > 12 {
        format!("{}…", name.chars().take(11).collect::<String>())
    } else {
        name
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
