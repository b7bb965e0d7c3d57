//! How the keyword leg reads a query. A natural-language query ("What does Wendeline prefer
//! to eat?") matches chunks holding *any* of its terms and lets BM25 rank them, so one word the
//! text lacks costs rank, not the match. A query written with operators — a `"quoted phrase"`
//! or a `-excluded` word — asks for boolean matching and keeps `websearch_to_tsquery`'s meaning
//! (terms AND-ed, `or` between alternatives, phrases adjacent, `-` excluded); BM25 still ranks.

/// Plain words considered per query: bounds the per-collection term work of a pasted essay.
pub const MAX_WORDS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matching {
    /// Chunks holding any of these words (each parsed by the collection's configuration).
    AnyWord(Vec<String>),
    /// Chunks matching the query as `websearch_to_tsquery` reads it.
    Boolean,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordQuery {
    pub matching: Matching,
    /// The text whose terms are scored: the query without excluded words and quote marks.
    pub scored_text: String,
}

impl KeywordQuery {
    pub fn parse(query: &str) -> Self {
        let excluded = |token: &str| {
            token
                .strip_prefix('-')
                .and_then(|rest| rest.chars().next())
                .is_some_and(char::is_alphanumeric)
        };
        let boolean = query.contains('"') || query.split_whitespace().any(excluded);
        if !boolean {
            let mut words: Vec<String> = Vec::new();
            for word in query.split_whitespace() {
                if words.len() == MAX_WORDS {
                    break;
                }
                if !words.iter().any(|w| w == word) {
                    words.push(word.to_owned());
                }
            }
            let scored_text = words.join(" ");
            return Self {
                matching: Matching::AnyWord(words),
                scored_text,
            };
        }
        let scored_text = query
            .split_whitespace()
            .filter(|t| !excluded(t))
            .take(MAX_WORDS)
            .collect::<Vec<_>>()
            .join(" ")
            .replace('"', " ");
        Self {
            matching: Matching::Boolean,
            scored_text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_natural_question_matches_any_of_its_words() {
        let q = KeywordQuery::parse("What does  Wendeline prefer to eat? eat");
        assert_eq!(
            q.matching,
            Matching::AnyWord(
                ["What", "does", "Wendeline", "prefer", "to", "eat?", "eat"]
                    .map(String::from)
                    .to_vec()
            )
        );
        assert_eq!(q.scored_text, "What does Wendeline prefer to eat? eat");
    }

    #[test]
    fn quotes_or_an_excluded_word_switch_to_boolean_matching() {
        let q = KeywordQuery::parse("\"hooves trimmed\" -willow okapi");
        assert_eq!(q.matching, Matching::Boolean);
        assert_eq!(
            q.scored_text.split_whitespace().collect::<Vec<_>>(),
            ["hooves", "trimmed", "okapi"]
        );
        assert_eq!(KeywordQuery::parse("x -y").matching, Matching::Boolean);
    }

    #[test]
    fn a_hyphen_inside_or_alone_is_not_an_operator() {
        for text in ["well-known pattern", "a - b", "x --", "or either or"] {
            assert!(
                matches!(KeywordQuery::parse(text).matching, Matching::AnyWord(_)),
                "{text}"
            );
        }
    }

    #[test]
    fn words_are_bounded() {
        let long: String = (0..500).map(|i| format!("w{i} ")).collect();
        match KeywordQuery::parse(&long).matching {
            Matching::AnyWord(words) => assert_eq!(words.len(), MAX_WORDS),
            Matching::Boolean => panic!("not boolean"),
        }
    }
}
