//! The prompt for generative answers: instructions, the numbered sources, the conversation so
//! far and the question. Sources are numbered from 1 in retrieval order, as in `ChatSources`.

use super::Turn;
use crate::{
    llm::{Message, Role},
    search::Hit,
};

const INSTRUCTIONS: &str = "You answer questions using only the numbered sources below. \
After every sentence that uses a source, cite it as [n] with the source's number, e.g. [1] \
or [1][3]. Cite only numbers that appear in the list. If the sources do not contain the \
answer, say that you could not find it in the documents instead of guessing. Answer in the \
language of the question.";

/// Longest history kept, in characters, newest turns first (a coarse token budget).
const MAX_HISTORY_CHARS: usize = 8_000;

pub fn messages(question: &str, history: &[Turn], hits: &[Hit]) -> Vec<Message> {
    let mut system = String::from(INSTRUCTIONS);
    system.push_str("\n\nSources:\n");
    for (i, hit) in hits.iter().enumerate() {
        let heading = if hit.headings.is_empty() {
            String::new()
        } else {
            format!(" — {}", hit.headings.join(" > "))
        };
        system.push_str(&format!(
            "\n[{}] {}{}\n{}\n",
            i + 1,
            hit.filename,
            heading,
            hit.text.trim()
        ));
    }
    let mut out = vec![Message {
        role: Role::System,
        content: system,
    }];
    out.extend(trimmed_history(history));
    out.push(Message {
        role: Role::User,
        content: question.to_owned(),
    });
    out
}

/// The newest turns that fit in the budget, oldest first.
fn trimmed_history(history: &[Turn]) -> Vec<Message> {
    let mut used = 0;
    let mut kept: Vec<Message> = history
        .iter()
        .rev()
        .take_while(|turn| {
            used += turn.content.len();
            used <= MAX_HISTORY_CHARS
        })
        .map(|turn| Message {
            role: if turn.from_user {
                Role::User
            } else {
                Role::Assistant
            },
            content: turn.content.clone(),
        })
        .collect();
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_trimmed_oldest_first() {
        let long = "x".repeat(MAX_HISTORY_CHARS / 2 + 1);
        let history: Vec<Turn> = ["old", &long, &long]
            .iter()
            .map(|c| Turn {
                from_user: true,
                content: (*c).to_owned(),
            })
            .collect();
        let messages = messages("q?", &history, &[]);
        // system + one long turn + question: the oldest turns were dropped.
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[2].content, "q?");
    }
}
