//! Property tests: generated hostile input for the format sniffer, the HTML and DOCX parsers
//! and the chunker here; Markdown, PDF tool output, metadata filters and page tokens in
//! `hostile_props/`. Whatever the bytes, nothing panics, nothing overflows a blocking thread's
//! stack, every call returns within a bound, output stays proportional to input, and every
//! refusal says why. Case counts are small so the suite stays fast; a failure prints the
//! shrunk input.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

mod hostile_props;

use proptest::prelude::*;
use thinkbank_ai_worker::{
    embed::LocalEmbedder,
    ingest::{
        chunker::{self, ChunkSettings},
        parse::{self, ParseSettings, Parsed, Segment, html},
        sniff::{self, Format},
    },
};

/// Longest any single call may take here (debug build, shared CI machine).
const CALL_BOUND: Duration = Duration::from_secs(10);

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Nothing written into the source tree; a failure prints its input instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs `f` on a thread with the blocking pool's 2 MiB stack, where a runaway recursion
/// aborts the process instead of failing one test.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> (T, Duration) {
    let started = Instant::now();
    let value = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
    (value, started.elapsed())
}

/// HTML from a vocabulary chosen to hit the tree builder's odd corners: tables (foster
/// parenting), formatting elements (adoption agency), raw-text and foreign content, unclosed
/// and stray end tags, comments, entities and arbitrary text.
fn html_piece() -> impl Strategy<Value = String> {
    let tags = prop::sample::select(vec![
        "div",
        "p",
        "b",
        "i",
        "a",
        "table",
        "tr",
        "td",
        "th",
        "tbody",
        "ul",
        "ol",
        "li",
        "pre",
        "h1",
        "h3",
        "h6",
        "script",
        "style",
        "template",
        "svg",
        "math",
        "select",
        "option",
        "textarea",
        "title",
        "noscript",
        "iframe",
        "frameset",
        "nav",
        "main",
        "article",
        "br",
        "hr",
        "img",
        "plaintext",
        "xmp",
        "form",
        "button",
        "dl",
        "dd",
    ]);
    prop_oneof![
        tags.clone().prop_map(|t| format!("<{t}>")),
        tags.clone().prop_map(|t| format!("</{t}>")),
        tags.prop_map(|t| format!("<{t} class=\"x\" id='y' data-z=w>")),
        Just("<!-- c -->".to_owned()),
        Just("<!--".to_owned()),
        Just("<![CDATA[x]]>".to_owned()),
        Just("&amp;&#x1F600;&#0;&bogus;&".to_owned()),
        Just("<!doctype html>".to_owned()),
        "\\PC{0,24}",
        "[ \t\n\r<>/=\"']{0,8}",
    ]
}

fn hostile_html() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(html_piece(), 0..200).prop_map(|p| p.concat()),
        // Deep nesting of one tag, sometimes past the depth limit, closed or not.
        (
            prop::sample::select(vec!["div", "b", "table", "ul", "a", "td", "svg"]),
            0usize..3000,
            any::<bool>()
        )
            .prop_map(|(tag, depth, close)| {
                let mut html = format!("<{tag}>").repeat(depth);
                html.push_str("text at the bottom");
                if close {
                    html.push_str(&format!("</{tag}>").repeat(depth));
                }
                html
            }),
    ]
}

proptest! {
    #![proptest_config(config(192))]

    #[test]
    fn html_never_panics_and_stays_bounded(input in hostile_html()) {
        let length = input.len();
        let (result, took) =
            on_small_stack(move || html::to_markdown(&input, Duration::from_secs(5)));
        prop_assert!(took < CALL_BOUND, "took {took:?}");
        match result {
            // Markdown markers may add a few bytes per tag, never more than the tag itself.
            Ok(markdown) => prop_assert!(markdown.len() <= 4 * length + 64, "{} from {length}", markdown.len()),
            Err(error) => prop_assert!(error.to_string().contains("HTML"), "{error}"),
        }
    }
}

/// Bytes that start like every format the sniffer knows (and some it refuses), then go wrong.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let magic = prop::sample::select(vec![
        &b""[..],
        b"%PDF-",
        b"PK\x03\x04",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff",
        b"GIF89a",
        b"RIFF\x00\x00\x00\x00WEBP",
        b"RIFF",
        b"\x7fELF",
        b"\xef\xbb\xbf",
        b"<html>",
        b"# ",
    ]);
    (magic, prop::collection::vec(any::<u8>(), 0..2048)).prop_map(|(magic, tail)| {
        let mut bytes = magic.to_vec();
        bytes.extend(tail);
        bytes
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn the_sniffer_never_panics_and_agrees_with_itself_on_disk(
        bytes in hostile_bytes(),
        filename in "\\PC{0,20}",
        declared in prop::sample::select(vec!["", "text/html", "text/markdown", "application/pdf", "x/\u{0}"]),
    ) {
        let started = Instant::now();
        let in_memory = sniff::detect(&bytes, &filename, declared);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &bytes).unwrap();
        let on_disk = sniff::detect_file(file.path(), &filename, declared);
        prop_assert!(started.elapsed() < CALL_BOUND);
        prop_assert_eq!(&in_memory, &on_disk);
        if let Err(error) = in_memory {
            prop_assert!(!error.to_string().is_empty());
        }
    }
}

/// A ZIP that claims to be DOCX: a `word/document.xml` of generated XML-ish text, and other
/// entries.
fn hostile_docx() -> impl Strategy<Value = Vec<u8>> {
    let xml = prop::collection::vec(
        prop_oneof![
            Just("<w:p>".to_owned()),
            Just("</w:p>".to_owned()),
            Just("<w:t>".to_owned()),
            Just("</w:t>".to_owned()),
            Just("<w:pStyle w:val=\"Heading1\"/>".to_owned()),
            Just("<w:body>".to_owned()),
            Just("&lt;&#0;&bogus;".to_owned()),
            "\\PC{0,16}",
        ],
        0..120,
    );
    (xml, any::<bool>()).prop_map(|(parts, styles)| {
        use std::io::Write as _;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("word/document.xml", options).unwrap();
        zip.write_all(parts.concat().as_bytes()).unwrap();
        if styles {
            zip.start_file("word/styles.xml", options).unwrap();
            zip.write_all(b"<w:styles><w:style").unwrap();
        }
        zip.finish().unwrap().into_inner()
    })
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn docx_and_html_documents_parse_or_fail_with_a_reason(
        docx in hostile_docx(),
        html in hostile_html(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let settings = ParseSettings::default();
        for (format, bytes) in [(Format::Docx, docx), (Format::Html, html.into_bytes())] {
            let started = Instant::now();
            let result = runtime.block_on(parse::parse(format, bytes.into(), &settings, None));
            prop_assert!(started.elapsed() < CALL_BOUND);
            if let Err(error) = result {
                prop_assert!(!error.to_string().trim().is_empty(), "{format:?}: empty reason");
            }
        }
    }
}

fn embedder() -> &'static LocalEmbedder {
    static EMBEDDER: OnceLock<LocalEmbedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| LocalEmbedder::load(&thinkbank_testkit::model_dir()).unwrap())
}

/// Text with the shapes that stress a splitter: headings, fences, long unbroken words,
/// combining marks and emoji, odd whitespace, and arbitrary characters.
fn hostile_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "\\PC{0,40}",
            Just("\n\n".to_owned()),
            Just("# ".to_owned()),
            Just("\n### Title ###\n".to_owned()),
            Just("```\n# not a heading\n".to_owned()),
            Just("e\u{301}\u{301}\u{301}👩‍👩‍👧‍👦\u{200b}\u{feff}".to_owned()),
            "[a-z]{50,400}",
            Just("\r\n\t \u{a0}\u{2028}".to_owned()),
        ],
        0..60,
    )
    .prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn chunks_are_within_budget_and_point_at_their_own_text(
        segments in prop::collection::vec(hostile_text(), 1..4),
        markdown in any::<bool>(),
        max_tokens in 8usize..120,
        overlap in 0usize..40,
        max_chunks in prop_oneof![Just(usize::MAX), 1usize..4],
    ) {
        let parsed = Parsed {
            segments: segments
                .iter()
                .enumerate()
                .map(|(i, text)| Segment { text: text.clone(), page: u32::try_from(i + 1).ok() })
                .collect(),
            markdown,
            ..Parsed::default()
        };
        let settings = ChunkSettings { max_tokens, overlap_tokens: overlap, max_chunks };
        let started = Instant::now();
        let result = chunker::split(&parsed, embedder().tokenizer(), settings);
        prop_assert!(started.elapsed() < CALL_BOUND);
        let chunks = match result {
            Ok(chunks) => chunks,
            Err(error) => {
                prop_assert!(error.contains("THINKBANK_MAX_CHUNKS_PER_ASSET"), "{error}");
                return Ok(());
            }
        };
        prop_assert!(chunks.len() <= max_chunks);
        let full: Vec<char> = segments.join("\n\n").chars().collect();
        for chunk in &chunks {
            prop_assert!(!chunk.text.trim().is_empty());
            prop_assert!(chunk.token_count <= max_tokens, "{} > {max_tokens}", chunk.token_count);
            prop_assert!(chunk.char_start <= chunk.char_end && chunk.char_end <= full.len());
            let cited: String = full[chunk.char_start..chunk.char_end].iter().collect();
            prop_assert_eq!(&cited, &chunk.text);
        }
    }
}
