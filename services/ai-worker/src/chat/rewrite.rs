//! Follow-up questions ("and when was it built?") retrieve poorly on their own, so with an LLM
//! the model first rewrites the question into a standalone one from the conversation; the
//! rewrite is used for retrieval only (the answer prompt keeps the user's words and the
//! history). Any failure falls back to the honest concatenation the extractive mode uses.

use futures::StreamExt as _;
use tokio::sync::mpsc;

use super::{ChatEvent, Turn, retrieve};
use crate::llm::{Llm, LlmEvent, Message, Role, Started};

const INSTRUCTIONS: &str = "Rewrite the user's last question as a standalone question that \
can be understood without the conversation, keeping names and details from earlier turns. \
Reply with the rewritten question only.";

/// Longest rewrite kept, in characters.
const MAX_CHARS: usize = 500;
/// Most recent turns shown to the rewriter.
const MAX_TURNS: usize = 6;

/// The text to retrieve with: the rewritten question when there is history and the model
/// answers, otherwise the question (with the previous user turn). `None` if the caller left.
pub async fn retrieval_text(
    llm: &Llm,
    question: &str,
    history: &[Turn],
    events: &mpsc::Sender<ChatEvent>,
) -> Option<String> {
    let fallback = retrieve::retrieval_query(question, history);
    if !llm.rewrite_questions || history.is_empty() {
        return Some(fallback);
    }
    let mut messages = vec![Message {
        image: None,
        role: Role::System,
        content: INSTRUCTIONS.into(),
    }];
    let start = history.len().saturating_sub(MAX_TURNS);
    messages.extend(history[start..].iter().map(|t| Message {
        image: None,
        role: if t.from_user {
            Role::User
        } else {
            Role::Assistant
        },
        content: t.content.clone(),
    }));
    messages.push(Message {
        image: None,
        role: Role::User,
        content: question.to_owned(),
    });
    let rewrite = async {
        let Started {
            mut buffered,
            mut rest,
            ..
        } = llm.start(messages).await.ok()?;
        let mut text = String::new();
        loop {
            let event = match buffered.pop_front() {
                Some(event) => Some(Ok(event)),
                None => tokio::time::timeout(llm.idle_timeout, rest.next())
                    .await
                    .ok()
                    .flatten(),
            };
            match event {
                None => break,
                Some(Ok(LlmEvent::Delta(piece))) => {
                    text.push_str(&piece);
                    if text.len() > MAX_CHARS {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) => return None,
            }
        }
        let text = text.trim();
        (!text.is_empty()).then(|| text.chars().take(MAX_CHARS).collect::<String>())
    };
    tokio::select! {
        biased;
        () = events.closed() => None,
        rewritten = rewrite => Some(rewritten.unwrap_or_else(|| {
            tracing::info!("question rewrite failed; retrieving with the question and the previous turn");
            fallback
        })),
    }
}
