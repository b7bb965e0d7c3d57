//! Images: size and format from the header, text with Tesseract OCR. The OCR text (plus a
//! one-line description) is what gets indexed.

use std::{ffi::OsStr, path::Path};

use super::{ParseError, ParseSettings, Parsed, Segment, command};
use crate::ingest::sniff::Format;

pub async fn parse(
    format: Format,
    bytes: &[u8],
    settings: &ParseSettings,
) -> Result<Parsed, ParseError> {
    let size = imagesize::blob_size(bytes).map_err(|e| {
        ParseError::Invalid(format!("the {} image is corrupt: {e}", format.media_type()))
    })?;
    let dir = tempfile::tempdir()
        .map_err(|e| ParseError::Invalid(format!("cannot create a temp dir: {e}")))?;
    let extension = match format {
        Format::Png => "png",
        Format::Jpeg => "jpg",
        Format::Gif => "gif",
        _ => "webp",
    };
    let path = dir.path().join(format!("image.{extension}"));
    tokio::fs::write(&path, bytes)
        .await
        .map_err(|e| ParseError::Invalid(format!("cannot write a temp file: {e}")))?;
    let text = ocr_file(&path, settings).await?;
    let mut info = serde_json::Map::new();
    info.insert("width".into(), size.width.into());
    info.insert("height".into(), size.height.into());
    info.insert("ocr".into(), true.into());
    Ok(Parsed {
        segments: vec![Segment { text, page: None }],
        markdown: false,
        info,
    })
}

/// Runs Tesseract on an image file and returns the recognised text.
pub async fn ocr_file(path: &Path, settings: &ParseSettings) -> Result<String, ParseError> {
    let output = command::run(
        &settings.tesseract,
        &[
            path.as_os_str(),
            OsStr::new("stdout"),
            OsStr::new("-l"),
            OsStr::new(&settings.ocr_languages),
        ],
        settings.tool_timeout,
    )
    .await?;
    if !output.success {
        return Err(ParseError::Invalid(format!(
            "OCR could not read the image: {}",
            output.stderr.lines().last().unwrap_or("unknown error")
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
