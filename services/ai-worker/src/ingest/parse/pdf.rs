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
        settings.tool_limits(),
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
    // Page sizes, read once and only when some page needs OCR.
    let mut sizes: Option<Vec<(f64, f64)>> = None;
    for (index, page_text) in pages.into_iter().enumerate() {
        let page = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let visible = page_text.chars().filter(|c| !c.is_whitespace()).count();
        let text = if visible >= MIN_TEXT_CHARS || ocr_pages >= settings.max_ocr_pages {
            page_text
        } else {
            ocr_pages += 1;
            if sizes.is_none() {
                sizes = Some(page_sizes(&input, settings).await?);
            }
            let size = sizes.as_deref().and_then(|s| s.get(index)).copied();
            let dpi = render_dpi(size, settings.max_image_pixels);
            ocr_page(&input, page, dpi, dir.path(), settings).await?
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

/// The resolution scanned pages are rendered at for OCR, unless that would exceed the pixel
/// budget.
const OCR_DPI: f64 = 200.0;

/// Width and height in points (1/72 in) of every page, from `pdfinfo`.
async fn page_sizes(
    input: &std::path::Path,
    settings: &ParseSettings,
) -> Result<Vec<(f64, f64)>, ParseError> {
    let output = command::run(
        &settings.pdfinfo,
        &[
            OsStr::new("-f"),
            OsStr::new("1"),
            OsStr::new("-l"),
            OsStr::new(&u32::MAX.to_string()),
            input.as_os_str(),
        ],
        settings.tool_limits(),
    )
    .await?;
    if !output.success {
        return Err(ParseError::Invalid(format!(
            "the PDF's page sizes cannot be read: {}",
            output.stderr.lines().next().unwrap_or("unknown error")
        )));
    }
    Ok(parse_page_sizes(&String::from_utf8_lossy(&output.stdout)))
}

/// Reads lines like `Page    3 size: 612 x 792 pts (letter)`, in page order.
fn parse_page_sizes(text: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter(|line| line.starts_with("Page") && line.contains(" size:"))
        .filter_map(|line| {
            let (_, size) = line.split_once(" size:")?;
            let mut words = size.split_whitespace();
            let width = words.next()?.parse().ok()?;
            let _x = words.next()?;
            let height = words.next()?.parse().ok()?;
            Some((width, height))
        })
        .collect()
}

/// [`OCR_DPI`], lowered so a page of `size` points renders to at most `max_pixels`. An
/// unknown size renders at the lowest resolution worth reading.
fn render_dpi(size: Option<(f64, f64)>, max_pixels: u64) -> u32 {
    const MIN_DPI: f64 = 10.0;
    let Some((width, height)) = size.filter(|(w, h)| *w > 0.0 && *h > 0.0) else {
        return MIN_DPI as u32;
    };
    let square_inches = (width / 72.0) * (height / 72.0);
    // A pixel budget needs no exactness: f64 is fine for any u64 here.
    let budget = (max_pixels as f64 / square_inches).sqrt();
    // Clamped to 1..=200 first, so the cast cannot truncate.
    budget.clamp(1.0, OCR_DPI).floor() as u32
}

async fn ocr_page(
    input: &std::path::Path,
    page: u32,
    dpi: u32,
    dir: &std::path::Path,
    settings: &ParseSettings,
) -> Result<String, ParseError> {
    let prefix = dir.join(format!("page-{page}"));
    let page_arg = page.to_string();
    let dpi_arg = dpi.to_string();
    let output = command::run(
        &settings.pdftoppm,
        &[
            OsStr::new("-f"),
            OsStr::new(&page_arg),
            OsStr::new("-l"),
            OsStr::new(&page_arg),
            OsStr::new("-r"),
            OsStr::new(&dpi_arg),
            OsStr::new("-gray"),
            OsStr::new("-png"),
            OsStr::new("-singlefile"),
            input.as_os_str(),
            prefix.as_os_str(),
        ],
        settings.tool_limits(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_come_from_pdfinfo_lines() {
        let text = "Pages:          2\nPage    1 size: 612 x 792 pts (letter)\n\
                    Page    1 rot:  0\nPage    2 size: 14400 x 14400 pts\n";
        assert_eq!(
            parse_page_sizes(text),
            vec![(612.0, 792.0), (14400.0, 14400.0)]
        );
    }

    #[test]
    fn huge_pages_render_within_the_pixel_budget() {
        // Letter at 200 dpi is 3.7 MP: well inside 100 MP.
        assert_eq!(render_dpi(Some((612.0, 792.0)), 100_000_000), 200);
        // A 200 × 200 inch page (PDF's maximum) would be 1.6 GP at 200 dpi.
        let dpi = render_dpi(Some((14400.0, 14400.0)), 100_000_000);
        let pixels = (200.0 * f64::from(dpi)).powi(2);
        assert!(pixels <= 100_000_000.0, "{dpi} dpi: {pixels} pixels");
        assert!(dpi >= 40, "{dpi}");
        assert_eq!(render_dpi(None, 100_000_000), 10);
    }
}
