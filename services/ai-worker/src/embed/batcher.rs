//! A dynamic batcher for the local model: concurrent requests (queries, ingestion jobs,
//! migrations) are merged into one forward pass, up to `max_batch` texts: those queued while
//! the previous pass ran, and, while requests keep arriving together, those arriving within
//! `max_wait`. One dedicated thread runs the model, so forward passes never
//! compete for the cores (a forward pass already splits its sequences across every rayon
//! thread), and the tokio runtime never blocks on it.

use std::{
    sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use super::{EmbedError, EmbeddedText, LocalEmbedder};

/// Requests waiting for the model; senders wait (backpressure) when it is full.
const QUEUE_DEPTH: usize = 1024;

struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<EmbeddedText>, String>>,
}

/// Handle to the batching thread; cheap to clone. The thread ends when every handle is gone.
#[derive(Clone)]
pub struct Batcher {
    jobs: SyncSender<Job>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

/// How requests are merged.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    /// Texts per merged forward call (a request larger than this runs alone).
    pub max_batch: usize,
    /// How long the first request waits for others to join it.
    pub max_wait: Duration,
}

impl Batcher {
    pub fn start(model: LocalEmbedder, settings: BatchSettings) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::sync_channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("embed-batcher".into())
            .spawn(move || run(&model, &rx, settings))?;
        Ok(Self { jobs })
    }

    /// Embeds `texts` in order, possibly together with other callers' texts.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<EmbeddedText>, EmbedError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || EmbedError::Internal("the embedding thread has stopped".into());
        match self.jobs.try_send(Job { texts, reply }) {
            Ok(()) => {}
            Err(TrySendError::Disconnected(_)) => return Err(stopped()),
            Err(TrySendError::Full(job)) => {
                // A blocking send waits for room; keep it off the runtime's threads.
                let jobs = self.jobs.clone();
                tokio::task::spawn_blocking(move || jobs.send(job))
                    .await
                    .map_err(|e| EmbedError::Internal(format!("embedding queue task failed: {e}")))?
                    .map_err(|_| stopped())?;
            }
        }
        answer
            .await
            .map_err(|_| EmbedError::Internal("the embedding thread dropped a request".into()))?
            .map_err(EmbedError::Internal)
    }
}

fn run(model: &LocalEmbedder, rx: &Receiver<Job>, settings: BatchSettings) {
    // Whether requests have been arriving together: only then is waiting for company worth
    // `max_wait`. A lone request (an idle worker, one query at a time) goes to the model at
    // once; what queues up meanwhile is merged into the next pass anyway.
    let mut concurrent = false;
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut count = jobs[0].texts.len();
        let linger = if concurrent {
            settings.max_wait
        } else {
            Duration::ZERO
        };
        let deadline = Instant::now() + linger;
        while count < settings.max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = if left.is_zero() {
                rx.try_recv().map_err(|_| RecvTimeoutError::Timeout)
            } else {
                rx.recv_timeout(left)
            };
            match next {
                Ok(job) => {
                    count += job.texts.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        concurrent = jobs.len() > 1;
        let texts: Vec<&str> = jobs
            .iter()
            .flat_map(|j| j.texts.iter().map(String::as_str))
            .collect();
        // `embed_blocking` sorts the merged texts by length, so small and large requests
        // arriving together still pad little.
        match model.embed_blocking(&texts) {
            Ok(mut embedded) => {
                for job in jobs.into_iter().rev() {
                    let mine = embedded.split_off(embedded.len() - job.texts.len());
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(error) => {
                for job in jobs {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }
}
