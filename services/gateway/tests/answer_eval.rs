//! Answer quality, measured through the public chat API of a live stack: the hand-written
//! suite in `eval/answers.json` — questions over the two eval corpora (the Rust Book and the
//! Linux man-pages, see `retrieval_eval.rs`), each with the source that answers it and key terms
//! a right answer contains, and questions nothing in the corpora answers.
//!
//! Reported (and written under `answers` into `bench/results/eval.json` by `make eval`):
//! - `hit_at_5`: the answering source among chat's five sources (hybrid retrieval);
//! - `key_term_recall`: the share of key terms in the extractive answer, and in the answer of
//!   a model that echoes its sources (`key_term_recall_llm_echo`, the fake LLM);
//! - `abstention_rate` on unanswerable questions and `false_abstention_rate` on answerable
//!   ones (an abstained answer scores no key terms);
//! - a calibration grid of the relevance floor over the evidence each answer reports, and (in
//!   the full run) what a follow-up's concatenated retrieval query costs after a change of topic.
//!
//! The knowledge base holds the answering sources whole plus distractors: in CI a sample of
//! `THINKBANK_EVAL_DISTRACTORS` (default 40) documents per corpus cut to 1200 characters; with
//! `THINKBANK_EVAL_SECTIONS=all` (`make eval`) every document of both corpora. The Wendeline
//! note of issue 21 is its own small test here.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]
#![expect(clippy::expect_used, reason = "set-up failures say what is missing")]

#[expect(
    dead_code,
    reason = "shared with the other eval binary, which uses other parts"
)]
mod eval;

use std::{collections::HashMap, time::Instant};

use eval::{Document, book, manpages};
use serde::Deserialize;
use serde_json::{Value, json};
use thinkbank_testkit::{
    FakeLlm, GatewayHandle, Script, SseJson as _, TestDatabase, fresh_objects_dir, llm_config,
    read_sse, spawn_worker_with, worker_config,
};

const DEFAULT_DISTRACTORS: usize = 40;
const DISTRACTOR_CHARS: usize = 1200;
const SOURCES: usize = 5;

#[derive(Debug, Deserialize)]
struct Suite {
    answerable: Vec<Answerable>,
    unanswerable: Vec<Unanswerable>,
}

#[derive(Debug, Deserialize)]
struct Answerable {
    corpus: String,
    source: String,
    question: String,
    key_terms: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Unanswerable {
    question: String,
}

fn suite() -> Suite {
    serde_json::from_str(include_str!("eval/answers.json")).expect("eval/answers.json")
}

/// What one chat answered.
#[derive(Debug, Clone, Default)]
struct Answer {
    text: String,
    sources: Vec<String>,
    abstained: bool,
    similarity: f64,
    coverage: f64,
}

async fn ask(http: &reqwest::Client, gateway: &GatewayHandle, body: Value) -> Answer {
    let response = http
        .post(gateway.url("/api/v1/chat"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{body}: {}",
        response.status()
    );
    let mut answer = Answer::default();
    for (_, event) in read_sse(response).await {
        match event.event.as_str() {
            "sources" => {
                answer.sources = event.json()["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["hit"]["asset_id"].as_str().unwrap().to_owned())
                    .collect();
            }
            "delta" => answer
                .text
                .push_str(event.json()["text"].as_str().unwrap_or_default()),
            "final" => {
                let data = event.json();
                answer.abstained = data["abstained"].as_bool().unwrap();
                answer.similarity = data["evidence"]["best_similarity"].as_f64().unwrap();
                answer.coverage = data["evidence"]["best_keyword_coverage"].as_f64().unwrap();
            }
            "error" => panic!("{body}: {}", event.data),
            _ => {}
        }
    }
    answer
}

/// Share of `terms` found (case-insensitive) in `text`.
fn term_recall(text: &str, terms: &[String]) -> f64 {
    let text = text.to_lowercase();
    let found = terms
        .iter()
        .filter(|t| text.contains(&t.to_lowercase()))
        .count();
    found as f64 / terms.len().max(1) as f64
}

/// The two stacks sharing one database and object store: an extractive worker, and a worker
/// whose LLM is the fake echoing its sources; a gateway in front of each.
struct Stacks {
    _db: TestDatabase,
    _fake: FakeLlm,
    workers: Vec<thinkbank_testkit::WorkerHandle>,
    extractive: GatewayHandle,
    generative: GatewayHandle,
}

async fn stacks() -> Stacks {
    let db = TestDatabase::create().await;
    let objects = fresh_objects_dir();
    let extractive_worker = spawn_worker_with(worker_config(&db, &objects)).await;
    let fake = FakeLlm::start(Script::echoing_sources()).await;
    let mut config = worker_config(&db, &objects);
    config.llm = llm_config(&fake);
    let generative_worker = spawn_worker_with(config).await;
    let extractive = eval::spawn_gateway(&extractive_worker.url(), &db.url).await;
    let generative = eval::spawn_gateway(&generative_worker.url(), &db.url).await;
    Stacks {
        _db: db,
        _fake: fake,
        workers: vec![extractive_worker, generative_worker],
        extractive,
        generative,
    }
}

#[derive(Debug, Default)]
struct Tally {
    n: usize,
    value: f64,
}

impl Tally {
    fn add(&mut self, value: f64) {
        self.n += 1;
        self.value += value;
    }
    fn mean(&self) -> f64 {
        self.value / self.n.max(1) as f64
    }
}

#[tokio::test]
async fn answer_suite_answers_what_the_corpora_hold_and_abstains_on_the_rest() {
    let suite = suite();
    assert!(suite.answerable.len() >= 60 && suite.unanswerable.len() >= 30);
    let full = eval::env_count("THINKBANK_EVAL_SECTIONS", 0) == usize::MAX;
    let distractors = eval::env_count("THINKBANK_EVAL_DISTRACTORS", DEFAULT_DISTRACTORS);

    // Sources by corpus and id, then the knowledge base: every answering source whole, plus
    // the distractors.
    let book_docs = book::documents(0);
    let man_docs = manpages::all_pages();
    let find = |corpus: &str, id: &str| -> Document {
        let docs = if corpus == "rust-book" {
            &book_docs
        } else {
            &man_docs
        };
        docs.iter()
            .find(|d| d.id == id)
            .unwrap_or_else(|| panic!("{corpus}: no document {id}"))
            .clone()
    };
    let mut kb: Vec<(String, Document)> = Vec::new();
    for q in &suite.answerable {
        if !kb.iter().any(|(_, d)| d.id == q.source) {
            kb.push((q.corpus.clone(), find(&q.corpus, &q.source)));
        }
    }
    let sources = kb.len();
    for (corpus, docs, cap) in [
        ("rust-book", &book_docs, usize::MAX),
        ("manpages", &man_docs, manpages::MAX_CHARS),
    ] {
        let pool: Vec<Document> = docs
            .iter()
            .filter(|d| !kb.iter().any(|(_, k)| k.id == d.id))
            .cloned()
            .collect();
        let chosen = if full {
            pool
        } else {
            eval::sample(pool, distractors)
        };
        let cap = if full { cap } else { DISTRACTOR_CHARS };
        for mut doc in chosen {
            eval::truncate(&mut doc.body, cap);
            kb.push((corpus.to_owned(), doc));
        }
    }

    let stacks = stacks().await;
    let http = stacks.extractive.client();
    let started = Instant::now();
    let mut asset_of: HashMap<String, String> = HashMap::new();
    let mut ids = Vec::new();
    for (i, (corpus, doc)) in kb.iter().enumerate() {
        let extension = if corpus == "rust-book" { "txt" } else { "md" };
        let id = eval::upload(
            &http,
            &stacks.extractive,
            None,
            &format!("doc-{i:04}.{extension}"),
            &doc.body,
        )
        .await;
        asset_of.insert(doc.id.clone(), id.clone());
        ids.push(id);
    }
    eval::wait_ready(&http, &stacks.extractive, &ids).await;
    eprintln!(
        "answers: {} documents ({sources} answering sources) ingested in {:.1}s",
        kb.len(),
        started.elapsed().as_secs_f64()
    );

    let generative_http = stacks.generative.client();
    let mut hit5 = Tally::default();
    let mut recall = Tally::default();
    let mut recall_llm = Tally::default();
    let mut false_abstentions = Tally::default();
    // (similarity, coverage, answerable) per question, for the calibration grid.
    let mut evidence: Vec<(f64, f64, bool)> = Vec::new();
    let mut answered: Vec<Answer> = Vec::new();
    for q in &suite.answerable {
        let body = json!({"question": q.question, "top_k": SOURCES});
        let answer = ask(&http, &stacks.extractive, body.clone()).await;
        let echoed = ask(&generative_http, &stacks.generative, body).await;
        let relevant = &asset_of[&q.source];
        hit5.add(f64::from(u8::from(answer.sources.contains(relevant))));
        recall.add(if answer.abstained {
            0.0
        } else {
            term_recall(&answer.text, &q.key_terms)
        });
        recall_llm.add(if echoed.abstained {
            0.0
        } else {
            term_recall(&echoed.text, &q.key_terms)
        });
        false_abstentions.add(f64::from(u8::from(answer.abstained)));
        evidence.push((answer.similarity, answer.coverage, true));
        if answer.abstained {
            eprintln!(
                "answers: abstained on answerable {:?} (sim {:.3}, coverage {:.3})",
                q.question, answer.similarity, answer.coverage
            );
        }
        answered.push(answer);
    }
    let mut abstentions = Tally::default();
    let mut abstentions_llm = Tally::default();
    for q in &suite.unanswerable {
        let body = json!({"question": q.question, "top_k": SOURCES});
        let answer = ask(&http, &stacks.extractive, body.clone()).await;
        abstentions.add(f64::from(u8::from(answer.abstained)));
        // The generative answerer abstains on the same floor (the Wendeline test checks it);
        // the full run measures it too, CI saves the time.
        if full {
            let echoed = ask(&generative_http, &stacks.generative, body).await;
            abstentions_llm.add(f64::from(u8::from(echoed.abstained)));
        }
        evidence.push((answer.similarity, answer.coverage, false));
        if !answer.abstained {
            eprintln!(
                "answers: answered unanswerable {:?} (sim {:.3}, coverage {:.3}): {}",
                q.question,
                answer.similarity,
                answer.coverage,
                answer.text.chars().take(120).collect::<String>()
            );
        }
    }

    let mut report = json!({
        "questions": {"answerable": suite.answerable.len(), "unanswerable": suite.unanswerable.len()},
        "documents": kb.len(),
        "hit_at_5": eval::round(hit5.mean()),
        "key_term_recall": eval::round(recall.mean()),
        "key_term_recall_llm_echo": eval::round(recall_llm.mean()),
        "abstention_rate": eval::round(abstentions.mean()),
        "abstention_rate_llm": (abstentions_llm.n > 0).then(|| eval::round(abstentions_llm.mean())),
        "false_abstention_rate": eval::round(false_abstentions.mean()),
    });
    eprintln!("answers: {report}");
    calibration_grid(&evidence);
    if full || std::env::var("THINKBANK_EVAL_FOLLOWUP").is_ok_and(|v| v == "1") {
        let switched =
            follow_up_after_topic_switch(&http, &stacks.extractive, &suite, &asset_of).await;
        report["follow_up_topic_switch_hit_at_5"] = json!(eval::round(switched));
        eprintln!("answers: hit@5 of a question asked after an unrelated one: {switched:.4}");
    }
    eval::report("answers", report);

    // CI guards: the goals of issue 21 on the small knowledge base.
    assert!(
        abstentions.mean() >= 0.9,
        "abstention rate {:.3}",
        abstentions.mean()
    );
    assert!(
        false_abstentions.mean() <= 0.1,
        "false abstention rate {:.3}",
        false_abstentions.mean()
    );
    assert!(hit5.mean() >= 0.8, "hit@5 {:.3}", hit5.mean());
    for worker in stacks.workers {
        worker.stop().await;
    }
}

/// Abstention on unanswerable and false abstention on answerable questions for floors over a
/// grid of coverage weights: how the defaults were chosen.
fn calibration_grid(evidence: &[(f64, f64, bool)]) {
    for weight in [0.0, 0.25, 0.5, 1.0] {
        let mut line = format!("answers: calibration weight {weight:.2}:");
        for step in 0..=12 {
            let floor = 0.3 + 0.025 * f64::from(step);
            let rate = |answerable: bool| {
                let group: Vec<_> = evidence.iter().filter(|e| e.2 == answerable).collect();
                let below = group
                    .iter()
                    .filter(|(s, c, _)| s + weight * c < floor)
                    .count();
                below as f64 / group.len().max(1) as f64
            };
            line.push_str(&format!(" {floor:.3}→{:.2}/{:.2}", rate(false), rate(true)));
        }
        eprintln!("{line}   (floor→abstention/false abstention)");
    }
}

/// hit@5 of every answerable question asked as a follow-up of the next one in the suite (a
/// change of topic): chat retrieves with the previous user turn prepended.
async fn follow_up_after_topic_switch(
    http: &reqwest::Client,
    gateway: &GatewayHandle,
    suite: &Suite,
    asset_of: &HashMap<String, String>,
) -> f64 {
    let mut hits = Tally::default();
    let n = suite.answerable.len();
    for (i, q) in suite.answerable.iter().enumerate() {
        let previous = &suite.answerable[(i + 1) % n];
        let body = json!({
            "question": q.question, "top_k": SOURCES,
            "history": [{"role": "user", "content": previous.question},
                        {"role": "assistant", "content": "…"}],
        });
        let answer = ask(http, gateway, body).await;
        hits.add(f64::from(u8::from(
            answer.sources.contains(&asset_of[&q.source]),
        )));
    }
    hits.mean()
}

const WENDELINE: &str = "The okapi named Wendeline prefers willow leaves and bananas. In spring \
    Wendeline had her hooves trimmed by Dr. Ferreira, who also checked her teeth.";

#[tokio::test]
async fn the_wendeline_note_answers_its_questions_and_nothing_else() {
    let stacks = stacks().await;
    let http = stacks.extractive.client();
    let mut ids = vec![eval::upload(&http, &stacks.extractive, None, "note.txt", WENDELINE).await];
    for (name, text) in [
        (
            "groceries.txt",
            "Remember to buy oat milk and coffee beans on Friday.",
        ),
        (
            "sampling.txt",
            "The BERNOULLI method scans the whole table and selects each row independently.",
        ),
        (
            "shells.txt",
            "Use chsh to change your login shell; it must be listed in /etc/shells.",
        ),
    ] {
        ids.push(eval::upload(&http, &stacks.extractive, None, name, text).await);
    }
    eval::wait_ready(&http, &stacks.extractive, &ids).await;

    let answer = ask(
        &http,
        &stacks.extractive,
        json!({"question": "What does Wendeline prefer to eat?"}),
    )
    .await;
    assert!(!answer.abstained, "{answer:?}");
    assert!(
        answer.text.contains("willow leaves") && answer.text.contains("[1]"),
        "{answer:?}"
    );
    assert_eq!(answer.sources.first(), Some(&ids[0]));
    assert!(
        !answer.text.contains("oat milk") && !answer.text.contains("BERNOULLI"),
        "{answer:?}"
    );

    // Every retrieval mode can be asked for; the keyword leg alone finds the note too.
    for mode in ["keyword", "vector", "hybrid"] {
        let body =
            json!({"question": "What does Wendeline prefer to eat?", "retrieval_mode": mode});
        let answer = ask(&http, &stacks.extractive, body).await;
        assert!(answer.text.contains("willow leaves"), "{mode}: {answer:?}");
    }
    let refused = http
        .post(stacks.extractive.url("/api/v1/chat"))
        .json(&json!({"question": "Wendeline?", "retrieval_mode": "psychic"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let error: Value = refused.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retrieval_mode"),
        "{error}"
    );

    let answer = ask(
        &http,
        &stacks.extractive,
        json!({"question": "Who trimmed Wendeline's hooves?"}),
    )
    .await;
    assert!(
        answer.text.contains("Dr. Ferreira"),
        "not cut at the abbreviation: {answer:?}"
    );
    assert!(!answer.text.contains("chsh"), "{answer:?}");

    for question in [
        "What is the capital of Australia?",
        "How do I bake sourdough bread?",
    ] {
        for gateway in [&stacks.extractive, &stacks.generative] {
            let answer = ask(&gateway.client(), gateway, json!({"question": question})).await;
            assert!(answer.abstained, "{question}: {answer:?}");
            assert!(answer.text.starts_with("I could not find"), "{answer:?}");
            assert!(!answer.text.contains('['), "no citations: {answer:?}");
        }
    }
    for worker in stacks.workers {
        worker.stop().await;
    }
}
