//! Schemas written by hand because no Rust type carries them: the event streams (one schema
//! per stream, one branch per `event:` name, framing in `docs/sse-events.md`), the multipart
//! upload form and the OpenAI-compatible bodies built as dynamic JSON. Everything else derives
//! `ToSchema` on its own type. They are merged into `components.schemas` of the generated
//! spec as JSON, because they use JSON Schema 2020-12 keywords (`const`, `if`/`else`,
//! `contentSchema`) that utoipa's schema model does not carry.

use serde_json::{Value, json};

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// One branch of an event stream's schema: event `name` whose `data` is JSON of `payload`.
/// Schemathesis and other OpenAPI 3.1 tools read the `schema` of a `text/event-stream`
/// response as the schema of one event `{event, data, id, retry}`.
fn event(name: &str, payload: &str, description: &str, with_id: bool) -> Value {
    let mut required = vec!["event", "data"];
    if with_id {
        required.push("id");
    }
    json!({
        "title": name,
        "description": description,
        "type": "object",
        "required": required,
        "properties": {
            "event": { "const": name },
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": schema_ref(payload),
            },
            "id": { "type": "string", "pattern": "^[1-9][0-9]*$",
                    "description": "increases by one per event, from 1" },
            "retry": { "type": "integer", "description": "reconnection delay in ms (first event)" },
        },
    })
}

fn chat_stream() -> Value {
    json!({
        "description": "One event of `POST /api/v1/chat` and `GET /api/v1/chat/{conversation_id}/events`: \
                        `sources` first, then one `delta` per answer piece, then `final`; `error` if the \
                        answer breaks off; `done` always last.",
        "oneOf": [
            event("sources", "ChatSources", "the retrieved sources, numbered as the answer cites them", true),
            event("delta", "ChatDelta", "the answer's next piece", true),
            event("final", "ChatFinal", "finish reason, usage, timings and the checked citations", true),
            event("error", "Error", "the answer broke off (e.g. the LLM failed, or it was stopped: `cancelled`)", true),
            event("done", "Done", "the stream's end", true),
        ],
    })
}

fn asset_stream() -> Value {
    json!({
        "description": "One event of `GET /api/v1/assets/{id}/events`: an `asset` per progress change until \
                        the asset is final, then `done`.",
        "oneOf": [
            event("asset", "Asset", "the asset as it is now", true),
            event("error", "Error", "watching failed", true),
            event("reconnect", "Reconnect", "the stream reached its maximum duration \
                   (`THINKBANK_SSE_WATCH_MAX_SECS`) before the asset was final: watch again", true),
            event("done", "Done", "the stream's end (carries no id of its own)", false),
        ],
    })
}

fn completion_stream() -> Value {
    json!({
        "description": "One event of a streamed `POST /v1/chat/completions`, as OpenAI sends them: unnamed \
                        events whose data is a `chat.completion.chunk`, an error object if the answer breaks \
                        off, and finally the literal `[DONE]`.",
        "type": "object",
        "required": ["data"],
        "properties": {
            "event": { "const": "message" },
            "data": {
                "type": "string",
                "if": { "const": "[DONE]" },
                "else": {
                    "contentMediaType": "application/json",
                    "contentSchema": { "anyOf": [schema_ref("ChatCompletionChunk"), schema_ref("OpenAiError")] },
                },
            },
        },
    })
}

fn source() -> Value {
    json!({
        "type": "object",
        "required": ["index", "filename", "asset_id", "chunk_id", "score", "text"],
        "properties": {
            "index": { "type": "integer", "description": "the `[n]` the answer cites" },
            "filename": { "type": "string" }, "asset_id": { "type": "string" },
            "chunk_id": { "type": "string" }, "score": { "type": "number" }, "text": { "type": "string" },
        },
    })
}

fn citation() -> Value {
    json!({
        "type": "object",
        "required": ["source_index", "verified", "fabricated", "support"],
        "properties": {
            "source_index": { "type": "integer" }, "verified": { "type": "boolean" },
            "fabricated": { "type": "boolean" }, "support": { "type": "number" },
            "quoted": { "type": "boolean" },
        },
    })
}

fn completion_usage() -> Value {
    json!({
        "type": "object",
        "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
        "properties": {
            "prompt_tokens": { "type": "integer" }, "completion_tokens": { "type": "integer" },
            "total_tokens": { "type": "integer" },
        },
    })
}

fn chat_completion() -> Value {
    json!({
        "type": "object",
        "description": "A whole answer. `content` cites `[n]` and ends with a \"Sources\" footer.",
        "required": ["id", "object", "created", "model", "choices", "usage", "thinkbank_sources", "thinkbank_citations"],
        "properties": {
            "id": { "type": "string" }, "object": { "const": "chat.completion" },
            "created": { "type": "integer" }, "model": { "const": "thinkbank" },
            "choices": { "type": "array", "items": {
                "type": "object", "required": ["index", "message", "finish_reason"],
                "properties": {
                    "index": { "type": "integer" },
                    "message": { "type": "object", "required": ["role", "content"], "properties": {
                        "role": { "const": "assistant" }, "content": { "type": "string" } } },
                    "finish_reason": { "enum": ["stop", "length"] },
                    "logprobs": { "type": "null" },
                },
            } },
            "usage": schema_ref("CompletionUsage"),
            "thinkbank_sources": { "type": "array", "items": schema_ref("CompletionSource") },
            "thinkbank_citations": { "type": "array", "items": schema_ref("CompletionCitation") },
        },
    })
}

fn chat_completion_chunk() -> Value {
    json!({
        "type": "object",
        "description": "One piece of a streamed answer: the first carries the role and \
                        `thinkbank_sources`, the one with a `finish_reason` carries `thinkbank_citations`, \
                        and with `stream_options.include_usage` a last one has empty `choices` and `usage`.",
        "required": ["id", "object", "created", "model", "choices"],
        "properties": {
            "id": { "type": "string" }, "object": { "const": "chat.completion.chunk" },
            "created": { "type": "integer" }, "model": { "const": "thinkbank" },
            "choices": { "type": "array", "items": {
                "type": "object", "required": ["index", "delta", "finish_reason"],
                "properties": {
                    "index": { "type": "integer" },
                    "delta": { "type": "object", "properties": {
                        "role": { "const": "assistant" }, "content": { "type": "string" } } },
                    "finish_reason": { "enum": ["stop", "length", null] },
                    "logprobs": { "type": "null" },
                },
            } },
            "usage": schema_ref("CompletionUsage"),
            "thinkbank_sources": { "type": "array", "items": schema_ref("CompletionSource") },
            "thinkbank_citations": { "type": "array", "items": schema_ref("CompletionCitation") },
        },
    })
}

fn openai_error() -> Value {
    json!({
        "type": "object",
        "description": "A failure inside a stream, in OpenAI's shape; `code` is one of the error codes.",
        "required": ["error"],
        "properties": { "error": {
            "type": "object", "required": ["message", "type", "code"],
            "properties": { "message": { "type": "string" }, "type": { "type": "string" },
                            "code": { "type": "string" }, "param": { "type": "null" } },
        } },
    })
}

fn model_list() -> Value {
    json!({
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": { "const": "list" },
            "data": { "type": "array", "items": {
                "type": "object", "required": ["id", "object", "created", "owned_by"],
                "properties": { "id": { "type": "string" }, "object": { "const": "model" },
                                "created": { "type": "integer" }, "owned_by": { "type": "string" } },
            } },
        },
    })
}

fn upload_form() -> Value {
    json!({
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": { "type": "string", "contentMediaType": "application/octet-stream",
                      "description": "the document; its part's filename and content type are kept \
                                      (the format is detected from the bytes)" },
            "collection_id": { "type": "string", "description": "default: the default collection" },
            "external_id": { "type": "string",
                             "description": "your id for the document: changed bytes under the same \
                                             external id replace the old version" },
            "metadata": { "type": "string", "contentMediaType": "application/json",
                          "contentSchema": { "type": "object" },
                          "description": "a JSON object, filterable in search" },
            "wait": { "type": "string", "enum": ["true", "false", "1", "0", ""],
                      "description": "wait until the asset is ready or failed" },
        },
    })
}

/// Adds the hand-written schemas to `spec` (the generated description as JSON).
pub fn merge_into(spec: &mut Value) {
    let schemas = [
        ("ChatStreamEvent", chat_stream()),
        ("AssetStreamEvent", asset_stream()),
        (
            "Reconnect",
            json!({
                "type": "object",
                "required": ["reason"],
                "properties": { "reason": { "type": "string" } },
                "description": "why the stream ended before the asset was final",
            }),
        ),
        ("ChatCompletionStreamEvent", completion_stream()),
        (
            "Done",
            json!({ "type": "object", "maxProperties": 0, "description": "always `{}`" }),
        ),
        ("ChatCompletion", chat_completion()),
        ("ChatCompletionChunk", chat_completion_chunk()),
        ("CompletionUsage", completion_usage()),
        ("CompletionSource", source()),
        ("CompletionCitation", citation()),
        ("OpenAiError", openai_error()),
        ("ModelList", model_list()),
        ("UploadForm", upload_form()),
    ];
    if let Some(components) = spec["components"]["schemas"].as_object_mut() {
        components.extend(
            schemas
                .into_iter()
                .map(|(name, schema)| (name.to_owned(), schema)),
        );
    }
}
