//! The relevance floor: whether anything retrieval found plausibly answers the question. Both
//! answerers abstain below it ("not in your documents") instead of quoting or prompting with
//! noise. The evidence is the best source's cosine similarity to the question (vector leg) and
//! the best source's keyword coverage (the share of the question's IDF weight one chunk holds,
//! keyword leg), combined linearly; the weights and the floor were calibrated on the answer
//! suite of `make eval` (services/gateway/tests/answer_eval.rs), whose figures are in the README.

use crate::search::{Hit, Mode};

/// Calibrated defaults (see the module documentation).
pub const DEFAULT_MIN_RELEVANCE: f32 = 0.575;
pub const DEFAULT_COVERAGE_WEIGHT: f32 = 0.5;
pub const DEFAULT_MIN_SENTENCE_SIMILARITY: f32 = 0.25;
/// Chat's keyword leg ranks passages on their own words: the document blend that search uses
/// put the answering source in the top five for fewer questions (answer suite hit@5 0.880 at
/// 0.6 against 0.916 at 0; README, "Search and ranking").
pub const DEFAULT_CHAT_DOCUMENT_WEIGHT: f64 = 0.0;

/// How chat retrieves and when it abstains (`THINKBANK_CHAT_*`).
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct AnswerConfig {
    /// How chat retrieves its sources when a request does not say: hybrid, vector or keyword.
    #[arg(long, env = "THINKBANK_CHAT_RETRIEVAL_MODE", default_value = "hybrid",
          value_parser = parse_mode)]
    pub chat_retrieval_mode: Mode,
    /// The relevance floor (see `RetrievalEvidence` in chat.proto); 0 never abstains.
    #[arg(long, env = "THINKBANK_CHAT_MIN_RELEVANCE", default_value_t = DEFAULT_MIN_RELEVANCE)]
    pub chat_min_relevance: f32,
    /// Weight of keyword coverage in the relevance.
    #[arg(long, env = "THINKBANK_CHAT_COVERAGE_WEIGHT", default_value_t = DEFAULT_COVERAGE_WEIGHT)]
    pub chat_coverage_weight: f32,
    /// Extractive answers quote only sentences at least this similar (cosine) to the question.
    #[arg(long, env = "THINKBANK_CHAT_MIN_SENTENCE_SIMILARITY",
          default_value_t = DEFAULT_MIN_SENTENCE_SIMILARITY)]
    pub chat_min_sentence_similarity: f32,
    /// The keyword leg's document weight for chat (see `Bm25::document_weight`).
    #[arg(long, env = "THINKBANK_CHAT_DOCUMENT_WEIGHT",
          default_value_t = DEFAULT_CHAT_DOCUMENT_WEIGHT)]
    pub chat_document_weight: f64,
}

impl Default for AnswerConfig {
    fn default() -> Self {
        Self {
            chat_retrieval_mode: Mode::Hybrid,
            chat_min_relevance: DEFAULT_MIN_RELEVANCE,
            chat_coverage_weight: DEFAULT_COVERAGE_WEIGHT,
            chat_min_sentence_similarity: DEFAULT_MIN_SENTENCE_SIMILARITY,
            chat_document_weight: DEFAULT_CHAT_DOCUMENT_WEIGHT,
        }
    }
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "hybrid" => Ok(Mode::Hybrid),
        "vector" => Ok(Mode::Vector),
        "keyword" => Ok(Mode::Keyword),
        other => Err(format!(
            "unknown retrieval mode '{other}': use hybrid, vector or keyword"
        )),
    }
}

/// What retrieval found, as the floor weighs it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Evidence {
    pub best_similarity: f32,
    pub best_keyword_coverage: f32,
    pub relevance: f32,
}

impl Evidence {
    /// The evidence of `hits` (with `explain` filled by the search).
    pub fn of(hits: &[Hit], config: &AnswerConfig) -> Self {
        let best_similarity = hits
            .iter()
            .filter_map(|h| h.explain.as_ref()?.vector_distance)
            .map(|d| 1.0 - d)
            .fold(0.0_f64, f64::max);
        let best_keyword_coverage = hits
            .iter()
            .filter_map(|h| h.keyword_coverage)
            .fold(0.0_f64, f64::max);
        #[expect(
            clippy::cast_possible_truncation,
            reason = "similarities are in [-1, 1]"
        )]
        let (similarity, coverage) = (best_similarity as f32, best_keyword_coverage as f32);
        Self {
            best_similarity: similarity,
            best_keyword_coverage: coverage,
            relevance: similarity + config.chat_coverage_weight * coverage,
        }
    }

    /// Whether the sources plausibly answer the question.
    pub fn passes(&self, config: &AnswerConfig) -> bool {
        self.relevance >= config.chat_min_relevance
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::Explain;

    fn hit(distance: Option<f64>, coverage: Option<f64>) -> Hit {
        Hit {
            chunk_id: uuid::Uuid::nil(),
            asset_id: uuid::Uuid::nil(),
            collection_id: uuid::Uuid::nil(),
            filename: String::new(),
            media_type: String::new(),
            text: String::new(),
            score: 0.0,
            chunk_index: 0,
            char_start: 0,
            char_end: 0,
            headings: Vec::new(),
            page: None,
            snippet: None,
            keyword_coverage: coverage,
            explain: Some(Explain {
                vector_distance: distance,
                ..Explain::default()
            }),
        }
    }

    #[test]
    fn evidence_takes_the_best_of_each_leg_and_weighs_coverage() {
        let config = AnswerConfig {
            chat_coverage_weight: 0.5,
            chat_min_relevance: 0.6,
            ..AnswerConfig::default()
        };
        let e = Evidence::of(&[hit(Some(0.6), None), hit(None, Some(0.8))], &config);
        assert!((e.best_similarity - 0.4).abs() < 1e-6);
        assert!((e.relevance - 0.8).abs() < 1e-6);
        assert!(e.passes(&config));
        assert!(!Evidence::of(&[hit(Some(0.7), Some(0.1))], &config).passes(&config));
        assert_eq!(Evidence::of(&[], &config).relevance, 0.0);
    }
}
