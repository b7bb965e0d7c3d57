//! Citation verification: every `[n]` in an answer is checked against source n.
//!
//! The check is lexical and documented in `chat.proto`: the answer is split into sentences;
//! for each sentence carrying `[n]`, its content words (lower-cased alphanumeric runs, stop
//! words and one-letter words dropped, a plural `s` stripped) are looked up in source n's
//! text. The share found is the sentence's *support*; the citation verifies when every
//! sentence carrying it has support ≥ [`SUPPORT_THRESHOLD`]. A sentence with no content words
//! (e.g. "See [2].") has nothing to contradict and counts as supported. An `[n]` naming no
//! source is *fabricated* and never verifies.

use std::collections::HashSet;

use super::Citation;

/// Share of a sentence's content words that must occur in the cited source.
pub const SUPPORT_THRESHOLD: f32 = 0.5;

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "do", "does", "for",
    "from", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "may", "not", "of",
    "on", "or", "our", "should", "so", "such", "than", "that", "the", "their", "them", "then",
    "there", "these", "they", "this", "those", "to", "was", "we", "were", "what", "when", "which",
    "while", "who", "will", "with", "would", "you", "your",
];

/// The outcome of checking an answer's citations against `sources` (texts, numbered from 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    /// In order of first appearance.
    pub citations: Vec<Citation>,
    /// 1-based indexes never cited, ascending.
    pub uncited: Vec<u32>,
}

pub fn verify(answer: &str, sources: &[&str]) -> Verification {
    let source_words: Vec<HashSet<String>> =
        sources.iter().map(|s| content_words(s).collect()).collect();
    let mut citations: Vec<Citation> = Vec::new();
    for sentence in sentences(answer) {
        let (text, numbers) = strip_markers(sentence);
        if numbers.is_empty() {
            continue;
        }
        let words: Vec<String> = content_words(&text).collect();
        for number in numbers {
            let source = usize::try_from(number)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| source_words.get(i));
            let support = match source {
                None => 0.0,
                Some(_) if words.is_empty() => 1.0,
                Some(known) => {
                    let found = words.iter().filter(|w| known.contains(*w)).count();
                    ratio(found, words.len())
                }
            };
            let fabricated = source.is_none();
            let verified = !fabricated && support >= SUPPORT_THRESHOLD;
            match citations.iter_mut().find(|c| c.source_index == number) {
                Some(existing) => {
                    existing.verified &= verified;
                    existing.support = existing.support.min(support);
                    existing.occurrences += 1;
                }
                None => citations.push(Citation {
                    source_index: number,
                    verified,
                    fabricated,
                    support,
                    occurrences: 1,
                    quoted: false,
                }),
            }
        }
    }
    let uncited = (1..=sources.len())
        .filter_map(|i| u32::try_from(i).ok())
        .filter(|i| !citations.iter().any(|c| c.source_index == *i))
        .collect();
    Verification { citations, uncited }
}

#[expect(clippy::cast_precision_loss, reason = "word counts are far below 2^24")]
fn ratio(found: usize, total: usize) -> f32 {
    found as f32 / total.max(1) as f32
}

/// Sentences of an answer. A citation usually follows the sentence's full stop ("… milk. [1]")
/// or precedes it ("… milk [1]."), so a run of markers after a full stop stays with the
/// sentence before it.
fn sentences(answer: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = answer.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let ch = bytes[i];
        if matches!(ch, b'.' | b'!' | b'?' | b'\n') {
            let mut end = i + 1;
            // Keep following markers ("[1]", " [2][3]") with this sentence.
            loop {
                let rest = &answer[end..];
                let trimmed = rest.trim_start_matches([' ', '\t']);
                let skipped = rest.len() - trimmed.len();
                match marker_len(trimmed) {
                    Some(len) => end += skipped + len,
                    None => break,
                }
            }
            let next_is_break = answer[end..].chars().next().is_none_or(char::is_whitespace);
            if ch == b'\n' || next_is_break {
                out.push(&answer[start..end]);
                start = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    if start < answer.len() {
        out.push(&answer[start..]);
    }
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// Length of a `[n]` or `[n, m]` marker at the start of `text`.
fn marker_len(text: &str) -> Option<usize> {
    let inner = text.strip_prefix('[')?;
    let close = inner.find(']')?;
    let body = &inner[..close];
    let valid = !body.trim().is_empty()
        && body
            .split(',')
            .all(|n| !n.trim().is_empty() && n.trim().chars().all(|c| c.is_ascii_digit()));
    valid.then_some(close + 2)
}

/// The sentence without its markers, and the numbers they name (in order, repeated allowed).
fn strip_markers(sentence: &str) -> (String, Vec<u32>) {
    let mut text = String::with_capacity(sentence.len());
    let mut numbers = Vec::new();
    let mut rest = sentence;
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let tail = &rest[open..];
        match marker_len(tail) {
            Some(len) => {
                numbers.extend(
                    tail[1..len - 1]
                        .split(',')
                        .filter_map(|n| n.trim().parse::<u32>().ok()),
                );
                rest = &tail[len..];
            }
            None => {
                text.push('[');
                rest = &tail[1..];
            }
        }
    }
    text.push_str(rest);
    (text, numbers)
}

fn content_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() > 1)
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .map(|w| match w.strip_suffix('s') {
            Some(stem) if stem.chars().count() > 3 && !stem.ends_with('s') => stem.to_owned(),
            _ => w,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCES: &[&str] = &[
        "Remember to buy oat milk and coffee beans on Friday.",
        "The quarterly report is due on the first Monday of April.",
    ];

    #[test]
    fn supported_citations_verify_and_uncited_sources_are_listed() {
        let v = verify("You need oat milk and coffee beans on Friday [1].", SOURCES);
        assert_eq!(v.citations.len(), 1);
        assert!(v.citations[0].verified);
        assert!(!v.citations[0].fabricated);
        // "need" is the only content word the source lacks: 5 of 6.
        assert!((v.citations[0].support - 5.0 / 6.0).abs() < 1e-6);
        assert_eq!(v.uncited, vec![2]);
    }

    #[test]
    fn a_sentence_citing_the_wrong_source_does_not_verify() {
        let v = verify("Buy oat milk and coffee beans. [2]", SOURCES);
        assert_eq!(v.citations[0].source_index, 2);
        assert!(!v.citations[0].verified);
        assert!(v.citations[0].support < SUPPORT_THRESHOLD);
        assert_eq!(v.uncited, vec![1]);
    }

    #[test]
    fn out_of_range_numbers_are_fabricated() {
        let v = verify("The report is due in April [7]. Oat milk [0].", SOURCES);
        let numbers: Vec<(u32, bool, bool)> = v
            .citations
            .iter()
            .map(|c| (c.source_index, c.fabricated, c.verified))
            .collect();
        assert_eq!(numbers, vec![(7, true, false), (0, true, false)]);
    }

    #[test]
    fn markers_after_the_full_stop_belong_to_the_sentence_before() {
        let answer = "The report is due in April. [2] Buy oat milk on Friday. [1][2]";
        let v = verify(answer, SOURCES);
        let two = v.citations.iter().find(|c| c.source_index == 2);
        // The second sentence's [2] is unsupported, so [2] as a whole does not verify.
        assert_eq!(two.map(|c| (c.occurrences, c.verified)), Some((2, false)));
        let one = v.citations.iter().find(|c| c.source_index == 1);
        assert_eq!(one.map(|c| c.verified), Some(true));
    }

    #[test]
    fn lists_of_numbers_and_plurals_are_understood() {
        let v = verify("Coffee bean and report [1, 2].", SOURCES);
        assert_eq!(v.citations.len(), 2);
        assert!(v.uncited.is_empty());
        assert_eq!(strip_markers("a [x] b [3]").1, vec![3]);
        assert_eq!(content_words("Beans").collect::<Vec<_>>(), vec!["bean"]);
    }
}
