//! Shared helpers for thinkbank's benchmarks: where the real corpora are, peak memory, and
//! writing results to `bench/results/`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub mod search_corpus;
pub mod search_load;

pub use search_load::load as load_search_corpus;

/// The repository root (benchmarks write under `bench/results/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The HTML documentation shipped with the toolchain (`rust-docs` component).
pub fn toolchain_docs_dir() -> anyhow::Result<PathBuf> {
    let output = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .context("cannot run rustc to find the toolchain docs")?;
    let sysroot = String::from_utf8(output.stdout).context("rustc printed a non-UTF-8 sysroot")?;
    let dir = PathBuf::from(sysroot.trim()).join("share/doc/rust/html");
    anyhow::ensure!(
        dir.join("book").is_dir(),
        "{} has no book: install the rust-docs component (`rustup component add rust-docs`)",
        dir.display()
    );
    Ok(dir)
}

/// The `p`th percentile (0–100, nearest rank) of `values`; NaN when empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The Rust Book's HTML as shipped with the toolchain docs (`rust-docs` component), or the
/// directory in `THINKBANK_BENCH_CORPUS`.
pub fn rust_book_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("THINKBANK_BENCH_CORPUS") {
        return Ok(PathBuf::from(dir));
    }
    Ok(toolchain_docs_dir()?.join("book"))
}

/// The Book's chapter pages (`ch*.html` and `appendix-*.html`), sorted.
pub fn book_chapters(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name.starts_with("ch") || name.starts_with("appendix-")) && name.ends_with(".html")
        })
        .collect();
    pages.sort();
    Ok(pages)
}

/// Peak resident set size of this process in MiB (`VmHWM`).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Writes `value` to `bench/results/<name>.json` and returns the path.
pub fn write_result(name: &str, value: &serde_json::Value) -> anyhow::Result<PathBuf> {
    let dir = repo_root().join("bench/results");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Machine facts recorded next to every result.
pub fn machine() -> serde_json::Value {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    serde_json::json!({ "cpus": cpus, "cpu_model": model, "profile": if cfg!(debug_assertions) { "debug" } else { "release" } })
}
