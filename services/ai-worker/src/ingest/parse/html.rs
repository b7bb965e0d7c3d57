//! HTML → Markdown-ish text: the main content only (scripts, styles, navigation, headers and
//! footers are dropped), headings as `#` lines so they stay structure, list items and table
//! rows on their own lines.
//!
//! Bounded for hostile input: nothing recurses, nesting is capped at [`MAX_DEPTH`], and a time
//! limit is checked while parsing and walking. The input size is capped by the caller.

use std::time::{Duration, Instant};

use ego_tree::NodeRef;
use html5ever::tendril::{StrTendril, TendrilSink as _};
use scraper::{ElementRef, Html, HtmlTreeSink, Node};

/// Elements whose content is never document text.
const SKIPPED: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "nav", "header", "footer", "aside", "form",
    "button", "iframe", "head",
];
/// Elements that end a line.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "br",
    "tr",
    "table",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "pre",
    "blockquote",
    "figure",
    "figcaption",
    "hr",
];

/// Bytes fed to the HTML parser at a time; depth and deadline are checked between pieces.
/// Small enough that one piece cannot nest much past [`MAX_DEPTH`] (each level costs a tag).
const FEED_BYTES: usize = 8 * 1024;
/// Deepest element nesting read. Real pages stay far below (browsers stop nesting at 512
/// too); past it html5ever's scope checks, which scan the open elements on every tag, turn
/// quadratic: 100 000 nested `<div>`s would take minutes.
pub const MAX_DEPTH: usize = 512;
/// Nodes visited between two deadline checks of the walk.
const CHECK_EVERY_NODES: usize = 4096;

/// Why an HTML document cannot be read; the message is shown to the uploader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HtmlError {
    #[error("reading the HTML took longer than {} s (limit THINKBANK_PARSE_TIMEOUT)", .0.as_secs())]
    TooSlow(Duration),
    #[error("the HTML nests elements more than {MAX_DEPTH} levels deep")]
    TooDeep,
}

/// Renders `html` as Markdown-ish text, giving up once `time_limit` has passed or the nesting
/// passes [`MAX_DEPTH`].
///
/// Nothing here recurses: the parser keeps its open elements in a vector, and the walk below
/// keeps its own stack, so depth costs heap, never the blocking thread's 2 MiB stack (a
/// recursive walk overflowed it on `<div>` × 100 000 and aborted the whole worker).
pub fn to_markdown(html: &str, time_limit: Duration) -> Result<String, HtmlError> {
    let started = Instant::now();
    let over = || started.elapsed() > time_limit;
    let mut parser = html5ever::driver::parse_document(
        HtmlTreeSink::new(Html::new_document()),
        html5ever::driver::ParseOpts::default(),
    );
    let mut rest = html;
    while !rest.is_empty() {
        let mut cut = rest.len().min(FEED_BYTES);
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (piece, tail) = rest.split_at(cut);
        parser.process(StrTendril::from_slice(piece));
        rest = tail;
        if over() {
            return Err(HtmlError::TooSlow(time_limit));
        }
        if insertion_depth(&parser.tokenizer.sink.sink) > MAX_DEPTH {
            return Err(HtmlError::TooDeep);
        }
    }
    let document = parser.finish();
    // Prefer the main content when the page marks it.
    let root = ["main", "article", "body"]
        .iter()
        .filter_map(|tag| scraper::Selector::parse(tag).ok())
        .find_map(|selector| document.select(&selector).next())
        .unwrap_or_else(|| document.root_element());
    let mut out = String::new();
    let mut stack = vec![Step::Open(*root)];
    let mut visited = 0usize;
    while let Some(step) = stack.pop() {
        visited += 1;
        if visited.is_multiple_of(CHECK_EVERY_NODES) && over() {
            return Err(HtmlError::TooSlow(time_limit));
        }
        match step {
            Step::Close(name) => {
                if BLOCKS.contains(&name) {
                    out.push_str("\n\n");
                }
            }
            Step::Text { text, in_pre } => push_text(&mut out, text, in_pre),
            Step::Open(node) => {
                let Some(element) = ElementRef::wrap(node) else {
                    continue;
                };
                if open(element, &mut out) {
                    let name = element.value().name();
                    stack.push(Step::Close(name));
                    // Reversed, so the first child is popped first.
                    for child in node.children().rev() {
                        match child.value() {
                            Node::Text(text) => stack.push(Step::Text {
                                text,
                                in_pre: name == "pre",
                            }),
                            Node::Element(_) => stack.push(Step::Open(child)),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    Ok(tidy(&out))
}

/// Depth of the node created last, which sits where the parser is inserting: about as deep
/// as its stack of open elements.
fn insertion_depth(sink: &HtmlTreeSink) -> usize {
    let html = sink.0.borrow();
    html.tree
        .nodes()
        .next_back()
        .map_or(0, |node| node.ancestors().count())
}

/// One step of the walk: enter an element, write a text node, or leave an element.
enum Step<'a> {
    Open(NodeRef<'a, Node>),
    Text { text: &'a str, in_pre: bool },
    Close(&'a str),
}

/// Writes what an element contributes before its children; false when its children are not
/// document text (skipped chrome, or a heading already written whole).
fn open(element: ElementRef<'_>, out: &mut String) -> bool {
    let name = element.value().name();
    if SKIPPED.contains(&name) {
        return false;
    }
    if let Some(level) = heading_level(name) {
        let title = collapse(&element.text().collect::<String>());
        if !title.is_empty() {
            out.push_str(&format!("\n\n{} {title}\n\n", "#".repeat(level)));
        }
        return false;
    }
    match name {
        "li" => out.push_str("\n- "),
        "td" | "th" => out.push_str(" | "),
        "pre" => out.push_str("\n\n"),
        _ => {}
    }
    true
}

fn push_text(out: &mut String, text: &str, in_pre: bool) {
    if in_pre {
        out.push_str(text);
        return;
    }
    let collapsed = collapse(text);
    if !collapsed.is_empty() {
        if !out.ends_with([' ', '\n']) && text.starts_with(char::is_whitespace) {
            out.push(' ');
        }
        out.push_str(&collapsed);
        if text.ends_with(char::is_whitespace) {
            out.push(' ');
        }
    }
}

fn heading_level(name: &str) -> Option<usize> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Trims every line and keeps at most one blank line between paragraphs.
fn tidy(text: &str) -> String {
    let mut out = String::new();
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        let line = line.trim_start_matches(' ');
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_headings_and_paragraphs_and_drops_chrome() {
        let html = r#"<!doctype html><html><head><title>T</title><style>p{}</style></head>
            <body><nav>Home | About</nav><main><h1>Guide</h1><p>First   paragraph
            with <b>bold</b> text.</p><h2>Steps</h2><ul><li>one</li><li>two</li></ul>
            <script>alert(1)</script></main><footer>© me</footer></body></html>"#;
        let md = to_markdown(html, Duration::from_secs(10)).unwrap();
        assert_eq!(
            md,
            "# Guide\n\nFirst paragraph with bold text.\n\n## Steps\n\n- one\n- two"
        );
    }
}

#[cfg(test)]
mod deep {
    use super::*;

    /// Runs on a thread with the blocking pool's 2 MiB stack, which the old recursive walk
    /// overflowed (aborting the worker).
    fn on_small_stack(html: String) -> Result<String, HtmlError> {
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || to_markdown(&html, Duration::from_secs(60)))
            .unwrap()
            .join()
            .unwrap()
    }

    fn nested(depth: usize) -> String {
        format!(
            "{}deep text{}",
            "<div>".repeat(depth),
            "</div>".repeat(depth)
        )
    }

    #[test]
    fn nesting_a_hundred_thousand_deep_fails_fast_with_a_reason() {
        let started = Instant::now();
        let error = on_small_stack(nested(100_000)).unwrap_err();
        assert_eq!(error, HtmlError::TooDeep);
        assert!(error.to_string().contains("512 levels"), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn nesting_up_to_the_limit_is_read_without_recursion() {
        // Every level below the cap is walked, and the text at the bottom survives.
        let md = on_small_stack(nested(MAX_DEPTH - 4)).unwrap();
        assert_eq!(md, "deep text");
    }

    #[test]
    fn a_document_slower_than_the_limit_fails_with_a_reason() {
        let html = "<p>x</p>".repeat(100_000);
        let error = to_markdown(&html, Duration::ZERO).unwrap_err();
        assert!(
            error.to_string().contains("THINKBANK_PARSE_TIMEOUT"),
            "{error}"
        );
    }
}
