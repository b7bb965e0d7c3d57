//! Images: size and format from the header, text with Tesseract OCR, and — when a vision
//! model is configured — a short description written by it. OCR text and description are
//! indexed together. Describing is best effort: if the model fails, the image is indexed with
//! its OCR text and the reason is recorded in `metadata.document.caption_error`.

use std::{ffi::OsStr, path::Path};

use super::{ParseError, ParseSettings, Parsed, Segment, command};
use crate::ingest::sniff::Format;

/// What the vision model is asked.
const CAPTION_PROMPT: &str = "Describe this image in one or two sentences for a search index. \
     Mention what it shows and any diagrams, charts or prominent text.";

pub async fn parse(
    format: Format,
    bytes: &[u8],
    settings: &ParseSettings,
    vision: Option<&crate::llm::Llm>,
) -> Result<Parsed, ParseError> {
    let size = imagesize::blob_size(bytes).map_err(|e| {
        ParseError::Invalid(format!("the {} image is corrupt: {e}", format.media_type()))
    })?;
    let pixels = u64::try_from(size.width)
        .unwrap_or(u64::MAX)
        .saturating_mul(u64::try_from(size.height).unwrap_or(u64::MAX));
    if pixels > settings.max_image_pixels {
        // Decoding it for OCR would take width × height bytes or more: refuse before that.
        return Err(ParseError::Invalid(format!(
            "the image is {} × {} pixels, over the limit of {} pixels (THINKBANK_MAX_IMAGE_PIXELS)",
            size.width, size.height, settings.max_image_pixels
        )));
    }
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
    let mut text = ocr_file(&path, settings).await?;
    let mut info = serde_json::Map::new();
    info.insert("width".into(), size.width.into());
    info.insert("height".into(), size.height.into());
    info.insert("ocr".into(), true.into());
    if let Some(vision) = vision {
        match describe(vision, format, bytes).await {
            Ok(caption) if !caption.trim().is_empty() => {
                text = format!("Image description: {}\n\n{text}", caption.trim());
                info.insert("caption".into(), caption.trim().into());
                info.insert("caption_model".into(), vision.model().into());
            }
            Ok(_) => {
                info.insert(
                    "caption_error".into(),
                    "the model returned an empty description".into(),
                );
            }
            Err(error) => {
                tracing::warn!(%error, "image description failed; indexing OCR text only");
                info.insert("caption_error".into(), error.to_string().into());
            }
        }
    }
    Ok(Parsed {
        segments: vec![Segment { text, page: None }],
        markdown: false,
        info,
    })
}

async fn describe(
    vision: &crate::llm::Llm,
    format: Format,
    bytes: &[u8],
) -> Result<String, crate::llm::LlmError> {
    use base64::Engine as _;
    let url = format!(
        "data:{};base64,{}",
        format.media_type(),
        base64::engine::general_purpose::STANDARD.encode(bytes)
    );
    let message = crate::llm::Message {
        role: crate::llm::Role::User,
        content: CAPTION_PROMPT.into(),
        image: Some(url),
    };
    vision.complete(vec![message]).await
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
        settings.tool_limits(),
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
