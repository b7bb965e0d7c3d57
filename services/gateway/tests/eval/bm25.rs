//! A textbook Okapi BM25 computed by the harness itself over the same documents the platform
//! ingests: the yardstick for the keyword leg. Whole documents (not chunks), lowercase
//! alphanumeric tokens, the Snowball English stemmer and stop-word list, k1 = 1.2, b = 0.75,
//! IDF ln(1 + (N − df + 0.5) / (df + 0.5)).

use std::collections::HashMap;

use rust_stemmers::{Algorithm, Stemmer};

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// Snowball's English stop words (the list PostgreSQL's `english` configuration uses too).
const STOP_WORDS: &str = "i me my myself we our ours ourselves you your yours yourself \
    yourselves he him his himself she her hers herself it its itself they them their theirs \
    themselves what which who whom this that these those am is are was were be been being have \
    has had having do does did doing a an the and but if or because as until while of at by for \
    with about against between into through during before after above below to from up down in \
    out on off over under again further then once here there when where why how all any both \
    each few more most other some such no nor not only own same so than too very s t can will \
    just don should now";

pub struct Index {
    stemmer: Stemmer,
    stop: std::collections::HashSet<&'static str>,
    /// Per document: term → frequency.
    docs: Vec<HashMap<String, u32>>,
    lengths: Vec<f64>,
    df: HashMap<String, u32>,
    avgdl: f64,
}

impl Index {
    pub fn new<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut index = Self {
            stemmer: Stemmer::create(Algorithm::English),
            stop: STOP_WORDS.split_whitespace().collect(),
            docs: Vec::new(),
            lengths: Vec::new(),
            df: HashMap::new(),
            avgdl: 0.0,
        };
        for text in texts {
            let terms = index.terms(text);
            let mut tf: HashMap<String, u32> = HashMap::new();
            for term in &terms {
                *tf.entry(term.clone()).or_default() += 1;
            }
            for term in tf.keys() {
                *index.df.entry(term.clone()).or_default() += 1;
            }
            index.lengths.push(terms.len() as f64);
            index.docs.push(tf);
        }
        let n = index.docs.len().max(1) as f64;
        index.avgdl = (index.lengths.iter().sum::<f64>() / n).max(1.0);
        index
    }

    fn terms(&self, text: &str) -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .filter(|w| !self.stop.contains(w.as_str()))
            .map(|w| self.stemmer.stem(&w).into_owned())
            .collect()
    }

    /// Document indexes by descending score, the best `k` with a positive score.
    pub fn search(&self, query: &str, k: usize) -> Vec<usize> {
        let n = self.docs.len() as f64;
        let mut terms = self.terms(query);
        terms.sort();
        terms.dedup();
        let mut scored: Vec<(f64, usize)> = self
            .docs
            .iter()
            .enumerate()
            .filter_map(|(i, tf)| {
                let norm = K1 * (1.0 - B + B * self.lengths[i] / self.avgdl);
                let score: f64 = terms
                    .iter()
                    .filter_map(|t| {
                        let f = f64::from(*tf.get(t)?);
                        let df = f64::from(self.df[t]);
                        let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                        Some(idf * f * (K1 + 1.0) / (f + norm))
                    })
                    .sum();
                (score > 0.0).then_some((score, i))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.into_iter().take(k).map(|(_, i)| i).collect()
    }
}

#[test]
fn the_reference_prefers_rare_terms_and_shorter_documents() {
    let index = Index::new([
        "the table lists every table",
        "sampling rows from a table",
        "a kitchen table and a kitchen table and a kitchen table",
    ]);
    assert_eq!(index.search("table sampling", 3)[0], 1);
    assert_eq!(index.search("tables", 3).len(), 3, "stemmed");
    assert!(index.search("the and", 3).is_empty(), "stop words only");
}
