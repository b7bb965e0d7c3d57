//! Retrieval evaluation on a corpus nobody on the project wrote: the Rust Book shipped with the
//! toolchain docs. Every section (h1–h3 of a chapter page) becomes one document — its body,
//! heading removed, as plain text — and its heading becomes the query whose one relevant
//! document is that body. Everything goes through the public HTTP API of a live stack
//! (gateway + worker + PostgreSQL, in process), and each mode is scored with MRR@10,
//! nDCG@10, recall@1 and recall@10 over documents (a document's best chunk counts).
//!
//! In CI a sample of `THINKBANK_EVAL_SECTIONS` (default 60) sections, each cut to its first
//! `THINKBANK_EVAL_MAX_CHARS` (default 1200) characters to bound embedding time in a debug
//! build, runs as a regression guard: hybrid must not fall below the better single mode on
//! MRR@10. `make eval` runs every section in full, writes `bench/results/eval.json`
//! (`THINKBANK_EVAL_OUT`) and, with `THINKBANK_EVAL_SWEEP=1`, prints hybrid MRR@10 over a
//! grid of fusion settings (how the defaults were chosen).
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]
#![expect(clippy::expect_used, reason = "set-up failures say what is missing")]

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use reqwest::multipart;
use serde_json::{Value, json};
use thinkbank_testkit::{TestDatabase, spawn_gateway, spawn_worker};

const DEFAULT_SECTIONS: usize = 60;
const DEFAULT_MAX_CHARS: usize = 1200;
/// Bodies shorter than this carry too little to be a fair target.
const MIN_BODY_CHARS: usize = 300;
/// Chunks fetched per query, so that ten distinct documents are usually among them.
const FETCH: u32 = 50;
const CUTOFF: usize = 10;
const MODES: [&str; 3] = ["vector", "keyword", "hybrid"];

#[derive(Debug, Clone)]
struct Section {
    heading: String,
    body: String,
}

/// The book's HTML directory: `THINKBANK_EVAL_BOOK_DIR`, the toolchain's docs, or the Debian
/// `rust-doc` package.
fn book_dir() -> PathBuf {
    let mut candidates = Vec::new();
    if let Ok(dir) = std::env::var("THINKBANK_EVAL_BOOK_DIR") {
        candidates.push(PathBuf::from(dir));
    }
    if let Ok(out) = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
    {
        let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        candidates.push(Path::new(&sysroot).join("share/doc/rust/html/book"));
    }
    candidates.push(PathBuf::from("/usr/share/doc/rust-doc/html/book"));
    candidates.push(PathBuf::from("/usr/share/doc/rust/html/book"));
    candidates
        .into_iter()
        .find(|d| d.join("ch04-01-what-is-ownership.html").is_file())
        .expect(
            "the Rust Book is not installed: `rustup component add rust-docs`, or \
             `apt-get install rust-doc`, or set THINKBANK_EVAL_BOOK_DIR",
        )
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// HTML fragment → text: block ends become line breaks, tags go, entities are decoded.
fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            break;
        };
        let tag = rest[start + 1..start + end].to_ascii_lowercase();
        let name = tag
            .trim_start_matches('/')
            .split([' ', '\n'])
            .next()
            .unwrap_or("");
        if matches!(
            name,
            "p" | "pre" | "li" | "br" | "div" | "tr" | "blockquote"
        ) && (tag.starts_with('/') || name == "br")
        {
            out.push_str("\n\n");
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    let text = decode_entities(&out);
    let mut lines: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim_end) {
        if line.trim().is_empty() && lines.last().is_none_or(|l| l.trim().is_empty()) {
            continue;
        }
        lines.push(line);
    }
    lines.join("\n").trim().to_owned()
}

/// Sections of one chapter page, in order.
fn sections_of(html: &str) -> Vec<Section> {
    let Some(main_start) = html.find("<main>") else {
        return Vec::new();
    };
    let main_end = html[main_start..]
        .find("</main>")
        .map_or(html.len(), |i| main_start + i);
    let main = &html[main_start + 6..main_end];
    // (start of heading tag, end of closing tag, heading text)
    let mut headings = Vec::new();
    let mut offset = 0;
    while let Some(i) = main[offset..].find("<h") {
        let start = offset + i;
        let level = main.as_bytes().get(start + 2).copied().unwrap_or(b'x');
        if !(b'1'..=b'3').contains(&level) {
            offset = start + 2;
            continue;
        }
        let close = format!("</h{}>", char::from(level));
        let Some(end) = main[start..].find(&close).map(|j| start + j + close.len()) else {
            break;
        };
        headings.push((start, end, html_to_text(&main[start..end])));
        offset = end;
    }
    headings
        .iter()
        .enumerate()
        .map(|(i, (_, end, heading))| {
            let next = headings.get(i + 1).map_or(main.len(), |h| h.0);
            Section {
                heading: heading.clone(),
                body: html_to_text(&main[*end..next]),
            }
        })
        .collect()
}

/// Every usable section of the book: long enough, with a heading no other section shares.
fn book_sections(dir: &Path) -> Vec<Section> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ch") && n.ends_with(".html"))
        })
        .collect();
    pages.sort();
    let all: Vec<Section> = pages
        .iter()
        .flat_map(|p| sections_of(&std::fs::read_to_string(p).unwrap()))
        .collect();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for s in &all {
        *counts.entry(s.heading.to_lowercase()).or_default() += 1;
    }
    all.into_iter()
        .filter(|s| counts[&s.heading.to_lowercase()] == 1)
        .filter(|s| s.body.chars().count() >= MIN_BODY_CHARS)
        .collect()
}

/// `n` sections spread evenly over the book (all of them when `n` is at least their number).
fn sample(sections: Vec<Section>, n: usize) -> Vec<Section> {
    if n >= sections.len() {
        return sections;
    }
    (0..n)
        .map(|i| sections[i * sections.len() / n].clone())
        .collect()
}

#[derive(Debug, Default, Clone, Copy)]
struct Scores {
    mrr: f64,
    ndcg: f64,
    recall_1: f64,
    recall_10: f64,
}

impl Scores {
    /// Adds one query whose relevant document came at `rank` (1-based) or not at all.
    fn add(&mut self, rank: Option<usize>) {
        if let Some(rank) = rank.filter(|&r| r <= CUTOFF) {
            self.mrr += 1.0 / rank as f64;
            self.ndcg += 1.0 / (rank as f64 + 1.0).log2();
            self.recall_10 += 1.0;
            if rank == 1 {
                self.recall_1 += 1.0;
            }
        }
    }

    fn mean(self, n: usize) -> Self {
        let n = n as f64;
        Self {
            mrr: self.mrr / n,
            ndcg: self.ndcg / n,
            recall_1: self.recall_1 / n,
            recall_10: self.recall_10 / n,
        }
    }

    fn json(self) -> Value {
        let round = |x: f64| (x * 10_000.0).round() / 10_000.0;
        json!({"mrr@10": round(self.mrr), "ndcg@10": round(self.ndcg),
               "recall@1": round(self.recall_1), "recall@10": round(self.recall_10)})
    }
}

#[tokio::test]
async fn retrieval_eval_hybrid_is_not_worse_than_the_best_single_mode() {
    let n = match std::env::var("THINKBANK_EVAL_SECTIONS").as_deref() {
        Ok("all") => usize::MAX,
        Ok(n) => n
            .parse()
            .expect("THINKBANK_EVAL_SECTIONS is a number or 'all'"),
        Err(_) => DEFAULT_SECTIONS,
    };
    let max_chars = match std::env::var("THINKBANK_EVAL_MAX_CHARS").as_deref() {
        Ok("all") => usize::MAX,
        Ok(n) => n
            .parse()
            .expect("THINKBANK_EVAL_MAX_CHARS is a number or 'all'"),
        Err(_) => DEFAULT_MAX_CHARS,
    };
    let dir = book_dir();
    let mut sections = sample(book_sections(&dir), n);
    for section in &mut sections {
        if let Some((cut, _)) = section.body.char_indices().nth(max_chars) {
            section.body.truncate(cut);
        }
    }
    assert!(
        sections.len() >= 20,
        "too few sections in {}",
        dir.display()
    );

    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let gateway = spawn_gateway(&worker.url(), &db.url).await;
    let http = gateway.client();

    // Ingest through the public API: queue everything, then wait for READY.
    let started = Instant::now();
    let mut ids = Vec::with_capacity(sections.len());
    for (i, section) in sections.iter().enumerate() {
        let form = multipart::Form::new().part(
            "file",
            multipart::Part::bytes(section.body.clone().into_bytes())
                .file_name(format!("section-{i:04}.txt")),
        );
        let body: Value = http
            .post(gateway.url("/api/v1/assets"))
            .multipart(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(body["asset"]["id"].as_str().expect("asset id").to_owned());
    }
    let mut chunks = 0;
    for id in &ids {
        loop {
            let asset: Value = http
                .get(gateway.url(&format!("/api/v1/assets/{id}")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match asset["status"].as_str() {
                Some("ready") => {
                    chunks += asset["chunk_count"].as_u64().unwrap_or(0);
                    break;
                }
                Some("queued" | "processing") => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                other => panic!("asset {id} ended {other:?}: {asset}"),
            }
        }
    }
    eprintln!(
        "eval: {} sections, {chunks} chunks ingested in {:.1}s from {}",
        sections.len(),
        started.elapsed().as_secs_f64(),
        dir.display()
    );

    let mut results: BTreeMap<&str, Scores> = BTreeMap::new();
    for mode in MODES {
        let started = Instant::now();
        let scores = evaluate(
            &http,
            &gateway.url("/api/v1/search"),
            &sections,
            &ids,
            json!({"mode": mode}),
        )
        .await;
        eprintln!(
            "eval: {mode:<8} mrr@10 {:.4}  ndcg@10 {:.4}  recall@1 {:.4}  recall@10 {:.4}  ({:.1}s)",
            scores.mrr,
            scores.ndcg,
            scores.recall_1,
            scores.recall_10,
            started.elapsed().as_secs_f64()
        );
        results.insert(mode, scores);
    }
    if std::env::var("THINKBANK_EVAL_SWEEP").is_ok_and(|v| v == "1") {
        for rrf_k in [10, 30, 60, 100] {
            for keyword_weight in [0.5, 1.0, 1.5] {
                let fusion = json!({"rrf_k": rrf_k, "keyword_weight": keyword_weight});
                let scores = evaluate(
                    &http,
                    &gateway.url("/api/v1/search"),
                    &sections,
                    &ids,
                    json!({"mode": "hybrid", "fusion": fusion}),
                )
                .await;
                eprintln!(
                    "eval: sweep rrf_k {rrf_k:>3} keyword_weight {keyword_weight:.1}: mrr@10 {:.4} ndcg@10 {:.4}",
                    scores.mrr, scores.ndcg
                );
            }
        }
    }

    if let Ok(path) = std::env::var("THINKBANK_EVAL_OUT") {
        let report: serde_json::Map<String, Value> = results
            .iter()
            .map(|(mode, s)| ((*mode).to_owned(), s.json()))
            .collect();
        let path = PathBuf::from(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        let text = serde_json::to_string_pretty(&Value::Object(report)).unwrap();
        std::fs::write(&path, text + "\n").unwrap();
        eprintln!("eval: wrote {}", path.display());
    }

    let hybrid = results["hybrid"].mrr;
    let best_single = results["vector"].mrr.max(results["keyword"].mrr);
    assert!(
        hybrid >= best_single,
        "hybrid MRR@10 {hybrid:.4} fell below the best single mode {best_single:.4}"
    );
}

/// Scores one search configuration (`extra` is merged into every request) over all sections.
async fn evaluate(
    http: &reqwest::Client,
    url: &str,
    sections: &[Section],
    ids: &[String],
    extra: Value,
) -> Scores {
    let mut scores = Scores::default();
    for (section, relevant) in sections.iter().zip(ids) {
        let mut request = json!({"query": section.heading, "top_k": FETCH});
        if let (Some(request), Some(extra)) = (request.as_object_mut(), extra.as_object()) {
            request.extend(extra.clone());
        }
        let response = http.post(url).json(&request).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        // A heading of stop words only has no keyword query: it finds nothing.
        assert!(status.is_success() || status == 400, "{request}: {body}");
        let mut ranked: Vec<&str> = Vec::new();
        for hit in body["hits"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let asset = hit["asset_id"].as_str().unwrap_or_default();
            if !ranked.contains(&asset) {
                ranked.push(asset);
            }
        }
        scores.add(ranked.iter().position(|a| a == relevant).map(|p| p + 1));
    }
    scores.mean(sections.len())
}

#[test]
fn book_html_becomes_heading_and_plain_text_body() {
    let html = "<main><h2 id=\"a\"><a class=\"header\" href=\"#a\">Data &amp; Types</a></h2>\
                <p>Every value has a <code>type</code>.</p><pre><code>let x = 1 &lt; 2;</code></pre>\
                <h3 id=\"b\">Next</h3><p>More.</p></main>";
    let sections = sections_of(html);
    assert_eq!(sections.len(), 2);
    assert_eq!(sections[0].heading, "Data & Types");
    assert_eq!(
        sections[0].body,
        "Every value has a type.\n\nlet x = 1 < 2;"
    );
    assert_eq!(sections[1].body, "More.");
}
