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
          value_parser = thinkbank_common::duration::parse_duration)]
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
    /// poppler's pdfinfo (page sizes, so scanned pages render within the pixel budget).
    #[arg(long = "pdfinfo", env = "THINKBANK_PDFINFO", default_value = "pdfinfo")]
    pub pdfinfo: PathBuf,
    /// Longest the in-process parsers (HTML) may take on one document.
    #[arg(long = "parse-timeout", env = "THINKBANK_PARSE_TIMEOUT", default_value = "60s",
          value_parser = thinkbank_common::duration::parse_duration)]
    pub parse_timeout: Duration,
    /// Largest HTML document parsed (its tree costs several times its size in memory).
    #[arg(long = "max-html-bytes", env = "THINKBANK_MAX_HTML_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_html_bytes: usize,
    /// Largest output captured from one helper program run; past it the run is killed.
    #[arg(long = "max-tool-output-bytes", env = "THINKBANK_MAX_TOOL_OUTPUT_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_tool_output_bytes: usize,
    /// Address-space limit of each helper program (`RLIMIT_AS`), in bytes; 0 for none. Its CPU
    /// time is limited to the tool timeout.
    #[arg(long = "parse-tool-memory", env = "THINKBANK_PARSE_TOOL_MEMORY", default_value_t = 2 * 1024 * 1024 * 1024)]
    pub tool_memory_bytes: u64,
    /// Most characters of text one asset may yield.
    #[arg(
        long = "max-extracted-chars",
        env = "THINKBANK_MAX_EXTRACTED_CHARS",
        default_value_t = 20_000_000
    )]
    pub max_extracted_chars: usize,
    /// Most chunks one asset may be split into.
    #[arg(
        long = "max-chunks-per-asset",
        env = "THINKBANK_MAX_CHUNKS_PER_ASSET",
        default_value_t = 50_000
    )]
    pub max_chunks: usize,
    /// Most pixels of an image read by OCR, or of a scanned PDF page rendered for it (pages
    /// larger than this are rendered at a lower resolution).
    #[arg(
        long = "max-image-pixels",
        env = "THINKBANK_MAX_IMAGE_PIXELS",
        default_value_t = 100_000_000
    )]
    pub max_image_pixels: u64,
}

impl ParseSettings {
    /// The bounds of one helper program run.
    pub fn tool_limits(&self) -> command::Limits {
        command::Limits {
            timeout: self.tool_timeout,
            max_output_bytes: self.max_tool_output_bytes,
            max_memory_bytes: self.tool_memory_bytes,
        }
    }
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
            pdfinfo: "pdfinfo".into(),
            parse_timeout: Duration::from_secs(60),
            max_html_bytes: 32 * 1024 * 1024,
            max_tool_output_bytes: 64 * 1024 * 1024,
            tool_memory_bytes: 2 * 1024 * 1024 * 1024,
            max_extracted_chars: 20_000_000,
            max_chunks: 50_000,
            max_image_pixels: 100_000_000,
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
            if bytes.len() > settings.max_html_bytes {
                return Err(ParseError::Invalid(format!(
                    "the HTML document is {} bytes, over the limit of {} \
                     (THINKBANK_MAX_HTML_BYTES)",
                    bytes.len(),
                    settings.max_html_bytes
                )));
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let limit = settings.parse_timeout;
            let markdown = tokio::task::spawn_blocking(move || html::to_markdown(&text, limit))
                .await
                .map_err(|e| ParseError::Invalid(format!("HTML parser failed: {e}")))?
                .map_err(|e| ParseError::Invalid(e.to_string()))?;
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
    check_text_size(&parsed, settings.max_extracted_chars)?;
    Ok(parsed)
}

/// Fails a document whose text is longer than `limit` characters: past that its chunks and
/// vectors would cost more than any one asset may.
fn check_text_size(parsed: &Parsed, limit: usize) -> Result<(), ParseError> {
    let mut chars = 0usize;
    for segment in &parsed.segments {
        chars = chars.saturating_add(segment.text.chars().count());
        if chars > limit {
            return Err(ParseError::Invalid(format!(
                "the document has more than {limit} characters of text \
                 (limit THINKBANK_MAX_EXTRACTED_CHARS)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ParseSettings {
        ParseSettings {
            max_extracted_chars: 100,
            ..ParseSettings::default()
        }
    }

    #[tokio::test]
    async fn text_over_the_character_cap_fails_with_the_limit_named() {
        let bytes = Bytes::from("word ".repeat(21));
        let error = parse(Format::PlainText, bytes, &settings(), None)
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("more than 100 characters"), "{message}");
        assert!(
            message.contains("THINKBANK_MAX_EXTRACTED_CHARS"),
            "{message}"
        );
        let fits = Bytes::from("word ".repeat(20));
        assert!(
            parse(Format::PlainText, fits, &settings(), None)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn html_over_the_byte_cap_fails_before_parsing() {
        let settings = ParseSettings {
            max_html_bytes: 10,
            ..ParseSettings::default()
        };
        let bytes = Bytes::from("<p>eleven b</p>");
        let error = parse(Format::Html, bytes, &settings, None)
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("THINKBANK_MAX_HTML_BYTES"),
            "{error}"
        );
    }
}
