//! `/api/v1/assets`: upload (multipart), list, get, delete, and live progress as SSE.

use std::time::Duration;

use axum::{
    Extension, Json,
    extract::{
        Multipart, Path, Query, State,
        multipart::{MultipartError, MultipartRejection},
    },
    http::{HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{KeepAlive, Sse},
    },
};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use thinkbank_common::ErrorCode;
use thinkbank_proto::v1 as pb;

use crate::{
    auth::Principal,
    error::{ApiError, ApiResult},
    openapi::responses::{
        BadRequest, Conflict, Internal, NotFound, PayloadTooLarge, Timeout, TooManyRequests,
        Unavailable,
    },
    state::AppState,
    views::{self, AssetView},
};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadResponse {
    pub asset: AssetView,
    /// True when the same bytes already existed: `asset` is the existing one.
    pub deduplicated: bool,
}

/// The `file` part, written to a temporary file as it arrives (deleted on drop), so an upload
/// never has to fit in memory.
#[derive(Debug)]
struct SpooledFile {
    filename: String,
    content_type: String,
    path: tempfile::TempPath,
    size: u64,
}

/// Bytes per UploadAsset message.
const UPLOAD_CHUNK: usize = 64 * 1024;

async fn spool_field(mut field: axum::extract::multipart::Field<'_>) -> ApiResult<SpooledFile> {
    use tokio::io::AsyncWriteExt as _;
    let filename = field.file_name().unwrap_or_default().to_owned();
    let content_type = field.content_type().unwrap_or_default().to_owned();
    let io = |e: std::io::Error| {
        ApiError::new(ErrorCode::Internal, format!("cannot spool the upload: {e}"))
    };
    let (file, path) = tempfile::NamedTempFile::with_prefix("thinkbank-gateway-upload-")
        .map_err(io)?
        .into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut size = 0u64;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        size += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    Ok(SpooledFile {
        filename,
        content_type,
        path,
        size,
    })
}

#[derive(Debug, Default)]
struct UploadForm {
    file: Option<SpooledFile>,
    collection_id: String,
    external_id: String,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    wait: bool,
}

fn multipart_error(error: MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorCode::PayloadTooLarge, "upload exceeds the size limit")
    } else {
        ApiError::invalid(format!("malformed multipart body: {}", error.body_text()))
    }
}

async fn read_form(mut multipart: Multipart) -> ApiResult<UploadForm> {
    let mut form = UploadForm::default();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => form.file = Some(spool_field(field).await?),
            "collection_id" => form.collection_id = field.text().await.map_err(multipart_error)?,
            "external_id" => form.external_id = field.text().await.map_err(multipart_error)?,
            "metadata" => {
                let text = field.text().await.map_err(multipart_error)?;
                let value: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| ApiError::invalid(format!("metadata is not valid JSON: {e}")))?;
                let max = thinkbank_proto::json::MAX_DEPTH;
                if thinkbank_proto::json::depth(&value) > max {
                    return Err(ApiError::invalid(format!(
                        "metadata is nested deeper than {max} levels"
                    )));
                }
                let serde_json::Value::Object(map) = value else {
                    return Err(ApiError::invalid("metadata must be a JSON object"));
                };
                form.metadata = Some(map);
            }
            "wait" => {
                let text = field.text().await.map_err(multipart_error)?;
                form.wait = match text.trim() {
                    "true" | "1" => true,
                    "false" | "0" | "" => false,
                    other => {
                        return Err(ApiError::invalid(format!(
                            "wait must be true or false, got '{other}'"
                        )));
                    }
                };
            }
            other => return Err(ApiError::invalid(format!("unknown form field '{other}'"))),
        }
    }
    Ok(form)
}

/// `POST /api/v1/assets` — multipart with a `file` part; optional `collection_id`,
/// `external_id`, `metadata` (JSON object) and `wait` (`true` waits until ready or failed).
#[utoipa::path(post, path = "/api/v1/assets", tag = "assets",
    request_body(content = ref("#/components/schemas/UploadForm"),
                 content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "stored and queued (or, with `wait`, ready or failed)",
         body = UploadResponse,
         headers(("Location" = String, description = "the new asset's URL"))),
        (status = 200, description = "the same bytes were already stored: the existing asset, \
                                      `deduplicated: true`", body = UploadResponse,
         headers(("Location" = String, description = "the existing asset's URL"))),
        (status = 400, response = BadRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    // A body that is not multipart gets the JSON error shape, not axum's plain-text rejection.
    let form = read_form(multipart?).await?;
    let Some(file) = form.file else {
        return Err(ApiError::invalid("the multipart body needs a 'file' part"));
    };
    if file.size == 0 {
        return Err(ApiError::invalid("the uploaded file is empty"));
    }
    let timeout = if form.wait {
        Duration::from_secs(state.config.ingest_wait_timeout_secs)
    } else {
        state.config.worker_timeout()
    };
    let header = pb::UploadAssetHeader {
        collection_id: form.collection_id,
        filename: file.filename,
        declared_media_type: file.content_type,
        external_id: form.external_id,
        metadata: form
            .metadata
            .as_ref()
            .map(thinkbank_proto::json::struct_from_json),
        wait: form.wait,
        size_bytes: i64::try_from(file.size).unwrap_or(0),
    };
    let reader = tokio::fs::File::open(&file.path).await.map_err(|e| {
        ApiError::new(
            ErrorCode::Internal,
            format!("cannot read the spooled upload: {e}"),
        )
    })?;
    // Header first, then the bytes. A read error ends the stream early; the worker then sees
    // fewer bytes than `size_bytes` announced and refuses the upload.
    let chunks = tokio_util::io::ReaderStream::with_capacity(reader, UPLOAD_CHUNK)
        .take_while(|chunk| {
            if let Err(error) = chunk {
                tracing::error!(%error, "reading the spooled upload failed");
            }
            futures::future::ready(chunk.is_ok())
        })
        .filter_map(|chunk| {
            futures::future::ready(chunk.ok().map(|bytes| pb::UploadAssetRequest {
                part: Some(pb::upload_asset_request::Part::Chunk(bytes)),
            }))
        });
    let messages = futures::stream::once(async move {
        pb::UploadAssetRequest {
            part: Some(pb::upload_asset_request::Part::Header(header)),
        }
    })
    .chain(chunks);
    let response = state
        .worker
        .clone()
        .upload_asset(state.request(&principal, messages, timeout)?)
        .await?
        .into_inner();
    // The spooled file lives until here, after the worker has read the whole stream.
    drop(file.path);
    let asset = response
        .asset
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "worker returned no asset"))?;
    let location = format!("/api/v1/assets/{}", asset.id);
    let status = if response.deduplicated {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut http = (
        status,
        Json(UploadResponse {
            asset: views::asset(asset),
            deduplicated: response.deduplicated,
        }),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        http.headers_mut().insert(header::LOCATION, value);
    }
    Ok(http)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    collection_id: Option<String>,
    /// `queued`, `processing`, `ready`, `failed` or `cancelled`.
    status: Option<String>,
    /// At most 200 (default 50).
    #[param(maximum = 200)]
    page_size: Option<u32>,
    /// `next_page_token` of the previous page.
    page_token: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AssetList)]
pub struct ListResponse {
    pub assets: Vec<AssetView>,
    pub next_page_token: Option<String>,
}

/// `GET /api/v1/assets?status=ready&page_size=50&page_token=…`
#[utoipa::path(get, path = "/api/v1/assets", tag = "assets", params(ListParams),
    responses(
        (status = 200, description = "a page of assets, newest first", body = ListResponse),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ListResponse>> {
    let Query(params) = query?;
    let status = match params.status.as_deref() {
        None | Some("") => pb::AssetStatus::Unspecified,
        Some(name) => views::status_from_name(name).ok_or_else(|| {
            ApiError::invalid(format!(
                "unknown status '{name}': use queued, processing, ready, failed or cancelled"
            ))
        })?,
    };
    let message = pb::ListAssetsRequest {
        collection_id: params.collection_id.unwrap_or_default(),
        status: status as i32,
        page_size: params.page_size.unwrap_or(0),
        page_token: params.page_token.unwrap_or_default(),
    };
    let response = state
        .read(&principal, message, |mut worker, request| async move {
            worker.list_assets(request).await
        })
        .await?
        .into_inner();
    Ok(Json(ListResponse {
        assets: response.assets.into_iter().map(views::asset).collect(),
        next_page_token: Some(response.next_page_token).filter(|t| !t.is_empty()),
    }))
}

/// `GET /api/v1/assets/{id}`
#[utoipa::path(get, path = "/api/v1/assets/{id}", tag = "assets",
    params(("id" = String, Path, format = Uuid, description = "the asset id (a UUID)")),
    responses(
        (status = 200, description = "the asset", body = AssetView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<AssetView>> {
    let asset = state
        .read(
            &principal,
            pb::GetAssetRequest { id },
            |mut worker, request| async move { worker.get_asset(request).await },
        )
        .await?
        .into_inner();
    Ok(Json(views::asset(asset)))
}

/// `POST /api/v1/assets/{id}/cancel` — stops a queued or processing asset (409 otherwise).
#[utoipa::path(post, path = "/api/v1/assets/{id}/cancel", tag = "assets",
    params(("id" = String, Path, format = Uuid, description = "the asset id (a UUID)")),
    responses(
        (status = 200, description = "the asset, now `cancelled`", body = AssetView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<AssetView>> {
    let asset = state
        .worker
        .clone()
        .cancel_asset(state.request(
            &principal,
            pb::CancelAssetRequest { id },
            state.config.worker_timeout(),
        )?)
        .await?
        .into_inner();
    Ok(Json(views::asset(asset)))
}

/// `POST /api/v1/assets/{id}/reprocess` — queues a ready, failed or cancelled asset again.
#[utoipa::path(post, path = "/api/v1/assets/{id}/reprocess", tag = "assets",
    params(("id" = String, Path, format = Uuid, description = "the asset id (a UUID)")),
    responses(
        (status = 200, description = "the asset, queued again", body = AssetView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn reprocess(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<AssetView>> {
    let asset = state
        .worker
        .clone()
        .reprocess_asset(state.request(
            &principal,
            pb::ReprocessAssetRequest { id },
            state.config.worker_timeout(),
        )?)
        .await?
        .into_inner();
    Ok(Json(views::asset(asset)))
}

/// The upload route's own body limits (`routes::table`): the upload maximum instead of the
/// JSON one, and [`reject_oversized`] in front of it.
pub fn upload_limits(
    route: axum::routing::MethodRouter<AppState>,
    state: &AppState,
) -> axum::routing::MethodRouter<AppState> {
    route
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.max_upload_bytes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            reject_oversized,
        ))
}

/// Answers 413 from the `Content-Length` header alone, before any of the body is read, so an
/// oversized upload costs neither bandwidth nor memory. Bodies without a length are still
/// capped while they stream (`DefaultBodyLimit`).
pub async fn reject_oversized(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = state.config.max_upload_bytes as u64;
    match declared {
        Some(length) if length > limit => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("upload of {length} bytes exceeds the limit of {limit} bytes"),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// `DELETE /api/v1/assets/{id}` — 204 on success.
#[utoipa::path(delete, path = "/api/v1/assets/{id}", tag = "assets",
    params(("id" = String, Path, format = Uuid, description = "the asset id (a UUID)")),
    responses(
        (status = 204, description = "deleted with its chunks, vectors and stored bytes"),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let target = format!("asset:{id}");
    state
        .worker
        .clone()
        .delete_asset(state.request(
            &principal,
            pb::DeleteAssetRequest { id },
            state.config.worker_timeout(),
        )?)
        .await?;
    crate::audit::record(
        &state.audit,
        crate::audit::Event {
            tenant_id: principal.tenant_id,
            actor: &principal.actor(),
            action: "asset.delete",
            target: &target,
            details: serde_json::json!({}),
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/assets/{id}/events` — SSE: one `asset` event per progress change, then `done`;
/// or `reconnect` when the stream reached its maximum duration first.
#[utoipa::path(get, path = "/api/v1/assets/{id}/events", tag = "assets",
    params(("id" = String, Path, format = Uuid, description = "the asset id (a UUID)")),
    responses(
        (status = 200, description = "Server-Sent Events until the asset is final or the stream \
                                      reaches `THINKBANK_SSE_WATCH_MAX_SECS` (see \
                                      `AssetStreamEvent` and the stream framing above)",
         content_type = "text/event-stream",
         body = ref("#/components/schemas/AssetStreamEvent")),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
        (status = 504, response = Timeout),
    ))]
pub async fn events(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    // Held until the stream ends, however it ends.
    let permit = state
        .watch_caps
        .open(&principal.owner_id(), principal.tenant_id)?;
    let max = Duration::from_secs(state.config.sse_watch_max_secs);
    // The worker's deadline is a little later than ours, so ours decides and says `reconnect`.
    let request = state.request(
        &principal,
        pb::WatchAssetRequest { id },
        max + Duration::from_secs(5),
    )?;
    let stream = state
        .worker
        .clone()
        .watch_asset(request)
        .await?
        .into_inner();
    let events = super::asset_events::events(stream, max, permit);
    // A shutdown ends the watch with `error` (unavailable) and `done`, like chat streams.
    let events = crate::edge::until_shutdown(events, state.shutdown.clone());
    let heartbeat = Duration::from_secs(state.config.sse_heartbeat_secs);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(heartbeat)))
}
