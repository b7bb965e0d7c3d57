//! Markdown through the parser entry point and the Markdown-aware chunker: nested quotes and
//! lists far past any sane depth, delimiter and bracket runs (the inline parser's quadratic
//! corners), unclosed fences, tables, raw HTML and arbitrary text. Nothing panics or overflows
//! a 2 MiB stack, every call ends within the bound, chunks stay in budget and cite their own
//! text, and every heading in a chunk's path is a heading the document contains.

use proptest::prelude::*;
use thinkbank_ai_worker::ingest::{
    chunker::{self, ChunkSettings},
    parse::{self, ParseSettings},
    sniff::Format,
};

use super::super::{CALL_BOUND, config, embedder, on_small_stack};

fn markdown_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        (1usize..1500).prop_map(|n| format!("{} quote\n", ">".repeat(n))),
        (1usize..300).prop_map(|n| format!("{}- item\n", "  ".repeat(n))),
        (1usize..200).prop_map(|n| format!("{}1. item\n", "   ".repeat(n))),
        (
            1usize..1500,
            prop::sample::select(vec!["*", "_", "[", "](", "<", "`", "![", "~", "\\", "**_"])
        )
            .prop_map(|(n, run)| run.repeat(n)),
        (1usize..12).prop_map(|n| format!("{} Heading {n} #\n", "#".repeat(n))),
        Just("Setext\n===\n".to_owned()),
        Just("```rust\n# not a heading\n".to_owned()),
        Just("~~~\n".to_owned()),
        Just("| a | b |\n|---|:-:|\n| 1 | 2 |\n".to_owned()),
        Just("<div>\n<table><tr><td>raw".to_owned()),
        Just("[ref]: http://example.com \"title\"\n[^1]: footnote\n".to_owned()),
        Just("&#x0;&#xFFFFFF;&bogus;\r\u{0}\u{feff}".to_owned()),
        Just("\n\n".to_owned()),
        "\\PC{0,40}",
    ]
}

fn hostile_markdown() -> impl Strategy<Value = String> {
    prop::collection::vec(markdown_piece(), 1..12).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn markdown_parses_and_chunks_within_bounds_with_real_headings(
        text in hostile_markdown(),
        max_tokens in 16usize..200,
    ) {
        let source = text.clone();
        let ((parsed, chunks), took) = on_small_stack(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let parsed = runtime.block_on(parse::parse(
                Format::Markdown,
                text.into_bytes().into(),
                &ParseSettings::default(),
                None,
            ));
            let chunks = parsed.as_ref().ok().map(|parsed| {
                let settings = ChunkSettings { max_tokens, overlap_tokens: max_tokens / 4, max_chunks: 10_000 };
                chunker::split(parsed, embedder().tokenizer(), settings)
            });
            (parsed.map_err(|e| e.to_string()), chunks)
        });
        prop_assert!(took < CALL_BOUND, "took {took:?}");
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                prop_assert!(source.trim().is_empty(), "refused non-blank Markdown: {error}");
                prop_assert!(error.contains("no text"), "{error}");
                return Ok(());
            }
        };
        prop_assert!(parsed.markdown);
        let chunks = chunks.unwrap().map_err(TestCaseError::fail)?;
        let full: Vec<char> = source.chars().collect();
        for chunk in &chunks {
            prop_assert!(chunk.token_count <= max_tokens, "{} > {max_tokens}", chunk.token_count);
            let cited: String = full[chunk.char_start..chunk.char_end].iter().collect();
            prop_assert_eq!(&cited, &chunk.text);
            prop_assert!(chunk.headings.len() <= 6, "{:?}", chunk.headings);
            for heading in &chunk.headings {
                prop_assert!(!heading.is_empty() && source.contains(heading.as_str()), "{heading:?}");
            }
        }
    }
}
