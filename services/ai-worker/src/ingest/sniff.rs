//! Detects an upload's format from its bytes. The client's file name and declared type are
//! only hints used to tell Markdown and HTML from plain text; binary formats are recognised by
//! their signatures, and a ZIP is only DOCX when it holds `word/document.xml`.

use std::{
    io::{Cursor, Read},
    path::Path,
};

/// Formats the worker can index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    PlainText,
    Markdown,
    Html,
    Pdf,
    Docx,
    Png,
    Jpeg,
    Gif,
    Webp,
}

const DOCX_MEDIA_TYPE: &str =
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

impl Format {
    pub fn media_type(self) -> &'static str {
        match self {
            Self::PlainText => "text/plain",
            Self::Markdown => "text/markdown",
            Self::Html => "text/html",
            Self::Pdf => "application/pdf",
            Self::Docx => DOCX_MEDIA_TYPE,
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }

    pub fn from_media_type(media_type: &str) -> Option<Self> {
        ALL.into_iter().find(|f| f.media_type() == media_type)
    }

    pub fn is_image(self) -> bool {
        matches!(self, Self::Png | Self::Jpeg | Self::Gif | Self::Webp)
    }
}

const ALL: [Format; 9] = [
    Format::PlainText,
    Format::Markdown,
    Format::Html,
    Format::Pdf,
    Format::Docx,
    Format::Png,
    Format::Jpeg,
    Format::Gif,
    Format::Webp,
];

/// Why bytes cannot be ingested; the message is shown to the uploader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SniffError {
    #[error("the file is empty")]
    Empty,
    #[error(
        "unsupported media type '{0}' (supported: text/plain, text/markdown, text/html, \
         application/pdf, DOCX, image/png, image/jpeg, image/gif, image/webp)"
    )]
    Unsupported(&'static str),
    #[error(
        "the content is not valid UTF-8 text (invalid byte at offset {0}) and no supported \
         format was recognised"
    )]
    NotUtf8(usize),
    #[error("the content contains NUL bytes; it looks like binary data, not text")]
    Binary,
    #[error("the uploaded content cannot be read back: {0}")]
    Unreadable(String),
}

/// Binary signatures: the format, or the media type of a recognised but unsupported format.
const MAGIC: &[(&[u8], Result<Format, &'static str>)] = &[
    (b"%PDF-", Ok(Format::Pdf)),
    (b"\x89PNG\r\n\x1a\n", Ok(Format::Png)),
    (b"\xff\xd8\xff", Ok(Format::Jpeg)),
    (b"GIF87a", Ok(Format::Gif)),
    (b"GIF89a", Ok(Format::Gif)),
    (b"\x1f\x8b", Err("application/gzip")),
    (b"7z\xbc\xaf\x27\x1c", Err("application/x-7z-compressed")),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        Err("application/x-ole-storage"),
    ),
    (b"II*\x00", Err("image/tiff")),
    (b"MM\x00*", Err("image/tiff")),
    (b"\x7fELF", Err("application/x-executable")),
];

/// Detects the format of `bytes`, using `filename` and `declared` only for text flavours.
pub fn detect(bytes: &[u8], filename: &str, declared: &str) -> Result<Format, SniffError> {
    classify(
        bytes,
        || is_docx(bytes),
        || validate_text(Cursor::new(bytes)),
        filename,
        declared,
    )
}

/// Bytes of a file's head used for signatures and for telling Markdown and HTML from text.
const HEAD_BYTES: usize = 64 * 1024;

/// Detects the format of a file on disk without reading it into memory: the signature from
/// its head, DOCX from the zip directory, and for text, UTF-8 validity over the whole file in
/// blocks.
pub fn detect_file(path: &Path, filename: &str, declared: &str) -> Result<Format, SniffError> {
    let io = |e: std::io::Error| SniffError::Unreadable(e.to_string());
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    file.by_ref()
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    classify(
        &head,
        || {
            std::fs::File::open(path)
                .ok()
                .and_then(|f| zip::ZipArchive::new(f).ok())
                .is_some_and(|archive| archive.index_for_name("word/document.xml").is_some())
        },
        || validate_text(std::fs::File::open(path).map_err(io)?),
        filename,
        declared,
    )
}

/// The one decision procedure: signatures on `head`, then the ZIP/DOCX check, then text.
fn classify(
    head: &[u8],
    is_docx: impl FnOnce() -> bool,
    validate_text: impl FnOnce() -> Result<(), SniffError>,
    filename: &str,
    declared: &str,
) -> Result<Format, SniffError> {
    if head.is_empty() {
        return Err(SniffError::Empty);
    }
    if let Some((_, format)) = MAGIC.iter().find(|(magic, _)| head.starts_with(magic)) {
        return (*format).map_err(SniffError::Unsupported);
    }
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Ok(Format::Webp);
    }
    if head.starts_with(b"PK\x03\x04") {
        return if is_docx() {
            Ok(Format::Docx)
        } else {
            Err(SniffError::Unsupported("application/zip"))
        };
    }
    validate_text()?;
    // The head may end inside a character; its valid prefix is enough to judge the flavour.
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default(),
    };
    let lower_name = filename.to_ascii_lowercase();
    let declared = declared.trim().to_ascii_lowercase();
    if looks_like_html(text, &lower_name, &declared) {
        return Ok(Format::Html);
    }
    let markdown_name = lower_name.ends_with(".md") || lower_name.ends_with(".markdown");
    if markdown_name || declared == "text/markdown" || looks_like_markdown(text) {
        Ok(Format::Markdown)
    } else {
        Ok(Format::PlainText)
    }
}

/// Checks that a stream is UTF-8 without NUL bytes, block by block; a character split across
/// two blocks is carried over, and errors report the absolute byte offset.
fn validate_text(mut reader: impl Read) -> Result<(), SniffError> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    let mut offset = 0usize;
    loop {
        let read = reader
            .read(&mut buffer)
            .map_err(|e| SniffError::Unreadable(e.to_string()))?;
        if read == 0 {
            break;
        }
        let mut block = std::mem::take(&mut carry);
        block.extend_from_slice(&buffer[..read]);
        let valid = match std::str::from_utf8(&block) {
            Ok(_) => block.len(),
            Err(e) if e.error_len().is_some() => {
                if block[..e.valid_up_to()].contains(&0) {
                    return Err(SniffError::Binary);
                }
                return Err(SniffError::NotUtf8(offset + e.valid_up_to()));
            }
            Err(e) => e.valid_up_to(),
        };
        if block[..valid].contains(&0) {
            return Err(SniffError::Binary);
        }
        carry = block[valid..].to_vec();
        offset += valid;
    }
    if carry.is_empty() {
        Ok(())
    } else {
        Err(SniffError::NotUtf8(offset))
    }
}

fn is_docx(bytes: &[u8]) -> bool {
    zip::ZipArchive::new(Cursor::new(bytes))
        .is_ok_and(|archive| archive.index_for_name("word/document.xml").is_some())
}

fn looks_like_html(text: &str, lower_name: &str, declared: &str) -> bool {
    let head: String = text
        .trim_start()
        .chars()
        .take(512)
        .collect::<String>()
        .to_ascii_lowercase();
    head.starts_with("<!doctype html")
        || head.starts_with("<html")
        || ((lower_name.ends_with(".html")
            || lower_name.ends_with(".htm")
            || declared == "text/html")
            && head.starts_with('<'))
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
    fn binary_formats_win_over_a_misleading_name() {
        assert_eq!(
            detect(b"%PDF-1.7 ...", "notes.txt", "text/plain"),
            Ok(Format::Pdf)
        );
        assert_eq!(
            detect(b"\x89PNG\r\n\x1a\n....", "x.md", ""),
            Ok(Format::Png)
        );
        assert_eq!(
            detect(b"RIFF\0\0\0\0WEBPVP8 ", "x.txt", ""),
            Ok(Format::Webp)
        );
    }

    #[test]
    fn unsupported_binaries_are_named() {
        assert_eq!(
            detect(b"\x1f\x8b\x08\0", "a.txt", ""),
            Err(SniffError::Unsupported("application/gzip"))
        );
        assert_eq!(
            detect(b"\x7fELF\x02\x01", "a.pdf", ""),
            Err(SniffError::Unsupported("application/x-executable"))
        );
        assert_eq!(
            detect(b"PK\x03\x04garbage", "a.docx", ""),
            Err(SniffError::Unsupported("application/zip"))
        );
    }

    #[test]
    fn text_flavours_use_content_then_hints() {
        assert_eq!(detect(b"plain words", "a.md", ""), Ok(Format::Markdown));
        assert_eq!(
            detect(b"plain words", "a", "text/markdown"),
            Ok(Format::Markdown)
        );
        assert_eq!(detect(b"# Title\n\nbody", "a", ""), Ok(Format::Markdown));
        assert_eq!(detect(b"#hashtag only", "a.txt", ""), Ok(Format::PlainText));
        assert_eq!(
            detect(b"  <!DOCTYPE html><p>x</p>", "a.txt", ""),
            Ok(Format::Html)
        );
        assert_eq!(detect(b"<div>x</div>", "page.htm", ""), Ok(Format::Html));
        assert_eq!(detect(b"<div>x</div>", "a.txt", ""), Ok(Format::PlainText));
    }

    #[test]
    fn streaming_validation_matches_the_in_memory_answer_across_block_boundaries() {
        // "é" (2 bytes) straddles the 64 KiB block boundary.
        let mut text = "a".repeat(64 * 1024 - 1).into_bytes();
        text.extend_from_slice("é and more".as_bytes());
        assert_eq!(validate_text(Cursor::new(&text)), Ok(()));
        let mut bad = text.clone();
        bad.push(0xff);
        assert_eq!(
            validate_text(Cursor::new(&bad)),
            Err(SniffError::NotUtf8(text.len()))
        );
        let truncated = &text[..64 * 1024]; // ends inside "é"
        assert_eq!(
            validate_text(Cursor::new(truncated)),
            Err(SniffError::NotUtf8(64 * 1024 - 1))
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.md");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(detect_file(&path, "t.md", ""), detect(&text, "t.md", ""));
    }

    #[test]
    fn nul_bytes_mean_binary() {
        assert_eq!(detect(b"abc\0def", "a.txt", ""), Err(SniffError::Binary));
    }
}
