//! Token-aware, structure-aware chunking with the embedding model's own tokenizer.
//!
//! Markdown is split at headings, then paragraphs, then sentences (text-splitter's semantic
//! levels); every chunk keeps its character offsets and heading path for citations.

use text_splitter::{ChunkConfig, MarkdownSplitter, TextSplitter};
use tokenizers::Tokenizer;

use super::parse::Parsed;

/// What separates two segments (pages) in the document text that offsets refer to.
const SEGMENT_SEPARATOR: &str = "\n\n";

#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub index: usize,
    pub text: String,
    /// Character (not byte) offsets of the chunk in the source text, end exclusive.
    pub char_start: usize,
    pub char_end: usize,
    /// Heading path in force where the chunk starts, outermost first.
    pub headings: Vec<String>,
    /// 1-based page for paged formats.
    pub page: Option<u32>,
    /// Model tokens in the chunk, special tokens excluded.
    pub token_count: usize,
}

enum Splitter<'t> {
    Markdown(MarkdownSplitter<&'t Tokenizer>),
    Text(TextSplitter<&'t Tokenizer>),
}

#[derive(Debug, Clone, Copy)]
pub struct ChunkSettings {
    /// Maximum tokens per chunk (without special tokens).
    pub max_tokens: usize,
    pub overlap_tokens: usize,
    /// Most chunks one document may yield; past it splitting stops with an error, before the
    /// chunks (and the vectors they would need) are all held in memory.
    pub max_chunks: usize,
}

/// Splits a parsed document into chunks of at most `settings.max_tokens` tokens. Segments
/// (pages) are split separately so a chunk never spans two pages; offsets and headings refer
/// to the whole document text (segments joined by a blank line).
pub fn split(
    parsed: &Parsed,
    tokenizer: &Tokenizer,
    settings: ChunkSettings,
) -> Result<Vec<Chunk>, String> {
    let overlap = settings.overlap_tokens.min(settings.max_tokens / 2);
    let config = ChunkConfig::new(settings.max_tokens)
        .with_sizer(tokenizer)
        .with_overlap(overlap)
        .map_err(|e| format!("invalid chunk settings: {e}"))?;
    // One splitter for the whole document: Markdown-aware only when the parser produced
    // Markdown.
    let splitter = if parsed.markdown {
        Splitter::Markdown(MarkdownSplitter::new(config))
    } else {
        Splitter::Text(TextSplitter::new(config))
    };
    let full_text = parsed
        .segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(SEGMENT_SEPARATOR);
    let headings = if parsed.markdown {
        markdown_headings(&full_text)
    } else {
        Vec::new()
    };

    let mut chunks = Vec::new();
    let mut segment_start = 0usize; // byte offset of the segment in `full_text`
    let mut segment_start_chars = 0usize;
    for segment in &parsed.segments {
        let text = segment.text.as_str();
        let pieces: Vec<(usize, &str)> = match &splitter {
            Splitter::Markdown(s) => s.chunk_indices(text).collect(),
            Splitter::Text(s) => s.chunk_indices(text).collect(),
        };
        // Pieces come in order (overlap may step back a little): count characters from the
        // previous piece's start instead of from the segment start every time.
        let (mut last_byte, mut last_chars) = (0usize, 0usize);
        for (byte_start, piece) in pieces {
            if piece.trim().is_empty() {
                continue;
            }
            if chunks.len() >= settings.max_chunks {
                return Err(format!(
                    "the document splits into more than {} chunks \
                     (limit THINKBANK_MAX_CHUNKS_PER_ASSET)",
                    settings.max_chunks
                ));
            }
            last_chars = if byte_start >= last_byte {
                last_chars + text[last_byte..byte_start].chars().count()
            } else {
                text[..byte_start].chars().count()
            };
            last_byte = byte_start;
            let char_start = segment_start_chars + last_chars;
            chunks.push(Chunk {
                index: chunks.len(),
                text: piece.to_owned(),
                char_start,
                char_end: char_start + piece.chars().count(),
                headings: heading_path_at(&headings, segment_start + byte_start),
                page: segment.page,
                token_count: tokenizer
                    .encode(piece, false)
                    .map_err(|e| format!("tokenizer: {e}"))?
                    .len(),
            });
        }
        segment_start += text.len() + SEGMENT_SEPARATOR.len();
        segment_start_chars += text.chars().count() + SEGMENT_SEPARATOR.chars().count();
    }
    Ok(chunks)
}

/// (byte offset, level, title) of every ATX heading outside fenced code.
fn markdown_headings(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut in_fence = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
        } else if !in_fence && trimmed.starts_with('#') {
            let level = trimmed.chars().take_while(|&c| c == '#').count();
            let title = trimmed[level..].trim();
            if (1..=6).contains(&level) && trimmed[level..].starts_with(' ') && !title.is_empty() {
                out.push((offset, level, title.trim_end_matches('#').trim().to_owned()));
            }
        }
        offset += line.len();
    }
    out
}

/// The heading stack in force at `byte_offset`. A chunk that starts with a heading belongs
/// under it.
fn heading_path_at(headings: &[(usize, usize, String)], byte_offset: usize) -> Vec<String> {
    let mut stack: Vec<(usize, &str)> = Vec::new();
    for (offset, level, title) in headings {
        if *offset > byte_offset {
            break;
        }
        while stack.last().is_some_and(|(l, _)| *l >= *level) {
            stack.pop();
        }
        stack.push((*level, title));
    }
    stack.into_iter().map(|(_, t)| t.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_paths_follow_nesting() {
        let text = "# A\nintro\n## B\nbody b\n## C\nbody c\n# D\nend\n";
        let headings = markdown_headings(text);
        let at = |needle: &str| heading_path_at(&headings, text.find(needle).unwrap());
        assert_eq!(at("intro"), vec!["A"]);
        assert_eq!(at("body b"), vec!["A", "B"]);
        assert_eq!(at("body c"), vec!["A", "C"]);
        assert_eq!(at("end"), vec!["D"]);
    }

    #[test]
    fn hashes_inside_code_fences_are_not_headings() {
        let text = "# Real\n```sh\n# not a heading\n```\n";
        let titles: Vec<String> = markdown_headings(text).into_iter().map(|h| h.2).collect();
        assert_eq!(titles, vec!["Real"]);
    }
}
