//! `/healthz` (the process is alive) and `/readyz` (its hard dependencies answer, plus how
//! the worker answers questions, for the UI's status indicator).
//!
//! `/readyz` is public, and a probe makes the worker write to its object store and ask the
//! LLM provider for its models. So anonymous callers share the last probe for
//! `THINKBANK_READY_CACHE_SECS` (one probe runs at a time; callers arriving meanwhile wait for
//! its result), and they see only each component's status: latencies, error texts and the
//! model are for operators (admins of the whole default tenant), who always probe anew.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

use crate::{auth::Principal, state::AppState};

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "the process is alive: `{\"status\": \"ok\"}`",
               body = Object, example = json!({"status": "ok"}))))]
pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ReadinessCheck)]
struct Check {
    /// `ok` or `failing`.
    status: &'static str,
    /// Operators only.
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<f64>,
    /// Operators only.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
struct Readiness {
    /// `ready` or `not_ready`.
    status: &'static str,
    /// Per required dependency: `worker`, `database` (the gateway's), and the worker's own
    /// `object_store` (and `worker_database`), each probed now.
    #[schema(value_type = std::collections::BTreeMap<String, Check>)]
    checks: std::collections::BTreeMap<String, Check>,
    /// Informational, not a readiness condition; absent when the worker did not say, and
    /// for callers other than operators.
    #[serde(skip_serializing_if = "Option::is_none")]
    llm: Option<LlmInfo>,
}

impl Readiness {
    /// What anyone may see: the verdict and each component's status.
    fn public(&self) -> Self {
        let checks = self
            .checks
            .iter()
            .map(|(name, check)| {
                let status_only = Check {
                    status: check.status,
                    latency_ms: None,
                    error: None,
                };
                (name.clone(), status_only)
            })
            .collect();
        Self {
            status: self.status,
            checks,
            llm: None,
        }
    }
}

/// The last probe, shared by anonymous callers while it is fresh. The lock is held while a
/// probe runs, so concurrent callers wait for one probe instead of starting their own.
#[derive(Debug, Default)]
pub struct ReadinessCache {
    last: tokio::sync::Mutex<Option<(Instant, Probed)>>,
}

/// One probe's verdict and report.
type Probed = Arc<(StatusCode, Readiness)>;

impl ReadinessCache {
    /// The last probe if younger than `max_age` (`None`: always probe anew).
    async fn get(&self, state: &AppState, max_age: Option<Duration>) -> Probed {
        let mut last = self.last.lock().await;
        if let (Some(max_age), Some((at, probed))) = (max_age, last.as_ref())
            && at.elapsed() < max_age
        {
            return probed.clone();
        }
        let probed = Arc::new(probe(state).await);
        *last = Some((Instant::now(), probed.clone()));
        probed
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[utoipa::path(get, path = "/readyz", tag = "health", security((), ("bearer" = [])),
    responses(
        (status = 200, description = "every dependency answers (details for operators only; \
         others share a probe up to `THINKBANK_READY_CACHE_SECS` old)", body = Readiness),
        (status = 503, description = "a dependency is failing; `checks` says which",
         body = Readiness),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 429, response = crate::openapi::responses::TooManyRequests),
    ))]
pub async fn readyz(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let operator = match crate::auth::bearer(&headers) {
        None => false,
        Some(token) => {
            let client =
                crate::client_addr::client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
            match crate::auth::resolve_from(&state, client, token).await {
                Ok(principal) => super::tenants::require_operator(&principal).is_ok(),
                Err(refused) => return refused,
            }
        }
    };
    let max_age = (!operator).then(|| Duration::from_secs(state.config.ready_cache_secs));
    let probed = state.readiness.get(&state, max_age).await;
    let (status, readiness) = probed.as_ref();
    if operator {
        (*status, Json(readiness)).into_response()
    } else {
        (*status, Json(readiness.public())).into_response()
    }
}

/// Probes every dependency now.
async fn probe(state: &AppState) -> (StatusCode, Readiness) {
    let (worker, database, mut llm, dependencies) = tokio::join!(
        check_worker(state),
        check_database(state),
        llm_info(state),
        worker_dependencies(state)
    );
    let mut checks = std::collections::BTreeMap::new();
    checks.insert("worker".to_owned(), worker);
    checks.insert("database".to_owned(), database);
    match dependencies {
        Ok(dependencies) => {
            for dependency in dependencies {
                let check = Check {
                    status: if dependency.ok { "ok" } else { "failing" },
                    latency_ms: Some(dependency.latency_ms),
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
                    latency_ms: Some(0.0),
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
    (status, body)
}

async fn llm_info(state: &AppState) -> Option<LlmInfo> {
    // Not a client's call: the gateway asks for itself (the answer holds no tenant data).
    let request = state
        .request(
            &Principal::gateway(),
            thinkbank_proto::v1::GetChatInfoRequest {},
            CHECK_TIMEOUT,
        )
        .ok()?;
    let mut worker = state.worker.clone();
    let info = tokio::time::timeout(CHECK_TIMEOUT, worker.get_chat_info(request))
        .await
        .ok()?
        .ok()?
        .into_inner();
    Some(LlmInfo {
        mode: crate::chat_relay::events::answer_mode_name(info.answer_mode()),
        model: info.model,
        unavailable: info.llm_unavailable,
        probe: None,
    })
}

/// The worker's probes of its own dependencies.
async fn worker_dependencies(
    state: &AppState,
) -> Result<Vec<thinkbank_proto::v1::DependencyCheck>, String> {
    // Not a client's call: the gateway asks for itself (the answer holds no tenant data).
    let request = state
        .request(
            &Principal::gateway(),
            thinkbank_proto::v1::CheckDependenciesRequest {},
            CHECK_TIMEOUT + Duration::from_secs(1),
        )
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?;
    let mut worker = state.worker.clone();
    let ask = worker.check_dependencies(request);
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
    let latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
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
    let latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
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
