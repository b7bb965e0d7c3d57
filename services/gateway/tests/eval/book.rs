//! The first eval corpus: the Rust Book shipped with the toolchain docs. Every section (h1–h3
//! of a chapter page) is one document — its body, heading removed, as plain text — and its
//! heading is the query whose one relevant document is that body.

use std::path::{Path, PathBuf};

use super::Document;

/// The book's HTML directory: `THINKBANK_EVAL_BOOK_DIR`, the toolchain's docs, or the Debian
/// `rust-doc` package.
pub fn book_dir() -> PathBuf {
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
pub fn sections_of(html: &str) -> Vec<Document> {
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
            Document {
                id: heading.clone(),
                query: heading.clone(),
                body: html_to_text(&main[*end..next]),
            }
        })
        .collect()
}

/// Every section of the book with a unique heading and a body of at least `min_body` chars.
pub fn documents(min_body: usize) -> Vec<Document> {
    let dir = book_dir();
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ch") && n.ends_with(".html"))
        })
        .collect();
    pages.sort();
    let all: Vec<Document> = pages
        .iter()
        .flat_map(|p| sections_of(&std::fs::read_to_string(p).unwrap()))
        .collect();
    super::unique_queries(all)
        .into_iter()
        .filter(|s| s.body.chars().count() >= min_body)
        .collect()
}
#[test]
fn book_html_becomes_heading_and_plain_text_body() {
    let html = "<main><h2 id=\"a\"><a class=\"header\" href=\"#a\">Data &amp; Types</a></h2>\
                <p>Every value has a <code>type</code>.</p><pre><code>let x = 1 &lt; 2;</code></pre>\
                <h3 id=\"b\">Next</h3><p>More.</p></main>";
    let sections = sections_of(html);
    assert_eq!(sections.len(), 2);
    assert_eq!(sections[0].id, "Data & Types");
    assert_eq!(
        sections[0].body,
        "Every value has a type.\n\nlet x = 1 < 2;"
    );
    assert_eq!(sections[1].body, "More.");
}
