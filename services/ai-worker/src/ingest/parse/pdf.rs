//! PDF → text per page with poppler's `pdftotext`. Pages without a text layer (scans) are
//! rendered with `pdftoppm` and read with Tesseract, up to a page budget.

use std::ffi::OsStr;

use super::{ParseError, ParseSettings, Parsed, Segment, command, image};

/// A page with fewer visible characters than this is treated as a scan.
const MIN_TEXT_CHARS: usize = 16;

pub async fn parse(bytes: &[u8], settings: &ParseSettings) -> Result<Parsed, ParseError> {
    let dir = tempfile::tempdir()
        .map_err(|e| ParseError::Invalid(format!("cannot create a temp dir: {e}")))?;
    let input = dir.path().join("input.pdf");
    tokio::fs::write(&input, bytes)
        .await
        .map_err(|e| ParseError::Invalid(format!("cannot write a temp file: {e}")))?;

    let output = command::run(
        &settings.pdftotext,
        &[
            OsStr::new("-enc"),
            OsStr::new("UTF-8"),
            input.as_os_str(),
            OsStr::new("-"),
        ],
        settings.tool_timeout,
    )
    .await?;
    if !output.success {
        let reason = output
            .stderr
            .lines()
            .next()
            .unwrap_or("unknown error")
            .to_owned();
        return Err(ParseError::Invalid(format!(
            "the PDF cannot be read: {reason}"
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    // pdftotext ends every page with a form feed.
    let mut pages: Vec<String> = text.split('\u{c}').map(str::to_owned).collect();
    if pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }

    let mut segments = Vec::with_capacity(pages.len());
    let mut ocr_pages = 0u32;
    for (index, page_text) in pages.into_iter().enumerate() {
        let page = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let visible = page_text.chars().filter(|c| !c.is_whitespace()).count();
        let text = if visible >= MIN_TEXT_CHARS || ocr_pages >= settings.max_ocr_pages {
            page_text
        } else {
            ocr_pages += 1;
            ocr_page(&input, page, dir.path(), settings).await?
        };
        segments.push(Segment {
            text: tidy(&text),
            page: Some(page),
        });
    }
    let mut info = serde_json::Map::new();
    info.insert("pages".into(), segments.len().into());
    info.insert("ocr_pages".into(), ocr_pages.into());
    Ok(Parsed {
        segments,
        markdown: false,
        info,
    })
}

async fn ocr_page(
    input: &std::path::Path,
    page: u32,
    dir: &std::path::Path,
    settings: &ParseSettings,
) -> Result<String, ParseError> {
    let prefix = dir.join(format!("page-{page}"));
    let page_arg = page.to_string();
    let output = command::run(
        &settings.pdftoppm,
        &[
            OsStr::new("-f"),
            OsStr::new(&page_arg),
            OsStr::new("-l"),
            OsStr::new(&page_arg),
            OsStr::new("-r"),
            OsStr::new("200"),
            OsStr::new("-gray"),
            OsStr::new("-png"),
            OsStr::new("-singlefile"),
            input.as_os_str(),
            prefix.as_os_str(),
        ],
        settings.tool_timeout,
    )
    .await?;
    if !output.success {
        return Err(ParseError::Invalid(format!(
            "page {page} of the PDF cannot be rendered for OCR: {}",
            output.stderr.lines().next().unwrap_or("unknown error")
        )));
    }
    let png = prefix.with_extension("png");
    image::ocr_file(&png, settings).await
}

/// Joins hard-wrapped lines of a paragraph and trims trailing space.
fn tidy(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}
