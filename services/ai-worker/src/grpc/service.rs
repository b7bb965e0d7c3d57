//! `AiWorker` over tonic. Each method authenticates the caller, converts the request into the
//! application's types, makes one call on [`Worker`], and converts the result back. Until
//! start-up finishes every RPC answers UNAVAILABLE.

use std::{
    pin::Pin,
    sync::{Arc, OnceLock},
};

use futures::{Stream, StreamExt as _};
use thinkbank_proto::v1::{self as pb, ai_worker_server::AiWorker};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{
    chat, convert, embeddings,
    fields::{optional_uuid, page_token, parse_page_token},
    search_convert, uploads,
};
use crate::{
    app::{AssetQuery, Caller, PageRequest, Worker},
    error::{WorkerError, parse_uuid},
    tenancy::Tenant,
};

pub(super) type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[derive(Debug, Clone)]
pub struct AiWorkerService {
    app: Arc<OnceLock<Arc<Worker>>>,
    callers: super::caller::Callers,
}

impl AiWorkerService {
    pub fn new(app: Arc<OnceLock<Arc<Worker>>>, callers: super::caller::Callers) -> Self {
        Self { app, callers }
    }

    /// Authenticates the caller and returns the tenant it acts for.
    fn caller<T>(&self, request: &Request<T>) -> Result<Tenant, Status> {
        self.callers.tenant(request.metadata())
    }

    /// The same, with whose conversations the caller may touch.
    fn conversation_caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let tenant = self.caller(request)?;
        let access = super::caller::access(request.metadata(), &tenant)?;
        Ok(Caller { tenant, access })
    }

    fn app(&self) -> Result<Arc<Worker>, Status> {
        self.app
            .get()
            .cloned()
            .ok_or_else(|| Status::unavailable("the worker is starting; retry shortly"))
    }
}

#[tonic::async_trait]
impl AiWorker for AiWorkerService {
    async fn process_asset(
        &self,
        request: Request<pb::ProcessAssetRequest>,
    ) -> Result<Response<pb::ProcessAssetResponse>, Status> {
        let app = self.app()?;
        let tenant = self.caller(&request)?;
        let upload = uploads::upload(&tenant, request.into_inner())?;
        let accepted = app.accept(&tenant, upload).await?;
        Ok(Response::new(convert::accepted(&accepted)))
    }

    async fn upload_asset(
        &self,
        request: Request<tonic::Streaming<pb::UploadAssetRequest>>,
    ) -> Result<Response<pb::ProcessAssetResponse>, Status> {
        let app = self.app()?;
        let tenant = self.caller(&request)?;
        let upload = uploads::spooled(&app, &tenant, request.into_inner()).await?;
        let accepted = app.accept_spooled(&tenant, upload).await?;
        Ok(Response::new(convert::accepted(&accepted)))
    }

    async fn get_embedding(
        &self,
        request: Request<pb::GetEmbeddingRequest>,
    ) -> Result<Response<pb::GetEmbeddingResponse>, Status> {
        let app = self.app()?;
        self.caller(&request)?;
        let embedded = app
            .embed(embeddings::embed_request(request.into_inner()))
            .await?;
        Ok(Response::new(embeddings::embeddings(embedded)))
    }

    async fn vector_search(
        &self,
        request: Request<pb::VectorSearchRequest>,
    ) -> Result<Response<pb::VectorSearchResponse>, Status> {
        let app = self.app()?;
        let tenant = self.caller(&request)?;
        let query = search_convert::query(request.into_inner())?;
        let outcome = app.search(&tenant, &query).await?;
        Ok(Response::new(search_convert::response(outcome, query.mode)))
    }

    type ChatStreamStream = EventStream<pb::ChatStreamResponse>;

    async fn chat_stream(
        &self,
        request: Request<pb::ChatStreamRequest>,
    ) -> Result<Response<Self::ChatStreamStream>, Status> {
        let app = self.app()?;
        let caller = self.conversation_caller(&request)?;
        let ask = chat::ask(request.into_inner())?;
        let answer = app.ask(&caller, ask).await?;
        Ok(Response::new(chat::responses(answer)))
    }

    async fn list_conversations(
        &self,
        request: Request<pb::ListConversationsRequest>,
    ) -> Result<Response<pb::ListConversationsResponse>, Status> {
        let app = self.app()?;
        let caller = self.conversation_caller(&request)?;
        let message = request.into_inner();
        let page = PageRequest {
            after: parse_page_token(&message.page_token)?,
            size: message.page_size,
        };
        let page = app
            .list_conversations(&caller, message.all_owners, page)
            .await?;
        Ok(Response::new(pb::ListConversationsResponse {
            conversations: page.items.iter().map(convert::conversation).collect(),
            next_page_token: page_token(page.next),
        }))
    }

    async fn get_conversation(
        &self,
        request: Request<pb::GetConversationRequest>,
    ) -> Result<Response<pb::GetConversationResponse>, Status> {
        let app = self.app()?;
        let caller = self.conversation_caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        let detail = app.get_conversation(&caller, id).await?;
        Ok(Response::new(pb::GetConversationResponse {
            conversation: Some(convert::conversation(&detail.conversation)),
            messages: detail
                .messages
                .into_iter()
                .map(convert::conversation_message)
                .collect(),
        }))
    }

    async fn delete_conversation(
        &self,
        request: Request<pb::DeleteConversationRequest>,
    ) -> Result<Response<pb::DeleteConversationResponse>, Status> {
        let app = self.app()?;
        let caller = self.conversation_caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        app.delete_conversation(&caller, id).await?;
        Ok(Response::new(pb::DeleteConversationResponse {}))
    }

    async fn rename_conversation(
        &self,
        request: Request<pb::RenameConversationRequest>,
    ) -> Result<Response<pb::Conversation>, Status> {
        let app = self.app()?;
        let caller = self.conversation_caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        let row = app
            .rename_conversation(&caller, id, &request.get_ref().title)
            .await?;
        Ok(Response::new(convert::conversation(&row)))
    }

    async fn check_dependencies(
        &self,
        request: Request<pb::CheckDependenciesRequest>,
    ) -> Result<Response<pb::CheckDependenciesResponse>, Status> {
        let app = self.app()?;
        self.caller(&request)?;
        let checks = app.check_dependencies().await;
        Ok(Response::new(pb::CheckDependenciesResponse {
            checks: checks.into_iter().map(convert::dependency_check).collect(),
        }))
    }

    async fn get_chat_info(
        &self,
        request: Request<pb::GetChatInfoRequest>,
    ) -> Result<Response<pb::ChatInfo>, Status> {
        let app = self.app()?;
        self.caller(&request)?;
        Ok(Response::new(chat::info(&app.chat_info())))
    }

    async fn get_asset(
        &self,
        request: Request<pb::GetAssetRequest>,
    ) -> Result<Response<pb::Asset>, Status> {
        let app = self.app()?;
        let tenant = self.caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        let asset = app.get_asset(&tenant, id).await?;
        Ok(Response::new(convert::asset(&asset)))
    }

    async fn list_assets(
        &self,
        request: Request<pb::ListAssetsRequest>,
    ) -> Result<Response<pb::ListAssetsResponse>, Status> {
        let app = self.app()?;
        let tenant = self.caller(&request)?;
        let message = request.into_inner();
        let status = pb::AssetStatus::try_from(message.status).map_err(|_| {
            WorkerError::InvalidArgument(format!("unknown status {}", message.status))
        })?;
        let query = AssetQuery {
            collection_id: optional_uuid("collection_id", &message.collection_id)?,
            status: convert::status_from_pb(status),
            page: PageRequest {
                after: parse_page_token(&message.page_token)?,
                size: message.page_size,
            },
        };
        let page = app.list_assets(&tenant, query).await?;
        Ok(Response::new(pb::ListAssetsResponse {
            assets: page.items.iter().map(convert::asset).collect(),
            next_page_token: page_token(page.next),
        }))
    }

    async fn delete_asset(
        &self,
        request: Request<pb::DeleteAssetRequest>,
    ) -> Result<Response<pb::DeleteAssetResponse>, Status> {
        let app = self.app()?;
        let tenant = self.caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        app.delete_asset(&tenant, id).await?;
        Ok(Response::new(pb::DeleteAssetResponse {}))
    }

    async fn cancel_asset(
        &self,
        request: Request<pb::CancelAssetRequest>,
    ) -> Result<Response<pb::Asset>, Status> {
        let app = self.app()?;
        let tenant = self.caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        let asset = app.cancel_asset(&tenant, id).await?;
        Ok(Response::new(convert::asset(&asset)))
    }

    async fn reprocess_asset(
        &self,
        request: Request<pb::ReprocessAssetRequest>,
    ) -> Result<Response<pb::Asset>, Status> {
        let app = self.app()?;
        let tenant = self.caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        let asset = app.reprocess_asset(&tenant, id).await?;
        Ok(Response::new(convert::asset(&asset)))
    }

    async fn create_collection(
        &self,
        request: Request<pb::CreateCollectionRequest>,
    ) -> Result<Response<pb::Collection>, Status> {
        let app = self.app()?;
        let tenant = self.caller(&request)?;
        let new = embeddings::new_collection(request.into_inner());
        let view = app.create_collection(&tenant, new).await?;
        Ok(Response::new(embeddings::collection(view)))
    }

    async fn list_collections(
        &self,
        request: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        let app = self.app()?;
        let tenant = self.caller(&request)?;
        let views = app.list_collections(&tenant).await?;
        Ok(Response::new(pb::ListCollectionsResponse {
            collections: views.into_iter().map(embeddings::collection).collect(),
        }))
    }

    async fn get_collection(
        &self,
        request: Request<pb::GetCollectionRequest>,
    ) -> Result<Response<pb::Collection>, Status> {
        let app = self.app()?;
        let tenant = self.caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        let view = app.get_collection(&tenant, id).await?;
        Ok(Response::new(embeddings::collection(view)))
    }

    async fn migrate_collection(
        &self,
        request: Request<pb::MigrateCollectionRequest>,
    ) -> Result<Response<pb::Collection>, Status> {
        let app = self.app()?;
        let tenant = self.caller(&request)?;
        let message = request.into_inner();
        let id = parse_uuid("id", &message.id)?;
        let view = app
            .migrate_collection(&tenant, id, &message.target_model)
            .await?;
        Ok(Response::new(embeddings::collection(view)))
    }

    async fn cancel_migration(
        &self,
        request: Request<pb::CancelMigrationRequest>,
    ) -> Result<Response<pb::Collection>, Status> {
        let app = self.app()?;
        let tenant = self.caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        let view = app.cancel_migration(&tenant, id).await?;
        Ok(Response::new(embeddings::collection(view)))
    }

    async fn list_embedding_models(
        &self,
        request: Request<pb::ListEmbeddingModelsRequest>,
    ) -> Result<Response<pb::ListEmbeddingModelsResponse>, Status> {
        let app = self.app()?;
        self.caller(&request)?;
        Ok(Response::new(embeddings::models(&app.embedding_models())))
    }

    type WatchAssetStream = EventStream<pb::WatchAssetResponse>;

    async fn watch_asset(
        &self,
        request: Request<pb::WatchAssetRequest>,
    ) -> Result<Response<Self::WatchAssetStream>, Status> {
        let app = self.app()?;
        let tenant = self.caller(&request)?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        let updates = app.watch_asset(&tenant, id).await?;
        let responses = ReceiverStream::new(updates).map(|update| {
            update
                .map(|asset| pb::WatchAssetResponse {
                    asset: Some(convert::asset(&asset)),
                })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(responses)))
    }
}
