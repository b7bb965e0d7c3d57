//! The corpus of `make bench-search`: passages of real prose from the documentation shipped
//! with the Rust toolchain (the books first, then the standard library's API docs), queries
//! from the Rust Book's section headings, and their all-MiniLM-L6-v2 vectors, cached on disk
//! because embedding 100k passages on two cores takes a while.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};
use thinkbank_ai_worker::{embed::LocalEmbedder, ingest::parse::html};

/// Documentation trees in the order they are read; the books are prose, the API docs add
/// volume. `src`, `trait.impl` and `type.impl` hold source code and script data, not prose;
/// `""` stands for the pages at the top (not its subdirectories).
const TREES: &[&str] = &[
    "book",
    "reference",
    "rust-by-example",
    "nomicon",
    "edition-guide",
    "cargo",
    "rustc",
    "embedded-book",
    "style-guide",
    "rustdoc",
    "unstable-book",
    "std",
    "alloc",
    "core",
    "proc_macro",
    "test",
    "std_detect",
    "error_codes",
    "clippy",
    // The pages at the top of the docs: release notes, the old guides.
    "",
];
/// Passages hold up to this many words (≈ 32 model tokens), ending at a sentence when one
/// ends late enough, like a sentence-window chunker's.
const MAX_WORDS: usize = 24;
/// Words a passage shares with the previous one of its paragraph, as chunkers overlap.
const OVERLAP_WORDS: usize = 10;
const MIN_WORDS: usize = 6;
/// Queries taken from the Book's headings.
const MAX_QUERIES: usize = 200;

pub struct Corpus {
    /// Distinct passages, in reading order.
    pub passages: Vec<String>,
    /// Section headings of the Rust Book, as a user would type them.
    pub queries: Vec<String>,
    /// Pages read to collect the passages.
    pub pages: usize,
}

/// Reads pages until `target` distinct passages are collected.
pub fn collect(docs: &Path, target: usize) -> anyhow::Result<Corpus> {
    let mut seen = HashSet::new();
    let mut passages = Vec::with_capacity(target);
    let mut headings = Vec::new();
    let mut pages = 0;
    for tree in TREES {
        let mut files = Vec::new();
        html_files(&docs.join(tree), !tree.is_empty(), &mut files)?;
        files.sort();
        for file in files {
            if passages.len() >= target {
                break;
            }
            let page = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            pages += 1;
            // The worker's default parse limit: these are the Rust docs, far inside it.
            let text = html::to_markdown(&page, std::time::Duration::from_secs(60))
                .with_context(|| format!("cannot read {}", file.display()))?;
            let mut paragraph = String::new();
            for line in text.lines().map(str::trim).chain([""]) {
                if !line.is_empty() && !line.starts_with('#') {
                    paragraph.push(' ');
                    paragraph.push_str(line);
                    continue;
                }
                for passage in passages_of(&paragraph) {
                    if passages.len() < target && seen.insert(passage.clone()) {
                        passages.push(passage);
                    }
                }
                paragraph.clear();
                if *tree == "book"
                    && let Some(heading) = line.strip_prefix('#')
                {
                    headings.push(heading.trim_start_matches('#').trim().to_owned());
                }
            }
        }
    }
    anyhow::ensure!(
        passages.len() >= target,
        "only {} distinct passages in {}; ask for fewer",
        passages.len(),
        docs.display()
    );
    Ok(Corpus {
        passages,
        queries: queries_from(headings),
        pages,
    })
}

fn html_files(dir: &Path, recurse: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if recurse {
                html_files(&path, true, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "html") {
            out.push(path);
        }
    }
    Ok(())
}

/// One paragraph cut into passages of at most `MAX_WORDS` words, each starting with the last
/// `OVERLAP_WORDS` of the one before; code-like text (few letters) and fragments are skipped.
fn passages_of(block: &str) -> Vec<String> {
    let words: Vec<&str> = block.split_whitespace().collect();
    let letters = block.chars().filter(|c| c.is_alphabetic()).count();
    if words.len() < MIN_WORDS || letters * 10 < block.len() * 6 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < words.len() {
        let mut end = (start + MAX_WORDS).min(words.len());
        // End at the last sentence end in the window's second half, if there is one.
        if end < words.len()
            && let Some(cut) = (start + MAX_WORDS / 2..end)
                .rev()
                .find(|&i| words[i].ends_with(['.', '?', '!']))
        {
            end = cut + 1;
        }
        if end - start >= MIN_WORDS {
            out.push(words[start..end].join(" "));
        }
        if end == words.len() {
            break;
        }
        start = end.saturating_sub(OVERLAP_WORDS).max(start + 1);
    }
    out
}

/// Distinct headings of three words or more, spread evenly over the Book.
fn queries_from(headings: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    let unique: Vec<String> = headings
        .into_iter()
        .filter(|h| h.split_whitespace().count() >= 3 && seen.insert(h.to_lowercase()))
        .collect();
    let step = unique.len().div_ceil(MAX_QUERIES).max(1);
    unique.into_iter().step_by(step).collect()
}

/// The passages' vectors: from the cache in `cache_dir` when this exact list was embedded
/// before, otherwise embedded now (with progress) and cached.
pub fn vectors(
    model: &LocalEmbedder,
    passages: &[String],
    cache_dir: &Path,
) -> anyhow::Result<(Vec<Vec<f32>>, f64)> {
    let dims = model.info().dimensions;
    let mut hasher = Sha256::new();
    hasher.update(model.info().name.as_bytes());
    for passage in passages {
        hasher.update(passage.as_bytes());
        hasher.update([0]);
    }
    let key: String = hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = cache_dir.join(format!("search-{}-{key}.f32", passages.len()));
    if let Ok(bytes) = std::fs::read(&path)
        && bytes.len() == passages.len() * dims * 4
    {
        println!("passage vectors from the cache {}", path.display());
        let floats: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        return Ok((floats.chunks(dims).map(<[f32]>::to_vec).collect(), 0.0));
    }
    let started = Instant::now();
    let mut vectors = Vec::with_capacity(passages.len());
    let step = 4096;
    for (i, batch) in passages.chunks(step).enumerate() {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        let embedded = model.embed_blocking(&refs).map_err(anyhow::Error::msg)?;
        vectors.extend(embedded.into_iter().map(|e| e.vector));
        let done = ((i + 1) * step).min(passages.len());
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "embedded {done}/{} passages ({:.0}/s, about {:.0} s left)",
            passages.len(),
            done as f64 / elapsed,
            (passages.len() - done) as f64 * elapsed / done as f64
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("cannot create {}", cache_dir.display()))?;
    let bytes: Vec<u8> = vectors
        .iter()
        .flatten()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok((vectors, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_become_overlapping_sentence_aligned_passages_and_code_is_skipped() {
        let sentence = "The borrow checker makes sure that references are always valid here.";
        let block = [sentence; 8].join(" ");
        let passages = passages_of(&block);
        assert!(passages.len() >= 2, "{passages:?}");
        for p in &passages {
            let words = p.split_whitespace().count();
            assert!((MIN_WORDS..=MAX_WORDS).contains(&words), "{p}");
        }
        assert!(passages[0].ends_with('.'));
        // Consecutive passages share their boundary words.
        let tail: Vec<&str> = passages[0]
            .split_whitespace()
            .rev()
            .take(OVERLAP_WORDS)
            .collect();
        let head: Vec<&str> = passages[1].split_whitespace().take(OVERLAP_WORDS).collect();
        assert_eq!(tail.into_iter().rev().collect::<Vec<_>>(), head);
        assert!(passages_of("let x = vec![1, 2, 3]; x.iter().map(|v| v * 2);").is_empty());
        assert!(passages_of("Too short to count.").is_empty());
    }

    #[test]
    fn queries_are_distinct_multi_word_headings() {
        let headings = [
            "Hash Maps",
            "Storing Keys with Values",
            "storing keys with values",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(queries_from(headings), vec!["Storing Keys with Values"]);
    }
}
