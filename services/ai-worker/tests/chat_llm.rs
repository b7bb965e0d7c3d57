//! ChatStream with an LLM configured: the worker against the OpenAI-compatible test server
//! (the one allowed fake), a real PostgreSQL and the real server on 127.0.0.1:0.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::time::{Duration, Instant};

use thinkbank_proto::v1::{self as pb, chat_stream_response::Event};
use thinkbank_testkit::{
    FAKE_MODEL, FakeLlm, FinishQuirk, Script, TestDatabase, WorkerHandle, llm_config,
    spawn_worker_with_llm,
};
use tokio_stream::StreamExt as _;
use tonic::{Code, Status, transport::Channel};

type Client = pb::ai_worker_client::AiWorkerClient<Channel>;

const VOLCANOES: &str = "# Volcanoes\n\nA volcano is an opening in the crust of the Earth through which molten rock, ash and gases escape. Magma that reaches the surface is called lava.\n";
const BAKING: &str = "Sourdough bread is leavened by a culture of wild yeast and lactic acid bacteria. Bakers feed the starter with flour and water every day.";
const QUESTION: &str = "What is magma called when it reaches the surface?";

async fn ingest(client: &mut Client) {
    for (name, text) in [("volcanoes.md", VOLCANOES), ("baking.txt", BAKING)] {
        let request = pb::ProcessAssetRequest {
            filename: name.into(),
            content: text.as_bytes().to_vec().into(),
            ..Default::default()
        };
        thinkbank_testkit::ingest_ready(client, request).await;
    }
}

/// A worker answering through `fake`, with the two documents ingested.
async fn stack(fake: &FakeLlm, db: &TestDatabase) -> (WorkerHandle, Client) {
    let worker = spawn_worker_with_llm(db, llm_config(fake)).await;
    let mut client = worker.client().await;
    ingest(&mut client).await;
    (worker, client)
}

fn ask(question: &str) -> pb::ChatStreamRequest {
    pb::ChatStreamRequest {
        question: question.into(),
        top_k: 2,
        ..Default::default()
    }
}

/// Every message of a stream, and the status it ended with (if it failed).
async fn collect(
    client: &mut Client,
    request: pb::ChatStreamRequest,
) -> (Vec<Event>, Option<Status>) {
    let mut stream = client.chat_stream(request).await.unwrap().into_inner();
    let mut events = Vec::new();
    while let Some(message) = stream.next().await {
        match message {
            Ok(message) => events.push(message.event.unwrap()),
            Err(status) => return (events, Some(status)),
        }
    }
    (events, None)
}

fn deltas(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Delta(d) => Some(d.text.clone()),
            _ => None,
        })
        .collect()
}

fn final_of(events: &[Event]) -> pb::ChatFinal {
    match events.last() {
        Some(Event::Final(f)) => f.clone(),
        other => panic!("last event must be final, got {other:?}"),
    }
}

#[tokio::test]
async fn generative_answer_relays_each_token_and_verifies_its_citations() {
    let answer = "Magma that reaches the surface is called lava [1].";
    let fake = FakeLlm::start(Script::words(answer)).await;
    let db = TestDatabase::create().await;
    let (worker, mut client) = stack(&fake, &db).await;

    let (events, status) = collect(&mut client, ask(QUESTION)).await;
    assert!(status.is_none(), "{status:?}");
    let Event::Sources(sources) = &events[0] else {
        panic!("first event must be sources: {:?}", events[0])
    };
    assert_eq!(sources.sources.len(), 2);
    let first = sources.sources[0].hit.as_ref().unwrap();
    assert_eq!(first.filename, "volcanoes.md");
    // One delta per model token, in order.
    assert_eq!(deltas(&events), Script::words(answer).tokens);
    let summary = final_of(&events);
    assert_eq!(summary.answer_mode, pb::AnswerMode::Generative as i32);
    assert_eq!(summary.finish_reason, pb::FinishReason::Stop as i32);
    assert_eq!(summary.model, FAKE_MODEL);
    let usage = summary.usage.unwrap();
    assert!(!usage.estimated);
    assert_eq!(usage.completion_tokens, 9);
    assert!(usage.prompt_tokens > 20);
    assert_eq!(summary.citations.len(), 1);
    assert!(summary.citations[0].verified && !summary.citations[0].fabricated);
    assert_eq!(summary.uncited_sources, vec![2]);
    let timings = summary.timings.unwrap();
    assert!(timings.time_to_first_token_ms >= timings.retrieval_ms);

    // The model was prompted with the numbered sources and asked to cite them.
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let prompt = requests[0].prompt();
    assert!(prompt.contains("[1] volcanoes.md"), "{prompt}");
    assert!(prompt.contains("called lava"), "{prompt}");
    assert!(prompt.contains("[2] baking.txt"), "{prompt}");
    assert!(prompt.contains("cite it as [n]"), "{prompt}");
    assert_eq!(requests[0].body["stream"], true);
    assert_eq!(requests[0].body["model"], FAKE_MODEL);
    worker.stop().await;
}

#[tokio::test]
async fn fabricated_and_unsupported_citations_are_flagged() {
    let answer = "Lava is magma that reaches the surface [1]. Bakers feed the starter with flour [1]. Volcanoes sing at night [7].";
    let fake = FakeLlm::start(Script::words(answer)).await;
    let db = TestDatabase::create().await;
    let (worker, mut client) = stack(&fake, &db).await;

    let (events, status) = collect(&mut client, ask(QUESTION)).await;
    assert!(status.is_none(), "{status:?}");
    let summary = final_of(&events);
    let one = summary
        .citations
        .iter()
        .find(|c| c.source_index == 1)
        .unwrap();
    // The second sentence citing [1] is about bread, so [1] does not verify as a whole.
    assert_eq!(one.occurrences, 2);
    assert!(!one.verified && !one.fabricated);
    let seven = summary
        .citations
        .iter()
        .find(|c| c.source_index == 7)
        .unwrap();
    assert!(seven.fabricated && !seven.verified);
    assert_eq!(summary.uncited_sources, vec![2]);
    worker.stop().await;
}

#[tokio::test]
async fn provider_quirks_do_not_break_the_stream_and_usage_is_counted_instead() {
    let script = Script::words("It is called lava [1].")
        .without_usage()
        .with_finish(FinishQuirk::Empty);
    let fake = FakeLlm::start(script).await;
    let db = TestDatabase::create().await;
    let (worker, mut client) = stack(&fake, &db).await;

    let (events, status) = collect(&mut client, ask(QUESTION)).await;
    assert!(status.is_none(), "{status:?}");
    let summary = final_of(&events);
    assert_eq!(summary.finish_reason, pb::FinishReason::Stop as i32);
    let usage = summary.usage.unwrap();
    assert!(usage.estimated);
    assert_eq!(usage.completion_tokens, 5);
    assert!(usage.prompt_tokens > 20);

    // A provider that never sends a finish reason and reports "length" are both understood.
    fake.push_script(Script::words("Lava [1].").with_finish(FinishQuirk::Null));
    fake.push_script(Script::words("Lava").with_finish(FinishQuirk::Value("length".into())));
    let (events, _) = collect(&mut client, ask(QUESTION)).await;
    assert_eq!(
        final_of(&events).finish_reason,
        pb::FinishReason::Stop as i32
    );
    let (events, _) = collect(&mut client, ask(QUESTION)).await;
    assert_eq!(
        final_of(&events).finish_reason,
        pb::FinishReason::Length as i32
    );
    worker.stop().await;
}

#[tokio::test]
async fn provider_errors_before_the_first_token_are_retried() {
    let fake = FakeLlm::start(Script::words("It is called lava [1].")).await;
    fake.push_script(Script::failing(429));
    fake.push_script(Script::failing(500));
    let db = TestDatabase::create().await;
    let (worker, mut client) = stack(&fake, &db).await;

    let (events, status) = collect(&mut client, ask(QUESTION)).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(deltas(&events).concat(), "It is called lava [1].");
    assert_eq!(fake.requests().len(), 3);
    worker.stop().await;
}

#[tokio::test]
async fn a_dead_provider_gives_unavailable_and_then_fails_fast() {
    let fake = FakeLlm::start(Script::failing(503)).await;
    let db = TestDatabase::create().await;
    let mut llm = llm_config(&fake);
    llm.llm_max_retries = 1;
    llm.llm_breaker_threshold = 2;
    let worker = spawn_worker_with_llm(&db, llm).await;
    let mut client = worker.client().await;
    ingest(&mut client).await;

    // First call: sources, then the failure as a gRPC status after two attempts.
    let (events, status) = collect(&mut client, ask(QUESTION)).await;
    assert!(
        matches!(events.as_slice(), [Event::Sources(_)]),
        "{events:?}"
    );
    assert_eq!(status.unwrap().code(), Code::Unavailable);
    assert_eq!(fake.requests().len(), 2);

    // The breaker is open: the call is refused before any stream opens, without a request.
    let status = client.chat_stream(ask(QUESTION)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("circuit open"),
        "{}",
        status.message()
    );
    assert_eq!(fake.requests().len(), 2);
    worker.stop().await;
}

#[tokio::test]
async fn a_stream_breaking_after_the_first_token_ends_with_an_error_and_no_retry() {
    let fake = FakeLlm::start(
        Script::words("Magma that reaches the surface is lava [1].").breaking_after(3),
    )
    .await;
    let db = TestDatabase::create().await;
    let (worker, mut client) = stack(&fake, &db).await;

    let (events, status) = collect(&mut client, ask(QUESTION)).await;
    assert_eq!(deltas(&events), vec!["Magma", " that", " reaches"]);
    assert!(!events.iter().any(|e| matches!(e, Event::Final(_))));
    assert_eq!(status.unwrap().code(), Code::Unavailable);
    assert_eq!(fake.requests().len(), 1);
    worker.stop().await;
}

#[tokio::test]
async fn a_corrupt_chunk_from_the_provider_ends_the_answer_with_an_error_not_a_crash() {
    let fake = FakeLlm::start(
        Script::words("Magma that reaches the surface is lava [1].").with_garbage_at(2),
    )
    .await;
    let db = TestDatabase::create().await;
    let (worker, mut client) = stack(&fake, &db).await;

    let (events, status) = collect(&mut client, ask(QUESTION)).await;
    // What came before the corrupt chunk reached the client; nothing after it is invented.
    assert_eq!(deltas(&events), vec!["Magma", " that"]);
    assert!(!events.iter().any(|e| matches!(e, Event::Final(_))));
    let status = status.expect("the stream ends with an error status");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(status.message().contains("unreadable"), "{status:?}");
    // The worker keeps serving: the next answer works.
    fake.push_script(Script::words("Lava is molten rock [1]."));
    let (events, status) = collect(&mut client, ask(QUESTION)).await;
    assert!(status.is_none(), "{status:?}");
    assert!(events.iter().any(|e| matches!(e, Event::Final(_))));
    worker.stop().await;
}

#[tokio::test]
async fn dropping_the_grpc_call_drops_the_upstream_llm_request() {
    let tokens: Vec<String> = (0..200).map(|i| format!(" word{i}")).collect();
    let fake = FakeLlm::start(Script::tokens(tokens).with_delay(Duration::from_millis(50))).await;
    let db = TestDatabase::create().await;
    let (worker, mut client) = stack(&fake, &db).await;

    let mut stream = client
        .chat_stream(ask(QUESTION))
        .await
        .unwrap()
        .into_inner();
    let mut seen = 0;
    while let Some(message) = stream.next().await {
        if let Event::Delta(_) = message.unwrap().event.unwrap() {
            seen += 1;
            if seen == 2 {
                break;
            }
        }
    }
    let dropped_at = Instant::now();
    drop(stream);
    let disconnected = fake.wait_for_disconnect(0, Duration::from_secs(5)).await;
    let Some(at) = disconnected else {
        panic!("the upstream request was not dropped within 5 s")
    };
    eprintln!(
        "upstream dropped {:?} after the gRPC call",
        at.saturating_duration_since(dropped_at)
    );
    assert!(!fake.requests()[0].completed);
    worker.stop().await;
}

#[tokio::test]
async fn an_empty_knowledge_base_answers_that_nothing_was_found_without_asking_the_model() {
    let fake = FakeLlm::start(Script::words("Invented answer [1].")).await;
    let db = TestDatabase::create().await;
    let worker = spawn_worker_with_llm(&db, llm_config(&fake)).await;
    let mut client = worker.client().await;

    let (events, status) = collect(&mut client, ask("What is the capital of Peru?")).await;
    assert!(status.is_none(), "{status:?}");
    assert!(deltas(&events).concat().contains("could not find"));
    assert!(final_of(&events).citations.is_empty());
    assert!(fake.requests().is_empty());
    worker.stop().await;
}

#[tokio::test]
async fn a_follow_up_is_rewritten_for_retrieval_and_the_history_is_sent_as_earlier_turns() {
    let fake = FakeLlm::start(Script::words("It is called lava [1].")).await;
    let db = TestDatabase::create().await;
    let (worker, mut client) = stack(&fake, &db).await;
    // The first call rewrites the follow-up into a standalone question.
    fake.push_script(Script::words(
        "What is magma called when it reaches the surface?",
    ));

    let mut request = ask("And what is it called up there?");
    request.history = vec![
        pb::ChatMessage {
            role: pb::ChatRole::User as i32,
            content: "What escapes from a volcano?".into(),
        },
        pb::ChatMessage {
            role: pb::ChatRole::Assistant as i32,
            content: "Molten rock, ash and gases [1].".into(),
        },
    ];
    let (events, status) = collect(&mut client, request).await;
    assert!(status.is_none(), "{status:?}");
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[0].prompt().contains("standalone question"));
    assert!(
        requests[0]
            .prompt()
            .ends_with("And what is it called up there?")
    );
    // Retrieval ran on the rewrite: the volcano document is source [1].
    let Event::Sources(sources) = &events[0] else {
        panic!("first event must be sources")
    };
    assert_eq!(
        sources.sources[0].hit.as_ref().unwrap().filename,
        "volcanoes.md"
    );
    // The answer prompt keeps the user's own words and the history.
    let body = &requests[1].body;
    assert_eq!(
        body["messages"][3]["content"],
        "And what is it called up there?"
    );
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, vec!["system", "user", "assistant", "user"]);
    assert_eq!(
        body["messages"][1]["content"],
        "What escapes from a volcano?"
    );
    worker.stop().await;
}

#[tokio::test]
async fn history_beyond_the_token_budget_is_dropped_oldest_first_and_reported() {
    let fake = FakeLlm::start(Script::words("It is called lava [1].")).await;
    let db = TestDatabase::create().await;
    let mut llm = llm_config(&fake);
    llm.llm_history_tokens = 10;
    let worker = spawn_worker_with_llm(&db, llm).await;
    let mut client = worker.client().await;
    ingest(&mut client).await;
    fake.push_script(Script::words(QUESTION));

    let mut request = ask(QUESTION);
    request.history = [
        "a very old question about something else entirely",
        "an old answer",
        "recent",
    ]
    .iter()
    .enumerate()
    .map(|(i, text)| pb::ChatMessage {
        role: if i % 2 == 0 {
            pb::ChatRole::User
        } else {
            pb::ChatRole::Assistant
        } as i32,
        content: (*text).into(),
    })
    .collect();
    let (events, status) = collect(&mut client, request).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(final_of(&events).history_messages_dropped, 1);
    let messages = fake.requests()[1].body["messages"]
        .as_array()
        .unwrap()
        .clone();
    // system, the two newest turns, the question.
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[1]["content"], "an old answer");
    worker.stop().await;
}
