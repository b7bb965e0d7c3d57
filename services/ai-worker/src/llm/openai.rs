//! The OpenAI-compatible backend on async-openai (OpenAI, vLLM, Ollama, llama.cpp server).
//!
//! Requests are plain JSON (`max_tokens`, which every compatible server accepts) and chunks
//! are read with lenient types through async-openai's bring-your-own-types calls, so providers
//! that omit `usage`, send `"finish_reason": ""` or add fields do not break the stream.

use async_openai::{Client, config::OpenAIConfig, error::OpenAIError, middleware::ReqwestService};
use futures::{StreamExt as _, future::BoxFuture};
use serde::Deserialize;
use serde_json::json;

use super::{ChatModel, LlmConfig, LlmError, LlmEvent, LlmStream, Message, Role};

#[derive(Debug)]
pub struct OpenAiCompatible {
    client: Client<OpenAIConfig>,
    model: String,
    temperature: f32,
    max_tokens: u32,
}

impl OpenAiCompatible {
    pub fn new(base_url: &str, config: &LlmConfig) -> Result<Self, LlmError> {
        // reqwest is built without a bundled crypto provider; use ring (already in the tree).
        // An error only means a provider is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest013::Client::builder()
            .connect_timeout(config.llm_connect_timeout)
            .read_timeout(config.llm_idle_timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| LlmError::Config(format!("cannot build the http client: {e}")))?;
        let openai = OpenAIConfig::new()
            .with_api_base(base_url.trim_end_matches('/'))
            .with_api_key(config.llm_api_key.clone());
        // The plain transport, without async-openai's built-in retry layer: retries happen in
        // `Llm::start`, only before the first token, and count towards the circuit breaker.
        let client = Client::with_config(openai).with_http_service(ReqwestService::new(http));
        Ok(Self {
            client,
            model: config.llm_model.clone(),
            temperature: config.llm_temperature,
            max_tokens: config.llm_max_tokens,
        })
    }
}

#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
}

fn role(role: &Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

fn map_error(error: OpenAIError) -> LlmError {
    match error {
        OpenAIError::ApiError(api) => LlmError::Http {
            status: api.status_code.as_u16(),
            message: api.api_error.message,
        },
        OpenAIError::Reqwest(e) if e.is_timeout() => LlmError::Transport(format!("timeout: {e}")),
        OpenAIError::Reqwest(e) => LlmError::Transport(e.to_string()),
        OpenAIError::JSONDeserialize(e, content) => {
            LlmError::Protocol(format!("{e} in {}", truncate(&content, 200)))
        }
        OpenAIError::StreamError(e) => LlmError::Broken(e.to_string()),
        other => LlmError::Protocol(other.to_string()),
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// The events one chunk carries, in order: text, then finish reason, then usage.
fn events(chunk: Chunk) -> Vec<LlmEvent> {
    let mut out = Vec::new();
    for choice in chunk.choices {
        if let Some(text) = choice.delta.and_then(|d| d.content)
            && !text.is_empty()
        {
            out.push(LlmEvent::Delta(text));
        }
        if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
            out.push(LlmEvent::Finish(reason));
        }
    }
    if let Some(usage) = chunk.usage
        && let (Some(prompt), Some(completion)) = (usage.prompt_tokens, usage.completion_tokens)
    {
        out.push(LlmEvent::Usage { prompt, completion });
    }
    out
}

impl ChatModel for OpenAiCompatible {
    fn model(&self) -> &str {
        &self.model
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), LlmError>> {
        Box::pin(async move {
            self.client
                .models()
                .list_byot::<serde_json::Value>()
                .await
                .map(|_| ())
                .map_err(map_error)
        })
    }

    fn stream(&self, messages: Vec<Message>) -> BoxFuture<'_, Result<LlmStream, LlmError>> {
        Box::pin(async move {
            let request = json!({
                "model": self.model,
                "messages": messages
                    .iter()
                    .map(|m| match &m.image {
                        // OpenAI's multimodal form: text and image parts.
                        Some(url) => json!({"role": role(&m.role), "content": [
                            {"type": "text", "text": m.content},
                            {"type": "image_url", "image_url": {"url": url}},
                        ]}),
                        None => json!({"role": role(&m.role), "content": m.content}),
                    })
                    .collect::<Vec<_>>(),
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
                "stream": true,
                "stream_options": {"include_usage": true},
            });
            let stream = self
                .client
                .chat()
                .create_stream_byot::<_, Chunk>(request)
                .await
                .map_err(map_error)?;
            let events = stream.flat_map(|item| {
                let items: Vec<Result<LlmEvent, LlmError>> = match item {
                    Ok(chunk) => events(chunk).into_iter().map(Ok).collect(),
                    Err(error) => vec![Err(map_error(error))],
                };
                futures::stream::iter(items)
            });
            Ok(Box::pin(events) as LlmStream)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Vec<LlmEvent> {
        events(serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn quirky_chunks_are_normalised() {
        assert_eq!(
            parse(r#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":""}],"x":1}"#),
            vec![LlmEvent::Delta("Hi".into())]
        );
        assert_eq!(
            parse(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#),
            vec![LlmEvent::Finish("length".into())]
        );
        assert_eq!(
            parse(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#),
            vec![LlmEvent::Usage {
                prompt: 3,
                completion: 4
            }]
        );
        assert!(
            parse(r#"{"choices":[{"delta":{"content":null},"finish_reason":null}]}"#).is_empty()
        );
        assert!(parse(r#"{"usage":null}"#).is_empty());
    }
}
