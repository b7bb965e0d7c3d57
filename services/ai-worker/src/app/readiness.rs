//! The worker's own dependencies, probed on request (`CheckDependencies`, shown by the
//! gateway's `/readyz`): the database and the object store are required, the LLM is not
//! (without it chat fails clearly while search and ingestion go on).

use std::{future::Future, time::Duration};

use super::Worker;

/// Each probe gives up after this; a dependency slower than that counts as failing.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub required: bool,
    pub latency_ms: f64,
    /// `None` when the probe succeeded.
    pub error: Option<String>,
}

impl Worker {
    /// Probes every dependency at once.
    pub async fn check_dependencies(&self) -> Vec<Check> {
        check(self).await
    }
}

async fn check(state: &Worker) -> Vec<Check> {
    let database = probe("database", true, async {
        sqlx::query("SELECT 1")
            .execute(&state.pool)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let objects = probe("object_store", true, async {
        state.objects.probe().await.map_err(|e| e.to_string())
    });
    let llm = async {
        match &state.llm {
            Some(llm) => Some(
                probe("llm", false, async {
                    llm.probe(PROBE_TIMEOUT).await.map_err(|e| e.to_string())
                })
                .await,
            ),
            None => None,
        }
    };
    let (database, objects, llm) = tokio::join!(database, objects, llm);
    [Some(database), Some(objects), llm]
        .into_iter()
        .flatten()
        .collect()
}

async fn probe(
    name: &'static str,
    required: bool,
    run: impl Future<Output = Result<(), String>>,
) -> Check {
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(PROBE_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())));
    Check {
        name,
        required,
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        error: result.err(),
    }
}
