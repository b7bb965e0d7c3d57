//! Retries of idempotent worker calls. A read (get, list, search, embed) that fails with
//! UNAVAILABLE — the worker restarting, a connection reset, load shed — is tried again after a
//! jittered backoff; anything that changes state is never retried here, so a retry can never
//! apply a change twice. Every attempt carries its own deadline (`AppState::request`).

use std::{future::Future, time::Duration};

use rand::Rng as _;
use tonic::{Code, Response, Status};

/// Attempts in all, the first included.
const ATTEMPTS: u32 = 3;
/// The first backoff; each further one doubles. The wait is drawn from [base/2, base].
const BASE_BACKOFF: Duration = Duration::from_millis(100);

/// Runs `call` until it succeeds, fails with a code other than UNAVAILABLE, or has been tried
/// `ATTEMPTS` times. `call` must build a fresh request each time.
pub async fn idempotent<T, F, Fut>(mut call: F) -> Result<Response<T>, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let mut backoff = BASE_BACKOFF;
    let mut attempt = 1;
    loop {
        match call().await {
            Err(status) if status.code() == Code::Unavailable && attempt < ATTEMPTS => {
                let wait = jittered(backoff);
                tracing::debug!(
                    attempt,
                    ?wait,
                    message = status.message(),
                    "retrying a worker read"
                );
                tokio::time::sleep(wait).await;
                backoff = backoff.saturating_mul(2);
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// "Equal jitter": half the backoff fixed, half random, so replicas retrying together spread.
fn jittered(backoff: Duration) -> Duration {
    let half = backoff / 2;
    let extra = rand::rng().random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(extra)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn unavailable_reads_are_retried_and_other_failures_are_not() {
        let calls = AtomicU32::new(0);
        let result = idempotent(|| async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                Err(Status::unavailable("restarting"))
            } else {
                Ok(Response::new(n))
            }
        })
        .await;
        assert_eq!(result.map(Response::into_inner).ok(), Some(2));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let result: Result<Response<()>, Status> = idempotent(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Status::not_found("no such asset"))
        })
        .await;
        assert_eq!(result.err().map(|s| s.code()), Some(Code::NotFound));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let result: Result<Response<()>, Status> = idempotent(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Status::unavailable("down"))
        })
        .await;
        assert_eq!(result.err().map(|s| s.code()), Some(Code::Unavailable));
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS);
    }

    #[test]
    fn jitter_stays_between_half_and_all_of_the_backoff() {
        for _ in 0..100 {
            let wait = jittered(Duration::from_millis(200));
            assert!((100..=200).contains(&wait.as_millis()), "{wait:?}");
        }
    }
}
