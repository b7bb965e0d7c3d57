//! The little Markdown the API's descriptions use, as HTML: headings, paragraphs, bullet
//! lists, fenced code, pipe tables, `code` and **bold**. Everything is escaped first, so a
//! description can never inject markup into `/docs`.

/// HTML-escapes `text`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `text` and renders `code` spans and **bold**.
pub fn inline(text: &str) -> String {
    let mut out = String::new();
    for (i, piece) in text.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(&escape(piece));
            out.push_str("</code>");
        } else {
            for (j, part) in piece.split("**").enumerate() {
                if j % 2 == 1 {
                    out.push_str("<strong>");
                    out.push_str(&escape(part));
                    out.push_str("</strong>");
                } else {
                    out.push_str(&escape(part));
                }
            }
        }
    }
    out
}

fn table_row(line: &str, cell: &str) -> String {
    let cells: Vec<String> = line
        .trim()
        .trim_matches('|')
        .split('|')
        .map(|c| format!("<{cell}>{}</{cell}>", inline(c.trim())))
        .collect();
    format!("<tr>{}</tr>", cells.concat())
}

/// Renders a Markdown document; headings start at `<h2>`, below the page's title.
pub fn block(text: &str) -> String {
    let mut html = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with("```") {
            html.push_str("<pre><code>");
            for code in lines.by_ref() {
                if code.trim_start().starts_with("```") {
                    break;
                }
                html.push_str(&escape(code));
                html.push('\n');
            }
            html.push_str("</code></pre>");
        } else if trimmed.starts_with('#') {
            let level = trimmed.chars().take_while(|c| *c == '#').count();
            let level = (level + 1).min(6);
            let title = trimmed.trim_start_matches('#').trim();
            html.push_str(&format!("<h{level}>{}</h{level}>", inline(title)));
        } else if trimmed.starts_with('|') {
            html.push_str("<table>");
            html.push_str(&table_row(trimmed, "th"));
            while let Some(row) = lines.next_if(|l| l.trim_start().starts_with('|')) {
                if !row.contains("---") {
                    html.push_str(&table_row(row, "td"));
                }
            }
            html.push_str("</table>");
        } else if let Some(item) = trimmed.strip_prefix("- ") {
            html.push_str("<ul>");
            let mut current = item.to_owned();
            while let Some(next) = lines.next_if(|l| !l.trim().is_empty()) {
                if let Some(item) = next.trim_start().strip_prefix("- ") {
                    html.push_str(&format!("<li>{}</li>", inline(&current)));
                    current = item.to_owned();
                } else {
                    current.push(' ');
                    current.push_str(next.trim());
                }
            }
            html.push_str(&format!("<li>{}</li></ul>", inline(&current)));
        } else {
            let mut paragraph = trimmed.to_owned();
            while let Some(next) = lines.next_if(|l| {
                let l = l.trim();
                !l.is_empty() && !l.starts_with('#') && !l.starts_with("```") && !l.starts_with('|')
            }) {
                paragraph.push(' ');
                paragraph.push_str(next.trim());
            }
            html.push_str(&format!("<p>{}</p>", inline(&paragraph)));
        }
    }
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_descriptions_is_escaped_not_rendered() {
        assert_eq!(
            inline("a <script>x</script> `<b>` **bold**"),
            "a &lt;script&gt;x&lt;/script&gt; <code>&lt;b&gt;</code> <strong>bold</strong>"
        );
    }

    #[test]
    fn blocks_become_headings_lists_tables_and_code() {
        let html = block(
            "# Title\n\ntext\nmore\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```\nx < y\n```\n",
        );
        assert_eq!(
            html,
            "<h2>Title</h2><p>text more</p><ul><li>one</li><li>two</li></ul>\
             <table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>\
             <pre><code>x &lt; y\n</code></pre>"
        );
    }
}
