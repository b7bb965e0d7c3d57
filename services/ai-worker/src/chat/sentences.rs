//! Sentence splitting for the extractive answerer: good enough for prose and Markdown, and
//! never splits inside a word.

/// A candidate sentence and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sentence {
    /// 0-based index of the source hit.
    pub source: usize,
    /// Position of the sentence inside the source, for stable ordering.
    pub position: usize,
    pub text: String,
}

/// Sentences worth quoting from `text`: Markdown headings, fences and bullets removed, very
/// short fragments dropped, very long runs cut at a word boundary.
pub fn split(source: usize, text: &str) -> Vec<Sentence> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let content = trimmed
            .trim_start_matches(['-', '*', '+', '>'])
            .trim_start();
        for sentence in split_line(content) {
            let words = sentence.split_whitespace().count();
            if words >= 3 && reads_as_prose(&sentence) {
                out.push(Sentence {
                    source,
                    position: out.len(),
                    text: limit_words(&sentence, 60),
                });
            }
        }
    }
    out
}

/// Words after which a full stop ends an abbreviation, not a sentence.
const ABBREVIATIONS: &[&str] = &[
    "dr", "mr", "mrs", "ms", "prof", "st", "sr", "jr", "vs", "etc", "e.g", "i.e", "cf", "fig",
    "no", "approx", "inc", "ltd", "co", "corp", "dept", "est", "vol", "ch", "sec", "p", "pp",
];

/// Whether the text before a full stop at `end` (exclusive) is an abbreviation or an
/// initial ("Dr.", "e.g.", "J.").
fn ends_with_abbreviation(chars: &[char], end: usize) -> bool {
    let start = chars[..end]
        .iter()
        .rposition(|c| c.is_whitespace() || *c == '(')
        .map_or(0, |i| i + 1);
    let word: String = chars[start..end].iter().collect::<String>().to_lowercase();
    let single_initial = word.chars().count() == 1 && word.chars().all(char::is_alphabetic);
    single_initial || ABBREVIATIONS.contains(&word.as_str())
}

/// Prose, not a page header or a list of names: most words hold a lower-case letter
/// ("HOSTID(1) User Commands HOSTID(1)" does not).
fn reads_as_prose(sentence: &str) -> bool {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let lower = words
        .iter()
        .filter(|w| w.chars().any(char::is_lowercase))
        .count();
    lower * 2 > words.len()
}

/// Splits after `.`, `!` or `?` followed by whitespace and an upper-case letter or digit,
/// except after an abbreviation or an initial.
fn split_line(line: &str) -> Vec<String> {
    let mut sentences = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = line.chars().collect();
    for (i, &ch) in chars.iter().enumerate() {
        current.push(ch);
        let at_boundary = matches!(ch, '.' | '!' | '?')
            && chars.get(i + 1).is_some_and(|c| c.is_whitespace())
            && chars
                .get(i + 2)
                .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit())
            && !(ch == '.' && ends_with_abbreviation(&chars, i));
        if at_boundary {
            sentences.push(current.trim().to_owned());
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        sentences.push(current.trim().to_owned());
    }
    sentences
}

fn limit_words(text: &str, max: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() <= max {
        words.join(" ")
    } else {
        format!("{} …", words[..max].join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_prose_but_not_abbreviations_or_decimals() {
        let s = split(
            0,
            "Rust is fast. It is safe too! Version 1.95 is out e.g. today",
        );
        let texts: Vec<&str> = s.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "Rust is fast.",
                "It is safe too!",
                "Version 1.95 is out e.g. today"
            ]
        );
    }

    #[test]
    fn abbreviations_and_initials_do_not_end_a_sentence() {
        let s = split(
            0,
            "Her hooves were trimmed by Dr. Ferreira in May. J. R. R. Tolkien wrote it, e.g. The Hobbit. Done here now.",
        );
        let texts: Vec<&str> = s.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "Her hooves were trimmed by Dr. Ferreira in May.",
                "J. R. R. Tolkien wrote it, e.g. The Hobbit.",
                "Done here now."
            ]
        );
    }

    #[test]
    fn page_headers_are_not_quoted() {
        assert!(split(0, "HOSTID(1) User Commands HOSTID(1)").is_empty());
        assert_eq!(split(0, "The hostid command prints an ID.").len(), 1);
    }

    #[test]
    fn skips_headings_code_and_fragments() {
        let s = split(
            2,
            "# Title\n```\nlet x = 1; let y = 2; let z = 3;\n```\n- A bullet point here.\nOk.",
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].text, "A bullet point here.");
        assert_eq!(s[0].source, 2);
    }
}
