//! Stored conversations over gRPC: the real worker with the fake LLM and a real PostgreSQL.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use std::time::Duration;

use thinkbank_proto::v1::{self as pb, chat_stream_response::Event};
use thinkbank_testkit::{FakeLlm, Script, TestDatabase, llm_config, spawn_worker_with_llm};
use tokio_stream::StreamExt as _;
use tonic::{Code, transport::Channel};

type Client = pb::ai_worker_client::AiWorkerClient<Channel>;

const VOLCANOES: &str = "# Volcanoes\n\nA volcano is an opening in the crust of the Earth through which molten rock, ash and gases escape. Magma that reaches the surface is called lava.\n";
const ANSWER: &str = "Magma that reaches the surface is called lava [1].";

async fn ingest(client: &mut Client) {
    client
        .process_asset(pb::ProcessAssetRequest {
            filename: "volcanoes.md".into(),
            content: VOLCANOES.as_bytes().to_vec().into(),
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap();
}

fn ask(question: &str, conversation_id: &str) -> pb::ChatStreamRequest {
    pb::ChatStreamRequest {
        question: question.into(),
        conversation_id: conversation_id.into(),
        ..Default::default()
    }
}

/// Runs a chat to its end; returns the conversation id from the sources message.
async fn chat(client: &mut Client, request: pb::ChatStreamRequest) -> String {
    let mut stream = client.chat_stream(request).await.unwrap().into_inner();
    let mut id = String::new();
    while let Some(message) = stream.next().await {
        if let Some(Event::Sources(s)) = message.unwrap().event {
            id = s.conversation_id;
        }
    }
    id
}

async fn get(client: &mut Client, id: &str) -> pb::GetConversationResponse {
    client
        .get_conversation(pb::GetConversationRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn answers_are_stored_and_a_conversation_continues_with_its_history() {
    let fake = FakeLlm::start(Script::words(ANSWER)).await;
    let db = TestDatabase::create().await;
    let worker = spawn_worker_with_llm(&db, llm_config(&fake)).await;
    let mut client = worker.client().await;
    ingest(&mut client).await;

    let id = chat(&mut client, ask("What is magma called at the surface?", "")).await;
    assert!(!id.is_empty());
    let stored = get(&mut client, &id).await;
    let conversation = stored.conversation.unwrap();
    assert_eq!(conversation.title, "What is magma called at the surface?");
    assert_eq!(conversation.message_count, 2);
    let [question, answer] = stored.messages.as_slice() else {
        panic!("expected two messages: {:?}", stored.messages)
    };
    assert_eq!(question.role, pb::ChatRole::User as i32);
    assert_eq!(answer.role, pb::ChatRole::Assistant as i32);
    assert_eq!(answer.content, ANSWER);
    assert_eq!(answer.finish_reason, pb::FinishReason::Stop as i32);
    assert_eq!(answer.answer_mode, pb::AnswerMode::Generative as i32);
    assert_eq!(
        answer.sources[0].hit.as_ref().unwrap().filename,
        "volcanoes.md"
    );
    assert!(answer.citations[0].verified);

    // Continuing by id: the stored turns are the model's history (the follow-up is first
    // rewritten into a standalone question, then answered).
    fake.push_script(Script::words("What escapes from a volcano with magma?"));
    let again = chat(&mut client, ask("And what escapes with it?", &id)).await;
    assert_eq!(again, id);
    assert_eq!(fake.requests().len(), 3);
    let body = &fake.requests()[2].body;
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(body["messages"][2]["content"], ANSWER);
    assert_eq!(get(&mut client, &id).await.messages.len(), 4);

    let listed = client
        .list_conversations(pb::ListConversationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.conversations.len(), 1);
    assert_eq!(listed.conversations[0].message_count, 4);
    worker.stop().await;
}

#[tokio::test]
async fn a_cancelled_answer_is_stored_as_far_as_the_caller_saw_it() {
    let tokens: Vec<String> = (0..100).map(|i| format!(" w{i}")).collect();
    let fake = FakeLlm::start(Script::tokens(tokens).with_delay(Duration::from_millis(40))).await;
    let db = TestDatabase::create().await;
    let worker = spawn_worker_with_llm(&db, llm_config(&fake)).await;
    let mut client = worker.client().await;
    ingest(&mut client).await;

    let mut stream = client
        .chat_stream(ask("What is magma called at the surface?", ""))
        .await
        .unwrap()
        .into_inner();
    let mut id = String::new();
    let mut seen = String::new();
    while let Some(message) = stream.next().await {
        match message.unwrap().event.unwrap() {
            Event::Sources(s) => id = s.conversation_id,
            Event::Delta(d) => {
                seen.push_str(&d.text);
                if seen.len() >= 6 {
                    break;
                }
            }
            Event::Final(_) => panic!("the answer should still be running"),
        }
    }
    drop(stream);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let stored = get(&mut client, &id).await;
        if let Some(answer) = stored.messages.get(1) {
            break answer.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answer.finish_reason, pb::FinishReason::Cancelled as i32);
    assert!(
        answer.content.starts_with(&seen),
        "{} vs {seen}",
        answer.content
    );
    assert!(answer.content.len() < 100 * 4, "{}", answer.content);
    worker.stop().await;
}

#[tokio::test]
async fn an_answer_broken_by_the_model_is_stored_with_finish_reason_error() {
    let fake = FakeLlm::start(Script::words(ANSWER).breaking_after(2)).await;
    let db = TestDatabase::create().await;
    let worker = spawn_worker_with_llm(&db, llm_config(&fake)).await;
    let mut client = worker.client().await;
    ingest(&mut client).await;

    let mut stream = client
        .chat_stream(ask("What is magma called at the surface?", ""))
        .await
        .unwrap()
        .into_inner();
    let mut id = String::new();
    while let Some(message) = stream.next().await {
        match message {
            Ok(pb::ChatStreamResponse {
                event: Some(Event::Sources(s)),
            }) => id = s.conversation_id,
            Ok(_) => {}
            Err(status) => assert_eq!(status.code(), Code::Unavailable),
        }
    }
    let stored = get(&mut client, &id).await;
    assert_eq!(
        stored.messages[1].finish_reason,
        pb::FinishReason::Error as i32
    );
    assert_eq!(stored.messages[1].content, "Magma that");
    worker.stop().await;
}

#[tokio::test]
async fn an_answer_cut_by_a_corrupt_chunk_is_stored_as_far_as_it_went_with_finish_reason_error() {
    let fake = FakeLlm::start(Script::words(ANSWER).with_garbage_at(2)).await;
    let db = TestDatabase::create().await;
    let worker = spawn_worker_with_llm(&db, llm_config(&fake)).await;
    let mut client = worker.client().await;
    ingest(&mut client).await;

    let mut stream = client
        .chat_stream(ask("What is magma called at the surface?", ""))
        .await
        .unwrap()
        .into_inner();
    let (mut id, mut failed) = (String::new(), None);
    while let Some(message) = stream.next().await {
        match message {
            Ok(pb::ChatStreamResponse {
                event: Some(Event::Sources(s)),
            }) => id = s.conversation_id,
            Ok(_) => {}
            Err(status) => failed = Some(status.code()),
        }
    }
    assert_eq!(failed, Some(Code::Internal));
    let stored = get(&mut client, &id).await;
    assert_eq!(
        stored.messages[1].finish_reason,
        pb::FinishReason::Error as i32
    );
    assert_eq!(stored.messages[1].content, "Magma that");
    worker.stop().await;
}

#[tokio::test]
async fn unknown_ids_are_not_found_and_deleted_conversations_are_gone() {
    let fake = FakeLlm::start(Script::words(ANSWER)).await;
    let db = TestDatabase::create().await;
    let worker = spawn_worker_with_llm(&db, llm_config(&fake)).await;
    let mut client = worker.client().await;
    ingest(&mut client).await;

    let unknown = "00000000-0000-0000-0000-00000000abcd";
    let status = client
        .chat_stream(ask("Hello there?", unknown))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .get_conversation(pb::GetConversationRequest { id: unknown.into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let id = chat(&mut client, ask("What is lava?", "")).await;
    let mut with_history = ask("And then?", &id);
    with_history.history = vec![pb::ChatMessage {
        role: pb::ChatRole::User as i32,
        content: "x".into(),
    }];
    let status = client.chat_stream(with_history).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    client
        .delete_conversation(pb::DeleteConversationRequest { id: id.clone() })
        .await
        .unwrap();
    let status = client
        .delete_conversation(pb::DeleteConversationRequest { id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let mut conn = db.connect().await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM worker.conversation_messages")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
    worker.stop().await;
}

#[tokio::test]
async fn a_conversation_can_be_renamed_without_changing_its_order_or_messages() {
    let fake = FakeLlm::start(Script::words(ANSWER)).await;
    let db = TestDatabase::create().await;
    let worker = spawn_worker_with_llm(&db, llm_config(&fake)).await;
    let mut client = worker.client().await;
    ingest(&mut client).await;
    let id = chat(&mut client, ask("What is lava?", "")).await;
    let before = get(&mut client, &id).await;

    let renamed = client
        .rename_conversation(pb::RenameConversationRequest {
            id: id.clone(),
            title: "  Lava   notes \n".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.title, "Lava notes");
    let after = get(&mut client, &id).await;
    let (before_conv, after_conv) = (
        before.conversation.unwrap(),
        after.conversation.clone().unwrap(),
    );
    assert_eq!(after_conv.title, "Lava notes");
    assert_eq!(after_conv.updated_at, before_conv.updated_at);
    assert_eq!(after.messages.len(), before.messages.len());

    for (title, code) in [
        ("   ", Code::InvalidArgument),
        (&"x".repeat(201), Code::InvalidArgument),
    ] {
        let status = client
            .rename_conversation(pb::RenameConversationRequest {
                id: id.clone(),
                title: title.to_owned(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "title {title:?}");
    }
    let status = client
        .rename_conversation(pb::RenameConversationRequest {
            id: "00000000-0000-0000-0000-00000000abcd".into(),
            title: "Anything".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        get(&mut client, &id).await.conversation.unwrap().title,
        "Lava notes"
    );
    worker.stop().await;
}

/// A request carrying the principal (and optionally the collections) the gateway would name.
fn as_principal<T>(message: T, principal: &str, collections: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert(
        thinkbank_proto::metadata::PRINCIPAL,
        principal.parse().unwrap(),
    );
    metadata.insert(thinkbank_proto::metadata::ROLE, "reader".parse().unwrap());
    if let Some(ids) = collections {
        metadata.insert(thinkbank_proto::metadata::COLLECTIONS, ids.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn answers_from_collections_outside_the_callers_are_never_returned_or_used_as_history() {
    const SECRET_ANSWER: &str = "Zanzibar-7351 says lava [1].";
    let fake = FakeLlm::start(Script::words(SECRET_ANSWER)).await;
    let db = TestDatabase::create().await;
    let worker = spawn_worker_with_llm(&db, llm_config(&fake)).await;
    let mut client = worker.client().await;
    ingest(&mut client).await;
    // A second collection with its own copy of the passage, so a caller limited to it still
    // retrieves something and the model is asked.
    let team = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO worker.collections (id, tenant_id, name, embedding_model) \
         SELECT $1, tenant_id, 'team', embedding_model FROM worker.collections \
         WHERE name = 'default' AND tenant_id = '00000000-0000-0000-0000-000000000001'",
    )
    .bind(team)
    .execute(&mut db.connect().await)
    .await
    .unwrap();
    client
        .process_asset(pb::ProcessAssetRequest {
            collection_id: team.to_string(),
            filename: "team-volcanoes.md".into(),
            content: format!("{VOLCANOES}\nThe team keeps this copy.\n")
                .into_bytes()
                .into(),
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap();

    // Started with every collection: the answer drew on the default one.
    let request = as_principal(
        ask("What is magma called at the surface?", ""),
        "key:k1",
        None,
    );
    let mut stream = client.chat_stream(request).await.unwrap().into_inner();
    let mut id = String::new();
    while let Some(message) = stream.next().await {
        if let Some(Event::Sources(s)) = message.unwrap().event {
            id = s.conversation_id;
        }
    }
    let full = get(&mut client, &id).await;
    assert_eq!(full.conversation.as_ref().unwrap().owner, "key:k1");
    assert!(
        full.messages[1]
            .sources
            .iter()
            .any(|s| s.hit.as_ref().unwrap().filename == "volcanoes.md")
    );

    // The same principal, now limited to the team collection, reads it back withheld.
    let team_only = team.to_string();
    let request = as_principal(
        pb::GetConversationRequest { id: id.clone() },
        "key:k1",
        Some(&team_only),
    );
    let scoped = client.get_conversation(request).await.unwrap().into_inner();
    let answer = &scoped.messages[1];
    assert!(answer.withheld);
    assert!(
        answer.content.is_empty() && answer.sources.is_empty(),
        "{answer:?}"
    );
    assert_eq!(
        scoped.messages[0].content,
        "What is magma called at the surface?"
    );

    // Continuing it, the withheld exchange is not history: the model never sees it.
    let asked = fake.requests().len();
    let request = as_principal(
        ask("What is magma called?", &id),
        "key:k1",
        Some(&team_only),
    );
    let mut stream = client.chat_stream(request).await.unwrap().into_inner();
    while let Some(message) = stream.next().await {
        if let Some(Event::Sources(s)) = message.unwrap().event {
            assert!(
                s.sources
                    .iter()
                    .all(|s| s.hit.as_ref().unwrap().collection_id == team_only)
            );
        }
    }
    let requests = fake.requests();
    assert!(requests.len() > asked, "the model was not asked");
    for request in &requests[asked..] {
        assert!(
            !request.prompt().contains("Zanzibar"),
            "{}",
            request.prompt()
        );
    }

    // Another principal: the conversation does not exist.
    let request = as_principal(
        pb::GetConversationRequest { id: id.clone() },
        "key:k2",
        None,
    );
    let status = client.get_conversation(request).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let request = as_principal(ask("What is magma called?", &id), "key:k2", None);
    let status = client.chat_stream(request).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    worker.stop().await;
}
