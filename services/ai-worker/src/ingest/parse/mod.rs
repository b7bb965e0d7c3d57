//! Turns stored bytes into text segments ready for chunking.
//!
//! Every parser returns `Parsed`: text in document order, split into segments that never span
//! a page, so chunks keep their page numbers. HTML and DOCX are rendered as Markdown so their
//! headings survive as structure. Parsing failures are the document's fault (corrupt, empty,
//! too large when decompressed) and are reported to the uploader as the asset's error.

mod command;
mod docx;
pub mod html;
mod image;
mod pdf;

use std::{path::PathBuf, time::Duration};

use bytes::Bytes;

use super::sniff::Format;

pub use command::ToolError;

/// One run of text; `page` is 1-based for paged formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub text: String,
    pub page: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub segments: Vec<Segment>,
    /// True when the text is Markdown (headings, lists) and should be split as such.
    pub markdown: bool,
    /// Facts found while parsing (page count, image size, whether OCR ran), merged into the
    /// asset's metadata under `"document"`.
    pub info: serde_json::Map<String, serde_json::Value>,
}

impl Parsed {
    fn single(text: String, markdown: bool) -> Self {
        Self {
            segments: vec![Segment { text, page: None }],
            markdown,
            info: serde_json::Map::new(),
        }
    }

    /// True when no segment holds a visible character.
    pub fn is_blank(&self) -> bool {
        self.segments.iter().all(|s| s.text.trim().is_empty())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The document itself is unusable; retrying cannot help.
    #[error("{0}")]
    Invalid(String),
    /// A helper program is missing or failed in a way that is not the document's fault.
    #[error(transparent)]
    Tool(#[from] ToolError),
}

/// External programs and limits used by the parsers (flattened into the worker's `Config`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ParseSettings {
    /// poppler's pdftotext (PDF text layer).
    #[arg(
        long = "pdftotext",
        env = "THINKBANK_PDFTOTEXT",
        default_value = "pdftotext"
    )]
    pub pdftotext: PathBuf,
    /// poppler's pdftoppm (renders scanned PDF pages for OCR).
    #[arg(
        long = "pdftoppm",
        env = "THINKBANK_PDFTOPPM",
        default_value = "pdftoppm"
    )]
    pub pdftoppm: PathBuf,
    /// Tesseract OCR.
    #[arg(
        long = "tesseract",
        env = "THINKBANK_TESSERACT",
        default_value = "tesseract"
    )]
    pub tesseract: PathBuf,
    /// Tesseract language(s), e.g. "eng" or "eng+deu" (their traineddata must be installed).
    #[arg(
        long = "ocr-languages",
        env = "THINKBANK_OCR_LANGUAGES",
        default_value = "eng"
    )]
    pub ocr_languages: String,
    /// Longest any single tool run may take.
    #[arg(long = "parse-tool-timeout", env = "THINKBANK_PARSE_TOOL_TIMEOUT", default_value = "120s",
          value_parser = crate::config::parse_duration)]
    pub tool_timeout: Duration,
    /// Pages of one PDF that may be OCR'd (scanned documents are slow).
    #[arg(
        long = "max-ocr-pages",
        env = "THINKBANK_MAX_OCR_PAGES",
        default_value_t = 100
    )]
    pub max_ocr_pages: u32,
    /// Largest decompressed size of a DOCX part (zip-bomb guard).
    #[arg(long = "max-docx-xml-bytes", env = "THINKBANK_MAX_DOCX_XML_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_docx_xml_bytes: u64,
}

impl Default for ParseSettings {
    fn default() -> Self {
        Self {
            pdftotext: "pdftotext".into(),
            pdftoppm: "pdftoppm".into(),
            tesseract: "tesseract".into(),
            ocr_languages: "eng".into(),
            tool_timeout: Duration::from_secs(120),
            max_ocr_pages: 100,
            max_docx_xml_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Parses `bytes` of `format`. With a `vision` model, images are also described by it.
pub async fn parse(
    format: Format,
    bytes: Bytes,
    settings: &ParseSettings,
    vision: Option<&crate::llm::Llm>,
) -> Result<Parsed, ParseError> {
    let parsed = match format {
        Format::PlainText | Format::Markdown => {
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|e| ParseError::Invalid(format!("content is not valid UTF-8: {e}")))?;
            Parsed::single(text, format == Format::Markdown)
        }
        Format::Html => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let markdown = tokio::task::spawn_blocking(move || html::to_markdown(&text))
                .await
                .map_err(|e| ParseError::Invalid(format!("HTML parser failed: {e}")))?;
            Parsed::single(markdown, true)
        }
        Format::Docx => {
            let limit = settings.max_docx_xml_bytes;
            tokio::task::spawn_blocking(move || docx::to_markdown(&bytes, limit))
                .await
                .map_err(|e| ParseError::Invalid(format!("DOCX parser failed: {e}")))??
        }
        Format::Pdf => pdf::parse(&bytes, settings).await?,
        Format::Png | Format::Jpeg | Format::Gif | Format::Webp => {
            image::parse(format, &bytes, settings, vision).await?
        }
    };
    if parsed.is_blank() {
        return Err(ParseError::Invalid(
            "the document contains no text to index".into(),
        ));
    }
    Ok(parsed)
}
