//! Detects an upload's format from its bytes. The client's file name and declared type are
//! only hints used to tell Markdown from plain text; binary formats are recognised by magic.

/// Formats the worker can index today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    PlainText,
    Markdown,
}

impl Format {
    pub fn media_type(self) -> &'static str {
        match self {
            Self::PlainText => "text/plain",
            Self::Markdown => "text/markdown",
        }
    }

    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            "text/plain" => Some(Self::PlainText),
            "text/markdown" => Some(Self::Markdown),
            _ => None,
        }
    }
}

/// Why bytes cannot be ingested; the message is shown to the uploader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SniffError {
    #[error("the file is empty")]
    Empty,
    #[error("unsupported media type '{0}' (supported: text/plain, text/markdown)")]
    Unsupported(&'static str),
    #[error(
        "the content is not valid UTF-8 text (invalid byte at offset {0}) and no supported format was recognised"
    )]
    NotUtf8(usize),
    #[error("the content contains NUL bytes; it looks like binary data, not text")]
    Binary,
}

const MAGIC: &[(&[u8], &str)] = &[
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
];

/// Detects the format of `bytes`, using `filename` and `declared` only to pick Markdown.
pub fn detect(bytes: &[u8], filename: &str, declared: &str) -> Result<Format, SniffError> {
    if bytes.is_empty() {
        return Err(SniffError::Empty);
    }
    if let Some((_, media_type)) = MAGIC.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return Err(SniffError::Unsupported(media_type));
    }
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Err(SniffError::Unsupported("image/webp"));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| SniffError::NotUtf8(e.valid_up_to()))?;
    if text.contains('\0') {
        return Err(SniffError::Binary);
    }
    let lower_name = filename.to_ascii_lowercase();
    let markdown_name = lower_name.ends_with(".md") || lower_name.ends_with(".markdown");
    let markdown_declared = declared.trim().eq_ignore_ascii_case("text/markdown");
    if markdown_name || markdown_declared || looks_like_markdown(text) {
        Ok(Format::Markdown)
    } else {
        Ok(Format::PlainText)
    }
}

/// ATX headings or fenced code near the start are a strong Markdown signal.
fn looks_like_markdown(text: &str) -> bool {
    text.lines().take(200).any(|line| {
        let line = line.trim_start();
        line.starts_with("```")
            || (line.starts_with('#') && line.trim_start_matches('#').starts_with(' '))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_content_is_rejected() {
        assert_eq!(detect(b"", "a.txt", ""), Err(SniffError::Empty));
    }

    #[test]
    fn invalid_utf8_names_the_offset() {
        assert_eq!(
            detect(b"ok\xff\xfe", "a.txt", "text/plain"),
            Err(SniffError::NotUtf8(2))
        );
    }

    #[test]
    fn binary_formats_are_named_even_with_a_text_extension() {
        assert_eq!(
            detect(b"%PDF-1.7 ...", "notes.txt", "text/plain"),
            Err(SniffError::Unsupported("application/pdf"))
        );
        assert_eq!(
            detect(b"\x89PNG\r\n\x1a\n....", "x.md", ""),
            Err(SniffError::Unsupported("image/png"))
        );
    }

    #[test]
    fn markdown_is_recognised_by_name_declaration_or_content() {
        assert_eq!(detect(b"plain words", "a.md", ""), Ok(Format::Markdown));
        assert_eq!(
            detect(b"plain words", "a", "text/markdown"),
            Ok(Format::Markdown)
        );
        assert_eq!(detect(b"# Title\n\nbody", "a", ""), Ok(Format::Markdown));
        assert_eq!(detect(b"#hashtag only", "a.txt", ""), Ok(Format::PlainText));
    }

    #[test]
    fn nul_bytes_mean_binary() {
        assert_eq!(detect(b"abc\0def", "a.txt", ""), Err(SniffError::Binary));
    }
}
