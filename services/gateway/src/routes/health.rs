//! `/healthz` (the process is alive) and `/readyz` (its hard dependencies answer, plus how
//! the worker answers questions, for the UI's status indicator).

use std::time::{Duration, Instant};

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde::Serialize;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "the process is alive: `{\"status\": \"ok\"}`",
               body = Object, example = json!({"status": "ok"}))))]
pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ReadinessCheck)]
struct Check {
    /// `ok` or `failing`.
    status: &'static str,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Readiness {
    /// `ready` or `not_ready`.
    status: &'static str,
    /// Per required dependency: `worker`, `database` (the gateway's), and the worker's own
    /// `object_store` (and `worker_database`), each probed now.
    #[schema(value_type = std::collections::BTreeMap<String, Check>)]
    checks: std::collections::BTreeMap<String, Check>,
    /// Informational, not a readiness condition; absent when the worker did not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    llm: Option<LlmInfo>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct LlmInfo {
    /// "extractive" (no LLM configured) or "generative".
    mode: &'static str,
    model: String,
    /// The LLM circuit breaker is open: chat answers 503 until it recovers.
    unavailable: bool,
    /// The worker's probe of the provider (its model list), when an LLM is configured. Not a
    /// readiness condition: without the LLM, search and ingestion still work.
    #[serde(skip_serializing_if = "Option::is_none")]
    probe: Option<Check>,
}

/// `GET /readyz`
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses(
        (status = 200, description = "every dependency answers", body = Readiness),
        (status = 503, description = "a dependency is failing; `checks` says which",
         body = Readiness),
    ))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (worker, database, mut llm, dependencies) = tokio::join!(
        check_worker(&state),
        check_database(&state),
        llm_info(&state),
        worker_dependencies(&state)
    );
    let mut checks = std::collections::BTreeMap::new();
    checks.insert("worker".to_owned(), worker);
    checks.insert("database".to_owned(), database);
    match dependencies {
        Ok(dependencies) => {
            for dependency in dependencies {
                let check = Check {
                    status: if dependency.ok { "ok" } else { "failing" },
                    latency_ms: dependency.latency_ms,
                    error: (!dependency.ok).then_some(dependency.error),
                };
                match dependency.name.as_str() {
                    "llm" => {
                        if let Some(llm) = llm.as_mut() {
                            llm.probe = Some(check);
                        }
                    }
                    // The gateway's own database check is `database`.
                    "database" => {
                        checks.insert("worker_database".to_owned(), check);
                    }
                    name if dependency.required => {
                        checks.insert(name.to_owned(), check);
                    }
                    _ => {}
                }
            }
        }
        Err(error) => {
            checks.insert(
                "object_store".to_owned(),
                Check {
                    status: "failing",
                    latency_ms: 0.0,
                    error: Some(format!("unknown: the worker did not answer ({error})")),
                },
            );
        }
    }
    let ready = checks.values().all(|c| c.status == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        checks,
        llm,
    };
    (status, Json(body))
}

async fn llm_info(state: &AppState) -> Option<LlmInfo> {
    let request = state.request(thinkbank_proto::v1::GetChatInfoRequest {}, CHECK_TIMEOUT);
    let mut worker = state.worker.clone();
    // Not a client's call: the gateway asks for itself (the answer holds no tenant data).
    let ask = crate::auth::PRINCIPAL.scope(
        crate::auth::Principal::gateway(),
        worker.get_chat_info(request),
    );
    let info = tokio::time::timeout(CHECK_TIMEOUT, ask)
        .await
        .ok()?
        .ok()?
        .into_inner();
    Some(LlmInfo {
        mode: super::chat::answer_mode_name(info.answer_mode()),
        model: info.model,
        unavailable: info.llm_unavailable,
        probe: None,
    })
}

/// The worker's probes of its own dependencies.
async fn worker_dependencies(
    state: &AppState,
) -> Result<Vec<thinkbank_proto::v1::DependencyCheck>, String> {
    let request = state.request(
        thinkbank_proto::v1::CheckDependenciesRequest {},
        CHECK_TIMEOUT + Duration::from_secs(1),
    );
    let mut worker = state.worker.clone();
    // Not a client's call: the gateway asks for itself (the answer holds no tenant data).
    let ask = crate::auth::PRINCIPAL.scope(
        crate::auth::Principal::gateway(),
        worker.check_dependencies(request),
    );
    match tokio::time::timeout(CHECK_TIMEOUT + Duration::from_secs(1), ask).await {
        Ok(Ok(response)) => Ok(response.into_inner().checks),
        Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
        Err(_) => Err("timed out".into()),
    }
}

async fn check_worker(state: &AppState) -> Check {
    let started = Instant::now();
    let mut client = state.health.clone();
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: "thinkbank.v1.AiWorker".into(),
    });
    request.set_timeout(CHECK_TIMEOUT);
    let result = tokio::time::timeout(CHECK_TIMEOUT, client.check(request)).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32 => Check {
            status: "ok",
            latency_ms,
            error: None,
        },
        Ok(Ok(response)) => Check {
            status: "failing",
            latency_ms,
            error: Some(format!("worker reports {:?}", response.get_ref().status())),
        },
        Ok(Err(status)) => Check {
            status: "failing",
            latency_ms,
            error: Some(format!("{:?}: {}", status.code(), status.message())),
        },
        Err(_) => Check {
            status: "failing",
            latency_ms,
            error: Some("timed out".into()),
        },
    }
}

async fn check_database(state: &AppState) -> Check {
    let pool = &state.database;
    let started = Instant::now();
    let result = tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(pool)).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(Ok(_)) => Check {
            status: "ok",
            latency_ms,
            error: None,
        },
        Ok(Err(error)) => Check {
            status: "failing",
            latency_ms,
            error: Some(error.to_string()),
        },
        Err(_) => Check {
            status: "failing",
            latency_ms,
            error: Some("timed out".into()),
        },
    }
}
