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

/// The prompt's messages, and how many history turns were dropped to fit `history_budget`
/// tokens (counted by `count_tokens`), oldest first.
pub fn messages(
    question: &str,
    history: &[Turn],
    hits: &[Hit],
    history_budget: usize,
    count_tokens: &dyn Fn(&str) -> usize,
) -> (Vec<Message>, usize) {
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
        image: None,
        role: Role::System,
        content: system,
    }];
    let kept = trimmed_history(history, history_budget, count_tokens);
    let dropped = history.len() - kept.len();
    out.extend(kept);
    out.push(Message {
        image: None,
        role: Role::User,
        content: question.to_owned(),
    });
    (out, dropped)
}

/// The newest turns that fit in the budget, oldest first.
fn trimmed_history(
    history: &[Turn],
    budget: usize,
    count_tokens: &dyn Fn(&str) -> usize,
) -> Vec<Message> {
    let mut used = 0;
    let mut kept: Vec<Message> = history
        .iter()
        .rev()
        .take_while(|turn| {
            used += count_tokens(&turn.content);
            used <= budget
        })
        .map(|turn| Message {
            image: None,
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
        let words = |text: &str| text.split_whitespace().count();
        let history: Vec<Turn> = [
            "old turn",
            "six words in this long turn",
            "four words turn here",
        ]
        .iter()
        .map(|c| Turn {
            from_user: true,
            content: (*c).to_owned(),
        })
        .collect();
        let (messages, dropped) = messages("q?", &history, &[], 10, &words);
        // 4 + 6 words fit in 10; the oldest turn does not.
        assert_eq!(dropped, 1);
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[1].content, "six words in this long turn");
        assert_eq!(messages[3].content, "q?");
    }
}
