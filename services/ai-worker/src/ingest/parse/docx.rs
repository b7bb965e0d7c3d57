//! DOCX → Markdown: paragraphs in order, `Heading N` / `Title` styles as `#` headings, list
//! paragraphs as `- ` items. Decompression is bounded: a part larger than the limit (a zip
//! bomb, or a lying size header) fails the document instead of exhausting memory.

use std::io::{Cursor, Read};

use quick_xml::{Reader, events::Event};

use super::{ParseError, Parsed};

const DOCUMENT_PART: &str = "word/document.xml";

pub fn to_markdown(bytes: &[u8], max_xml_bytes: u64) -> Result<Parsed, ParseError> {
    let xml = read_part(bytes, DOCUMENT_PART, max_xml_bytes)?;
    let paragraphs = paragraphs(&xml)?;
    let mut text = String::new();
    for paragraph in paragraphs {
        let content = paragraph.text.trim();
        if content.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        match (paragraph.heading, paragraph.listed) {
            (Some(level), _) => text.push_str(&format!("{} {content}", "#".repeat(level))),
            (None, true) => text.push_str(&format!("- {content}")),
            (None, false) => text.push_str(content),
        }
    }
    Ok(Parsed::single(text, true))
}

fn read_part(bytes: &[u8], name: &str, limit: u64) -> Result<Vec<u8>, ParseError> {
    let invalid = |message: String| ParseError::Invalid(message);
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| invalid(format!("not a readable DOCX (zip): {e}")))?;
    let mut part = archive
        .by_name(name)
        .map_err(|e| invalid(format!("DOCX has no {name}: {e}")))?;
    if part.size() > limit {
        return Err(invalid(format!(
            "DOCX part {name} declares {} bytes uncompressed; the limit is {limit}",
            part.size()
        )));
    }
    let mut out = Vec::new();
    // Never trust the declared size: read at most one byte past the limit.
    part.by_ref()
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| invalid(format!("DOCX part {name} is corrupt: {e}")))?;
    if out.len() as u64 > limit {
        return Err(invalid(format!(
            "DOCX part {name} expands beyond {limit} bytes (zip bomb?)"
        )));
    }
    Ok(out)
}

#[derive(Debug, Default)]
struct Paragraph {
    text: String,
    heading: Option<usize>,
    listed: bool,
}

fn paragraphs(xml: &[u8]) -> Result<Vec<Paragraph>, ParseError> {
    let mut reader = Reader::from_reader(xml);
    let mut buffer = Vec::new();
    let mut out = Vec::new();
    let mut current: Option<Paragraph> = None;
    let mut in_text = false;
    loop {
        let event = reader
            .read_event_into(&mut buffer)
            .map_err(|e| ParseError::Invalid(format!("DOCX XML is malformed: {e}")))?;
        match event {
            Event::Start(e) | Event::Empty(e)
                if e.local_name().as_ref() == "p" && is_w(e.name().as_ref()) =>
            {
                current = Some(Paragraph::default());
            }
            Event::Start(e) | Event::Empty(e) => {
                let local = e.local_name();
                let Some(paragraph) = current.as_mut() else {
                    continue;
                };
                match local.as_ref() {
                    "t" => in_text = true,
                    "tab" => paragraph.text.push('\t'),
                    "br" | "cr" => paragraph.text.push('\n'),
                    "numPr" => paragraph.listed = true,
                    "pStyle" => {
                        let style = e
                            .attributes()
                            .flatten()
                            .find(|a| a.key.local_name().as_ref() == "val")
                            .map(|a| a.value.into_owned())
                            .unwrap_or_default();
                        paragraph.heading = heading_level(&style);
                        paragraph.listed |= style.to_ascii_lowercase().contains("list");
                    }
                    _ => {}
                }
            }
            Event::Text(t) if in_text => {
                if let Some(paragraph) = current.as_mut() {
                    paragraph.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) if in_text => {
                if let Some(paragraph) = current.as_mut() {
                    paragraph.text.push_str(&resolve_reference(r.as_ref()));
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "p" => {
                    if let Some(paragraph) = current.take() {
                        out.push(paragraph);
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        buffer.clear();
    }
    Ok(out)
}

fn is_w(name: &str) -> bool {
    name == "w:p" || name == "p"
}

/// `Heading1`…`Heading6` (Word's built-in style ids) and `Title`.
fn heading_level(style: &str) -> Option<usize> {
    let lower = style.to_ascii_lowercase();
    if lower == "title" {
        return Some(1);
    }
    let digits = lower.strip_prefix("heading")?;
    digits
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=6).contains(n))
}

/// The text of an XML entity or character reference (`amp`, `#38`, `#x26`).
fn resolve_reference(name: &str) -> String {
    let named = match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => None,
    };
    let numeric = || {
        let code = name.strip_prefix("#x").map_or_else(
            || name.strip_prefix('#').and_then(|d| d.parse::<u32>().ok()),
            |hex| u32::from_str_radix(hex, 16).ok(),
        )?;
        char::from_u32(code)
    };
    named.or_else(numeric).map(String::from).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn docx_with(document_xml: &str) -> Vec<u8> {
        let mut buffer = Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file(DOCUMENT_PART, options).unwrap();
        zip.write_all(document_xml.as_bytes()).unwrap();
        zip.finish().unwrap();
        buffer.into_inner()
    }

    #[test]
    fn headings_lists_and_entities_survive() {
        let xml = r#"<w:document xmlns:w="x"><w:body>
            <w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Plan</w:t></w:r></w:p>
            <w:p><w:r><w:t xml:space="preserve">Fish &amp; chips&#33; </w:t></w:r><w:r><w:t>today.</w:t></w:r></w:p>
            <w:p><w:pPr><w:numPr/></w:pPr><w:r><w:t>first item</w:t></w:r></w:p>
            </w:body></w:document>"#;
        let parsed = to_markdown(&docx_with(xml), 1 << 20).unwrap();
        assert_eq!(
            parsed.segments[0].text,
            "# Plan\n\nFish & chips! today.\n\n- first item"
        );
    }

    #[test]
    fn oversized_parts_are_refused() {
        let xml = format!(
            "<w:document><w:body><w:p><w:r><w:t>{}</w:t></w:r></w:p></w:body></w:document>",
            "a".repeat(5000)
        );
        let error = to_markdown(&docx_with(&xml), 1000).unwrap_err();
        assert!(error.to_string().contains("limit"), "{error}");
    }
}
