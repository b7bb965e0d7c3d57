//! The second eval corpus: the Linux man-pages shipped by Debian's `manpages` and
//! `manpages-dev` packages (reference pages nobody on the project wrote). A page is one
//! document: its roff source rendered to Markdown (`# name(section)`, `## SECTION`), without
//! its NAME section, whose one-line description is the page's known-item query ("open and
//! possibly create a file" → `open(2)`).

use std::path::{Path, PathBuf};

use super::Document;

/// Characters of a page the full evaluation keeps: the synopsis and the start of the
/// description, where a reader decides whether this is the page. (Whole pages — open(2) alone
/// is 50,000 characters — would triple the evaluation's embedding time for little signal.)
pub const MAX_CHARS: usize = 4000;

/// Where the pages are: `THINKBANK_EVAL_MAN_DIR` (a directory of `*.N.gz` files) or the files
/// `dpkg` lists for the two packages.
pub fn page_files() -> Vec<PathBuf> {
    if let Ok(dir) = std::env::var("THINKBANK_EVAL_MAN_DIR") {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("THINKBANK_EVAL_MAN_DIR {dir}: {e}"))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        return files;
    }
    let out = std::process::Command::new("dpkg")
        .args(["-L", "manpages", "manpages-dev"])
        .output()
        .unwrap_or_else(|e| panic!("dpkg -L manpages manpages-dev: {e}"));
    let mut files: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("/usr/share/man/man") && l.ends_with(".gz"))
        .map(PathBuf::from)
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file()))
        .collect();
    files.sort();
    assert!(
        files.len() > 500,
        "the man pages are not installed: `apt-get install manpages manpages-dev` (found {})",
        files.len()
    );
    files
}

fn read_gz(path: &Path) -> String {
    let out = std::process::Command::new("gzip")
        .args(["-dc"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("gzip -dc {}: {e}", path.display()));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every page that renders, whatever its description.
pub fn all_pages() -> Vec<Document> {
    page_files()
        .iter()
        .filter_map(|p| render(&read_gz(p)))
        .collect()
}

/// Every page with a unique description and a body of at least `min_body` characters.
pub fn documents(min_body: usize) -> Vec<Document> {
    let pages: Vec<Document> = page_files()
        .iter()
        .filter_map(|p| render(&read_gz(p)))
        .collect();
    super::unique_queries(pages)
        .into_iter()
        .filter(|d| d.body.chars().count() >= min_body)
        .collect()
}

/// Splits roff arguments: space-separated, with double quotes grouping.
fn args(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' | '\t' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            _ => {
                current.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(current);
    }
    out
}

/// Roff escapes to text: fonts and sizes go, special characters become their characters.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('f') => match chars.next() {
                Some('(') => {
                    chars.next();
                    chars.next();
                }
                Some('[') => {
                    for c in chars.by_ref() {
                        if c == ']' {
                            break;
                        }
                    }
                }
                _ => {}
            },
            Some('s') => {
                if matches!(chars.peek(), Some('-' | '+')) {
                    chars.next();
                }
                while chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                }
            }
            Some('(') => {
                let name: String = chars.by_ref().take(2).collect();
                out.push_str(special(&name));
            }
            Some('[') => {
                let mut name = String::new();
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    name.push(c);
                }
                out.push_str(special(&name));
            }
            Some('*') => {
                let name: String = match chars.next() {
                    Some('(') => chars.by_ref().take(2).collect(),
                    Some('[') => chars.by_ref().take_while(|&c| c != ']').collect(),
                    Some(c) => c.to_string(),
                    None => String::new(),
                };
                out.push_str(match name.as_str() {
                    "lq" | "rq" => "\"",
                    "R" => "®",
                    _ => "",
                });
            }
            Some('-') => out.push('-'),
            Some('e' | '\\') => out.push('\\'),
            Some(' ' | '~') => out.push(' '),
            Some('&' | '|' | '^' | '%' | 'c' | ':' | ')') | None => {}
            Some(other) => out.push(other),
        }
    }
    out
}

fn special(name: &str) -> &'static str {
    match name {
        "aq" => "'",
        "dq" => "\"",
        "em" => "—",
        "en" => "–",
        "bu" => "•",
        "mi" | "hy" => "-",
        "rs" => "\\",
        "lq" | "rq" => "\"",
        "oq" | "cq" => "'",
        "ga" => "`",
        "ti" | "a~" => "~",
        "ha" | "a^" => "^",
        "co" => "©",
        "mu" => "×",
        "<=" => "≤",
        ">=" => "≥",
        "->" => "→",
        _ => "",
    }
}

/// One page: `None` for include stubs (`.so`) and pages without a NAME description.
pub fn render(source: &str) -> Option<Document> {
    let mut title = String::new();
    let mut section = String::new();
    let mut in_name = false;
    let mut name_line = String::new();
    let mut body = String::new();
    let mut paragraph = String::new();
    let flush = |paragraph: &mut String, body: &mut String| {
        let text = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        if !text.is_empty() {
            body.push_str(&text);
            body.push_str("\n\n");
        }
        paragraph.clear();
    };
    let mut no_fill = false;
    for raw in source.lines() {
        if raw.starts_with(".\\\"") || raw.starts_with("'\\\"") || raw.starts_with(".so ") {
            if raw.starts_with(".so ") {
                return None;
            }
            continue;
        }
        let (macro_name, rest) = match raw.strip_prefix('.').or_else(|| raw.strip_prefix('\'')) {
            Some(m) => {
                let m = m.trim_start();
                let (name, rest) = m.split_once([' ', '\t']).unwrap_or((m, ""));
                (Some(name), rest)
            }
            None => (None, raw),
        };
        let text = match macro_name {
            None => unescape(rest),
            Some("TH") => {
                let a = args(rest);
                title = a.first().cloned().unwrap_or_default();
                section = a.get(1).cloned().unwrap_or_default();
                continue;
            }
            Some("SH" | "SS") => {
                flush(&mut paragraph, &mut body);
                let heading = unescape(&args(rest).join(" "));
                in_name = heading.eq_ignore_ascii_case("NAME");
                if !in_name {
                    let level = if macro_name == Some("SH") {
                        "##"
                    } else {
                        "###"
                    };
                    body.push_str(&format!("{level} {heading}\n\n"));
                }
                continue;
            }
            Some("B" | "I" | "SM" | "SB") => unescape(&args(rest).join(" ")),
            Some("BR" | "RB" | "IR" | "RI" | "BI" | "IB") => unescape(&args(rest).concat()),
            Some("IP") => {
                flush(&mut paragraph, &mut body);
                unescape(args(rest).first().map_or("", String::as_str))
            }
            Some("nf" | "EX") => {
                flush(&mut paragraph, &mut body);
                no_fill = true;
                continue;
            }
            Some("fi" | "EE") => {
                flush(&mut paragraph, &mut body);
                no_fill = false;
                continue;
            }
            Some("PP" | "LP" | "P" | "TP" | "TQ" | "HP" | "sp" | "br" | "RS" | "RE") => {
                flush(&mut paragraph, &mut body);
                continue;
            }
            Some(_) => continue,
        };
        if in_name {
            name_line.push(' ');
            name_line.push_str(&text);
            continue;
        }
        paragraph.push(' ');
        paragraph.push_str(&text);
        if no_fill {
            paragraph.push('\n');
            flush(&mut paragraph, &mut body);
        }
    }
    flush(&mut paragraph, &mut body);
    let (_, description) = name_line.split_once(" - ")?;
    let description = description.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.is_empty() || description.is_empty() {
        return None;
    }
    let id = format!("{title}({section})");
    Some(Document {
        body: format!("# {id}\n\n{}", body.trim_end()),
        query: description,
        id,
    })
}

#[test]
fn a_roff_page_becomes_markdown_without_its_name_section() {
    let page = ".\\\" comment\n.TH open 2 2023-02-05 \"Linux man-pages 6.03\"\n.SH NAME\nopen, creat \\- open and possibly create a file\n.SH SYNOPSIS\n.nf\n.B #include <fcntl.h>\n.fi\n.SH DESCRIPTION\nThe\n.BR open ()\nsystem call opens \\fIpathname\\fP\\(emsee\n.BR close (2).\n.PP\nIt returns \\-1 on error.\n";
    let doc = render(page).unwrap();
    assert_eq!(doc.id, "open(2)");
    assert_eq!(doc.query, "open and possibly create a file");
    assert_eq!(
        doc.body,
        "# open(2)\n\n## SYNOPSIS\n\n#include <fcntl.h>\n\n## DESCRIPTION\n\nThe open() system call opens pathname—see close(2).\n\nIt returns -1 on error."
    );
    assert!(render(".so man2/open.2\n").is_none());
}
