//! `AiWorker` over tonic. Handlers validate and translate; the work happens in the domain
//! modules. Until start-up finishes every RPC answers UNAVAILABLE.

use std::{
    pin::Pin,
    sync::{Arc, OnceLock},
};

use futures::Stream;
use thinkbank_proto::v1::{self as pb, ai_worker_server::AiWorker};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{convert, embeddings, search_convert};
use crate::{
    State,
    assets::ListFilter,
    chat,
    error::{WorkerError, parse_uuid},
    search,
    tenancy::Tenant,
};

/// Bytes of one query or question.
const MAX_QUERY_BYTES: usize = 8 * 1024;
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 200;

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[derive(Debug, Clone)]
pub struct AiWorkerService {
    state: Arc<OnceLock<Arc<State>>>,
    callers: super::caller::Callers,
}

impl AiWorkerService {
    pub fn new(state: Arc<OnceLock<Arc<State>>>, callers: super::caller::Callers) -> Self {
        Self { state, callers }
    }

    /// Authenticates the caller and returns the tenant it acts for.
    fn caller<T>(&self, request: &Request<T>) -> Result<Tenant, Status> {
        self.callers.tenant(request.metadata())
    }

    /// The same, with whose conversations the caller may touch.
    fn conversation_caller<T>(
        &self,
        request: &Request<T>,
    ) -> Result<(Tenant, chat::conversations::Access), Status> {
        let tenant = self.caller(request)?;
        let access = super::caller::access(request.metadata(), &tenant)?;
        Ok((tenant, access))
    }

    fn state(&self) -> Result<Arc<State>, Status> {
        self.state
            .get()
            .cloned()
            .ok_or_else(|| Status::unavailable("the worker is starting; retry shortly"))
    }
}

fn optional_uuid(field: &str, value: &str) -> Result<Option<Uuid>, WorkerError> {
    if value.trim().is_empty() {
        Ok(None)
    } else {
        parse_uuid(field, value).map(Some)
    }
}

pub(super) fn uuids(field: &str, values: &[String]) -> Result<Vec<Uuid>, WorkerError> {
    values.iter().map(|v| parse_uuid(field, v)).collect()
}

fn require_text(field: &str, value: &str) -> Result<(), WorkerError> {
    if value.trim().is_empty() {
        return Err(WorkerError::InvalidArgument(format!(
            "{field} must not be empty"
        )));
    }
    if value.len() > MAX_QUERY_BYTES {
        return Err(WorkerError::InvalidArgument(format!(
            "{field} is longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    // PostgreSQL text cannot hold NUL: storing a question with one failed as an internal error.
    if value.contains('\0') {
        return Err(WorkerError::InvalidArgument(format!(
            "{field} must not contain NUL characters (U+0000)"
        )));
    }
    Ok(())
}

pub(super) fn bounded(
    field: &str,
    value: u32,
    default: usize,
    max: usize,
) -> Result<usize, WorkerError> {
    match usize::try_from(value).unwrap_or(usize::MAX) {
        0 => Ok(default),
        n if n <= max => Ok(n),
        n => Err(WorkerError::InvalidArgument(format!(
            "{field} must be between 1 and {max}, got {n}"
        ))),
    }
}

/// A keyset page token: the sort time and id of the last row returned. `parse_page_token`
/// reads it back.
pub(super) fn page_token(time: chrono::DateTime<chrono::Utc>, id: Uuid) -> String {
    format!("{}.{id}", time.timestamp_micros())
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z in microseconds since the epoch.
const MIN_TOKEN_MICROS: i64 = -62_135_596_800_000_000;
const MAX_TOKEN_MICROS: i64 = 253_402_300_799_999_999;

pub(super) fn parse_page_token(
    token: &str,
) -> Result<Option<(chrono::DateTime<chrono::Utc>, Uuid)>, WorkerError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid =
        || WorkerError::InvalidArgument("page_token is not a token this server issued".into());
    let (micros, id) = token.split_once('.').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    // Rows are stamped by the database clock: a time outside years 1-9999 was never issued,
    // and PostgreSQL would refuse most of them (an internal error instead of this one).
    if !(MIN_TOKEN_MICROS..=MAX_TOKEN_MICROS).contains(&micros) {
        return Err(invalid());
    }
    let time = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    let id = Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok(Some((time, id)))
}

#[tonic::async_trait]
impl AiWorker for AiWorkerService {
    async fn process_asset(
        &self,
        request: Request<pb::ProcessAssetRequest>,
    ) -> Result<Response<pb::ProcessAssetResponse>, Status> {
        let state = self.state()?;
        let tenant = self.caller(&request)?;
        super::uploads::process_asset(state, tenant, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn upload_asset(
        &self,
        request: Request<tonic::Streaming<pb::UploadAssetRequest>>,
    ) -> Result<Response<pb::ProcessAssetResponse>, Status> {
        let state = self.state()?;
        let tenant = self.caller(&request)?;
        super::uploads::upload_asset(state, tenant, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_embedding(
        &self,
        request: Request<pb::GetEmbeddingRequest>,
    ) -> Result<Response<pb::GetEmbeddingResponse>, Status> {
        let state = self.state()?;
        self.caller(&request)?;
        super::embeddings::get_embedding(&state, request.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn vector_search(
        &self,
        request: Request<pb::VectorSearchRequest>,
    ) -> Result<Response<pb::VectorSearchResponse>, Status> {
        let state = self.state()?;
        let tenant = self.caller(&request)?;
        let message = request.into_inner();
        require_text("query", &message.query)?;
        let query = search_convert::query(message)?;
        let mode = query.mode;
        let outcome =
            search::search(&state.pool, &state.models, &state.ranking, &tenant, &query).await?;
        if let Some(shadow) = &state.shadow {
            shadow.observe(&tenant, &query, &outcome);
        }
        Ok(Response::new(search_convert::response(outcome, mode)))
    }

    type ChatStreamStream = EventStream<pb::ChatStreamResponse>;

    async fn chat_stream(
        &self,
        request: Request<pb::ChatStreamRequest>,
    ) -> Result<Response<Self::ChatStreamStream>, Status> {
        let state = self.state()?;
        let (tenant, access) = self.conversation_caller(&request)?;
        let message = request.into_inner();
        require_text("question", &message.question)?;
        let top_k = bounded(
            "top_k",
            message.top_k,
            chat::DEFAULT_SOURCES,
            chat::MAX_SOURCES,
        )?;
        let filters = search::Filters {
            collection_ids: uuids("collection_ids", &message.collection_ids)?,
            asset_ids: Vec::new(),
        };
        let history: Vec<chat::Turn> = message
            .history
            .into_iter()
            .map(|m| chat::Turn {
                from_user: m.role != pb::ChatRole::Assistant as i32,
                content: m.content,
            })
            .collect();
        let ask = super::chat::Ask {
            tenant,
            access,
            question: message.question,
            history,
            conversation_id: optional_uuid("conversation_id", &message.conversation_id)?,
            filters,
            top_k,
            mode: super::search_convert::optional_mode("retrieval_mode", message.retrieval_mode)?,
        };
        let responses = super::chat::chat_stream(state, ask).await?;
        Ok(Response::new(Box::pin(responses)))
    }

    async fn list_conversations(
        &self,
        request: Request<pb::ListConversationsRequest>,
    ) -> Result<Response<pb::ListConversationsResponse>, Status> {
        let state = self.state()?;
        let (tenant, access) = self.conversation_caller(&request)?;
        let message = request.into_inner();
        let page_size = match message.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n <= MAX_PAGE_SIZE => n,
            n => {
                return Err(WorkerError::InvalidArgument(format!(
                    "page_size must be between 1 and {MAX_PAGE_SIZE}, got {n}"
                ))
                .into());
            }
        };
        let after = parse_page_token(&message.page_token)?;
        Ok(Response::new(
            super::chat::list(
                &state,
                &tenant,
                &access,
                message.all_owners,
                after,
                page_size,
            )
            .await?,
        ))
    }

    async fn get_conversation(
        &self,
        request: Request<pb::GetConversationRequest>,
    ) -> Result<Response<pb::GetConversationResponse>, Status> {
        let state = self.state()?;
        let (tenant, access) = self.conversation_caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        Ok(Response::new(
            super::chat::get(&state, &tenant, &access, id).await?,
        ))
    }

    async fn delete_conversation(
        &self,
        request: Request<pb::DeleteConversationRequest>,
    ) -> Result<Response<pb::DeleteConversationResponse>, Status> {
        let state = self.state()?;
        let (tenant, access) = self.conversation_caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        chat::conversations::delete(&state.pool, &tenant, &access, id).await?;
        Ok(Response::new(pb::DeleteConversationResponse {}))
    }

    async fn rename_conversation(
        &self,
        request: Request<pb::RenameConversationRequest>,
    ) -> Result<Response<pb::Conversation>, Status> {
        let state = self.state()?;
        let (tenant, access) = self.conversation_caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        let title = &request.get_ref().title;
        chat::conversations::rename(&state.pool, &tenant, &access, id, title).await?;
        let purpose = chat::conversations::Purpose::Act;
        let row = chat::conversations::get(&state.pool, &tenant, &access, purpose, id).await?;
        Ok(Response::new(convert::conversation(&row)))
    }

    async fn check_dependencies(
        &self,
        request: Request<pb::CheckDependenciesRequest>,
    ) -> Result<Response<pb::CheckDependenciesResponse>, Status> {
        let state = self.state()?;
        self.caller(&request)?;
        let checks = crate::readiness::check(&state)
            .await
            .into_iter()
            .map(|c| pb::DependencyCheck {
                name: c.name.to_owned(),
                ok: c.error.is_none(),
                latency_ms: c.latency_ms,
                error: c.error.unwrap_or_default(),
                required: c.required,
            })
            .collect();
        Ok(Response::new(pb::CheckDependenciesResponse { checks }))
    }

    async fn get_chat_info(
        &self,
        request: Request<pb::GetChatInfoRequest>,
    ) -> Result<Response<pb::ChatInfo>, Status> {
        let state = self.state()?;
        self.caller(&request)?;
        let info = match &state.llm {
            Some(llm) => pb::ChatInfo {
                answer_mode: pb::AnswerMode::Generative as i32,
                model: llm.model().to_owned(),
                llm_unavailable: llm.is_unavailable(),
            },
            None => pb::ChatInfo {
                answer_mode: pb::AnswerMode::Extractive as i32,
                model: chat::extractive::MODEL_NAME.into(),
                llm_unavailable: false,
            },
        };
        Ok(Response::new(info))
    }

    async fn get_asset(
        &self,
        request: Request<pb::GetAssetRequest>,
    ) -> Result<Response<pb::Asset>, Status> {
        let state = self.state()?;
        let tenant = self.caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        let asset = state.assets.get(&tenant, id).await?;
        Ok(Response::new(convert::asset(&asset)))
    }

    async fn list_assets(
        &self,
        request: Request<pb::ListAssetsRequest>,
    ) -> Result<Response<pb::ListAssetsResponse>, Status> {
        let state = self.state()?;
        let tenant = self.caller(&request)?;
        let message = request.into_inner();
        let page_size = match message.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n <= MAX_PAGE_SIZE => n,
            n => {
                return Err(WorkerError::InvalidArgument(format!(
                    "page_size must be between 1 and {MAX_PAGE_SIZE}, got {n}"
                ))
                .into());
            }
        };
        let status = pb::AssetStatus::try_from(message.status).map_err(|_| {
            WorkerError::InvalidArgument(format!("unknown status {}", message.status))
        })?;
        let filter = ListFilter {
            collection_id: optional_uuid("collection_id", &message.collection_id)?,
            status: convert::status_from_pb(status),
            after: parse_page_token(&message.page_token)?,
            limit: i64::from(page_size) + 1,
        };
        let mut rows = state.assets.list(&tenant, &filter).await?;
        let more = rows.len() > page_size as usize;
        rows.truncate(page_size as usize);
        let next_page_token = if more {
            rows.last()
                .map(|r| page_token(r.created_at, r.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListAssetsResponse {
            assets: rows.iter().map(convert::asset).collect(),
            next_page_token,
        }))
    }

    async fn delete_asset(
        &self,
        request: Request<pb::DeleteAssetRequest>,
    ) -> Result<Response<pb::DeleteAssetResponse>, Status> {
        let state = self.state()?;
        let tenant = self.caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        let object_key = state.assets.delete(&tenant, id).await?;
        crate::ingest::objects::release(&state.assets, &state.objects, &object_key).await;
        Ok(Response::new(pb::DeleteAssetResponse {}))
    }

    async fn cancel_asset(
        &self,
        request: Request<pb::CancelAssetRequest>,
    ) -> Result<Response<pb::Asset>, Status> {
        let state = self.state()?;
        let tenant = self.caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        let asset = state.assets.cancel(&tenant, id).await?;
        Ok(Response::new(convert::asset(&asset)))
    }

    async fn reprocess_asset(
        &self,
        request: Request<pb::ReprocessAssetRequest>,
    ) -> Result<Response<pb::Asset>, Status> {
        let state = self.state()?;
        let tenant = self.caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        let queued_by = crate::telemetry::job_trace::QueuedBy::current();
        let asset = state.assets.reprocess(&tenant, id, &queued_by).await?;
        state.job_traces.queued(id);
        state.wake.notify_one();
        Ok(Response::new(convert::asset(&asset)))
    }

    async fn create_collection(
        &self,
        request: Request<pb::CreateCollectionRequest>,
    ) -> Result<Response<pb::Collection>, Status> {
        let state = self.state()?;
        let tenant = self.caller(&request)?;
        let collection =
            embeddings::create_collection(&state, &tenant, request.into_inner()).await?;
        Ok(Response::new(collection))
    }

    async fn list_collections(
        &self,
        request: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        let state = self.state()?;
        let tenant = self.caller(&request)?;
        let views = crate::collections::list(&state.pool, &tenant).await?;
        Ok(Response::new(pb::ListCollectionsResponse {
            collections: views.into_iter().map(embeddings::collection).collect(),
        }))
    }

    async fn get_collection(
        &self,
        request: Request<pb::GetCollectionRequest>,
    ) -> Result<Response<pb::Collection>, Status> {
        let state = self.state()?;
        let tenant = self.caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        let view = crate::collections::get(&state.pool, &tenant, id).await?;
        Ok(Response::new(embeddings::collection(view)))
    }

    async fn migrate_collection(
        &self,
        request: Request<pb::MigrateCollectionRequest>,
    ) -> Result<Response<pb::Collection>, Status> {
        let state = self.state()?;
        let tenant = self.caller(&request)?;
        let message = request.into_inner();
        let id = parse_uuid("id", &message.id)?;
        let collection = embeddings::migrate(&state, &tenant, id, &message.target_model).await?;
        Ok(Response::new(collection))
    }

    async fn cancel_migration(
        &self,
        request: Request<pb::CancelMigrationRequest>,
    ) -> Result<Response<pb::Collection>, Status> {
        let state = self.state()?;
        let tenant = self.caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        crate::collections::migration::cancel(&state.pool, &tenant, id).await?;
        let view = crate::collections::get(&state.pool, &tenant, id).await?;
        Ok(Response::new(embeddings::collection(view)))
    }

    async fn list_embedding_models(
        &self,
        request: Request<pb::ListEmbeddingModelsRequest>,
    ) -> Result<Response<pb::ListEmbeddingModelsResponse>, Status> {
        let state = self.state()?;
        self.caller(&request)?;
        Ok(Response::new(embeddings::list_models(&state)))
    }

    type WatchAssetStream = EventStream<pb::WatchAssetResponse>;

    async fn watch_asset(
        &self,
        request: Request<pb::WatchAssetRequest>,
    ) -> Result<Response<Self::WatchAssetStream>, Status> {
        let state = self.state()?;
        let tenant = self.caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        // Subscribed before the read, so no change between the two is missed; the read is the
        // tenant-scoped check that this caller may see the asset at all.
        let subscription = state.watches.subscribe(id);
        let first = state.assets.get(&tenant, id).await?;
        let (tx, rx) = mpsc::channel(8);
        let deadline = tokio::time::Instant::now() + state.watch_max_duration;
        tokio::spawn(super::watch::forward(subscription, first, tx, deadline));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_with_times_the_database_cannot_hold_are_invalid_arguments() {
        let id = Uuid::nil();
        let now = chrono::Utc::now();
        let issued = page_token(now, id);
        assert_eq!(
            parse_page_token(&issued).unwrap(),
            Some((
                chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap(),
                id
            ))
        );
        // Both used to pass and make PostgreSQL fail the query: an internal error.
        for micros in [-210_866_803_200_000_001_i64, i64::MAX, MAX_TOKEN_MICROS + 1] {
            let error = parse_page_token(&format!("{micros}.{id}")).unwrap_err();
            assert!(
                matches!(error, WorkerError::InvalidArgument(_)),
                "{micros}: {error}"
            );
        }
        assert!(parse_page_token(&format!("{MIN_TOKEN_MICROS}.{id}")).is_ok());
    }
}
