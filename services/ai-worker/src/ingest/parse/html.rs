//! HTML → Markdown-ish text: the main content only (scripts, styles, navigation, headers and
//! footers are dropped), headings as `#` lines so they stay structure, list items and table
//! rows on their own lines.

use scraper::{ElementRef, Html, Node};

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

pub fn to_markdown(html: &str) -> String {
    let document = Html::parse_document(html);
    // Prefer the main content when the page marks it.
    let root = ["main", "article", "body"]
        .iter()
        .filter_map(|tag| scraper::Selector::parse(tag).ok())
        .find_map(|selector| document.select(&selector).next())
        .unwrap_or_else(|| document.root_element());
    let mut out = String::new();
    walk(root, &mut out);
    tidy(&out)
}

fn walk(element: ElementRef<'_>, out: &mut String) {
    let name = element.value().name();
    if SKIPPED.contains(&name) {
        return;
    }
    if let Some(level) = heading_level(name) {
        let title = collapse(&element.text().collect::<String>());
        if !title.is_empty() {
            out.push_str(&format!("\n\n{} {title}\n\n", "#".repeat(level)));
        }
        return;
    }
    match name {
        "li" => out.push_str("\n- "),
        "td" | "th" => out.push_str(" | "),
        "pre" => out.push_str("\n\n"),
        _ => {}
    }
    for child in element.children() {
        match child.value() {
            Node::Text(text) => {
                if name == "pre" {
                    out.push_str(text);
                } else {
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
            }
            Node::Element(_) => {
                if let Some(child) = ElementRef::wrap(child) {
                    walk(child, out);
                }
            }
            _ => {}
        }
    }
    if BLOCKS.contains(&name) {
        out.push_str("\n\n");
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
    use super::to_markdown;

    #[test]
    fn keeps_headings_and_paragraphs_and_drops_chrome() {
        let html = r#"<!doctype html><html><head><title>T</title><style>p{}</style></head>
            <body><nav>Home | About</nav><main><h1>Guide</h1><p>First   paragraph
            with <b>bold</b> text.</p><h2>Steps</h2><ul><li>one</li><li>two</li></ul>
            <script>alert(1)</script></main><footer>© me</footer></body></html>"#;
        let md = to_markdown(html);
        assert_eq!(
            md,
            "# Guide\n\nFirst paragraph with bold text.\n\n## Steps\n\n- one\n- two"
        );
    }
}
