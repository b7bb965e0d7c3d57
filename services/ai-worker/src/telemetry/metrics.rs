//! The worker's Prometheus metrics: every family is described here once, and the rest of the
//! worker records through the small methods below.

use std::sync::LazyLock;

use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram,
};
use thinkbank_common::metrics::{
    HistogramFamily, MetricSet, PoolMetrics, latency_buckets, size_buckets, slow_buckets,
};

type One = [(&'static str, &'static str); 1];
type Profile = [(&'static str, String); 1];

#[derive(Debug)]
pub struct Metrics {
    registry: MetricSet,
    rpc_requests: Family<[(&'static str, String); 2], Counter>,
    rpc_duration: HistogramFamily<[(&'static str, String); 1]>,
    rpc_in_flight: Family<[(&'static str, String); 1], Gauge>,
    rpc_shed: Family<[(&'static str, String); 1], Counter>,
    ingest_stage: HistogramFamily<One>,
    ingest_jobs: Family<One, Counter>,
    queue_wait: Histogram,
    queue_depth: Gauge,
    queue_oldest_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    embed_batch_size: Histogram,
    embed_batch_duration: Histogram,
    embed_texts: Counter,
    search_leg: HistogramFamily<One>,
    llm_ttft: Histogram,
    llm_tokens: Family<One, Counter>,
    llm_requests: Family<One, Counter>,
    llm_circuit_open: Gauge,
    shadow_comparisons: Family<[(&'static str, String); 2], Counter>,
    shadow_overlap: HistogramFamily<Profile>,
    shadow_rank_correlation: HistogramFamily<Profile>,
    shadow_latency_delta: HistogramFamily<Profile>,
    pool: PoolMetrics,
}

/// 0, 0.1, …, 1.0: overlap is a share of the page.
fn ratio_buckets() -> Histogram {
    Histogram::new((0..=10).map(|i| f64::from(i) / 10.0))
}

/// -1.0, -0.8, …, 1.0: a rank correlation coefficient.
fn correlation_buckets() -> Histogram {
    Histogram::new((-5..=5).map(|i| f64::from(i) / 5.0))
}

/// Symmetric around 0 (shadow faster ↔ slower), 5 ms to 2.5 s either way.
fn delta_buckets() -> Histogram {
    const EDGES: [f64; 8] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5];
    let negative = EDGES.iter().rev().map(|e| -e);
    Histogram::new(negative.chain([0.0]).chain(EDGES))
}

/// The worker's metrics (one set per process).
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

fn latency_family<L: Clone + std::hash::Hash + Eq>() -> HistogramFamily<L> {
    HistogramFamily::new_with_constructor(latency_buckets as fn() -> Histogram)
}

impl Metrics {
    fn new() -> Self {
        let mut r = MetricSet::default();
        let m = Self {
            rpc_requests: Family::default(),
            rpc_duration: latency_family(),
            rpc_in_flight: Family::default(),
            rpc_shed: Family::default(),
            ingest_stage: HistogramFamily::new_with_constructor(slow_buckets as fn() -> Histogram),
            ingest_jobs: Family::default(),
            queue_wait: slow_buckets(),
            queue_depth: Gauge::default(),
            queue_oldest_age: Gauge::default(),
            embed_batch_size: size_buckets(),
            embed_batch_duration: latency_buckets(),
            embed_texts: Counter::default(),
            search_leg: latency_family(),
            llm_ttft: latency_buckets(),
            llm_tokens: Family::default(),
            llm_requests: Family::default(),
            llm_circuit_open: Gauge::default(),
            shadow_comparisons: Family::default(),
            shadow_overlap: HistogramFamily::new_with_constructor(ratio_buckets),
            shadow_rank_correlation: HistogramFamily::new_with_constructor(correlation_buckets),
            shadow_latency_delta: HistogramFamily::new_with_constructor(delta_buckets),
            pool: PoolMetrics::register(&mut r),
            registry: MetricSet::default(),
        };
        r.register(
            "thinkbank_grpc_server_requests",
            "gRPC calls handled, by method (/package.Service/Method) and status code name",
            m.rpc_requests.clone(),
        );
        r.register(
            "thinkbank_grpc_server_request_duration_seconds",
            "Time from receiving a gRPC call to its end (for streams: the last message), by method",
            m.rpc_duration.clone(),
        );
        r.register(
            "thinkbank_grpc_server_in_flight_requests",
            "gRPC calls being handled right now, by method",
            m.rpc_in_flight.clone(),
        );
        r.register(
            "thinkbank_grpc_server_shed_requests",
            "gRPC calls refused with RESOURCE_EXHAUSTED because the worker was at its concurrency limit, by method",
            m.rpc_shed.clone(),
        );
        r.register(
            "thinkbank_ingest_stage_duration_seconds",
            "Wall time of one ingestion stage (read, parse, chunk, embed, commit) of one attempt",
            m.ingest_stage.clone(),
        );
        r.register(
            "thinkbank_ingest_jobs",
            "Ingestion attempts finished, by outcome (ready, retry, failed)",
            m.ingest_jobs.clone(),
        );
        r.register(
            "thinkbank_ingest_queue_wait_seconds",
            "Time a job waited in the queue between becoming due and being claimed",
            m.queue_wait.clone(),
        );
        r.register(
            "thinkbank_ingest_queue_depth",
            "Jobs in the ingestion queue (due, scheduled for retry or leased), all tenants",
            m.queue_depth.clone(),
        );
        r.register(
            "thinkbank_ingest_queue_oldest_job_age_seconds",
            "Age of the oldest job in the ingestion queue (0 when empty); a growing value means stuck ingestion",
            m.queue_oldest_age.clone(),
        );
        r.register(
            "thinkbank_embed_batch_size",
            "Texts per embedding batch given to the model",
            m.embed_batch_size.clone(),
        );
        r.register(
            "thinkbank_embed_batch_duration_seconds",
            "Time to embed one batch",
            m.embed_batch_duration.clone(),
        );
        r.register(
            "thinkbank_embed_texts",
            "Texts embedded; its rate is the embedding throughput",
            m.embed_texts.clone(),
        );
        r.register(
            "thinkbank_search_leg_duration_seconds",
            "Time of one search leg (embed, vector, keyword, fusion, snippet) or of the whole search (total)",
            m.search_leg.clone(),
        );
        r.register(
            "thinkbank_llm_time_to_first_token_seconds",
            "Time from sending a completion request to its first content token (successful attempts)",
            m.llm_ttft.clone(),
        );
        r.register(
            "thinkbank_llm_tokens",
            "Tokens the LLM provider reported, by kind (prompt, completion)",
            m.llm_tokens.clone(),
        );
        r.register(
            "thinkbank_llm_requests",
            "LLM completion starts, by outcome (ok, error, circuit_open)",
            m.llm_requests.clone(),
        );
        r.register(
            "thinkbank_llm_circuit_open",
            "1 while the LLM circuit breaker fails calls fast, else 0",
            m.llm_circuit_open.clone(),
        );
        r.register(
            "thinkbank_search_shadow_comparisons",
            "Sampled searches for the shadow retrieval profile, by profile and outcome (compared, skipped_busy, error)",
            m.shadow_comparisons.clone(),
        );
        r.register(
            "thinkbank_search_shadow_overlap_ratio",
            "Share of the primary result page the shadow profile also returned (overlap@k), by profile",
            m.shadow_overlap.clone(),
        );
        r.register(
            "thinkbank_search_shadow_rank_correlation",
            "Kendall tau-b of the ranks of hits both the primary and the shadow profile returned, by profile",
            m.shadow_rank_correlation.clone(),
        );
        r.register(
            "thinkbank_search_shadow_latency_delta_seconds",
            "Shadow ranking time minus primary ranking time (negative: the shadow was faster), by profile",
            m.shadow_latency_delta.clone(),
        );
        Self { registry: r, ..m }
    }

    /// The exposition text, with the pool gauges refreshed from `pool`.
    pub fn render(&self, pool: Option<&sqlx::PgPool>) -> String {
        if let Some(pool) = pool {
            self.pool.observe(
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            );
        }
        self.registry.render()
    }

    /// Every metric family the worker exports, as `(name, type)`.
    pub fn families(&self) -> &[(String, &'static str)] {
        self.registry.families()
    }

    pub fn rpc_started(&self, method: &str) -> Gauge {
        let gauge = self
            .rpc_in_flight
            .get_or_create(&[("method", method.to_owned())])
            .clone();
        gauge.inc();
        gauge
    }

    pub fn rpc_finished(&self, method: &str, code: &str, seconds: f64) {
        self.rpc_requests
            .get_or_create(&[("method", method.to_owned()), ("code", code.to_owned())])
            .inc();
        self.rpc_duration
            .get_or_create(&[("method", method.to_owned())])
            .observe(seconds);
    }

    pub fn rpc_shed(&self, method: &str) {
        self.rpc_shed
            .get_or_create(&[("method", method.to_owned())])
            .inc();
    }

    pub fn ingest_stage(&self, stage: &'static str, seconds: f64) {
        self.ingest_stage
            .get_or_create(&[("stage", stage)])
            .observe(seconds);
    }

    pub fn ingest_job(&self, outcome: &'static str) {
        self.ingest_jobs
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }

    pub fn queue_wait(&self, seconds: f64) {
        self.queue_wait.observe(seconds.max(0.0));
    }

    pub fn queue_state(&self, depth: i64, oldest_age_seconds: f64) {
        self.queue_depth.set(depth);
        self.queue_oldest_age.set(oldest_age_seconds.max(0.0));
    }

    pub fn embed_batch(&self, size: usize, seconds: f64) {
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        self.embed_batch_size.observe(size as f64);
        self.embed_batch_duration.observe(seconds);
        self.embed_texts.inc_by(size);
    }

    pub fn search_leg(&self, leg: &'static str, milliseconds: f64) {
        self.search_leg
            .get_or_create(&[("leg", leg)])
            .observe(milliseconds / 1000.0);
    }

    pub fn llm_first_token(&self, seconds: f64) {
        self.llm_ttft.observe(seconds);
    }

    pub fn llm_request(&self, outcome: &'static str) {
        self.llm_requests
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }

    pub fn llm_tokens(&self, prompt: u32, completion: u32) {
        self.llm_tokens
            .get_or_create(&[("kind", "prompt")])
            .inc_by(u64::from(prompt));
        self.llm_tokens
            .get_or_create(&[("kind", "completion")])
            .inc_by(u64::from(completion));
    }

    pub fn llm_circuit(&self, open: bool) {
        self.llm_circuit_open.set(i64::from(open));
    }

    pub fn shadow_outcome(&self, profile: &str, outcome: &'static str) {
        self.shadow_comparisons
            .get_or_create(&[
                ("profile", profile.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// One comparison; `rank_correlation` is `None` when fewer than two hits are shared.
    pub fn shadow_compared(
        &self,
        profile: &str,
        overlap: f64,
        rank_correlation: Option<f64>,
        latency_delta_seconds: f64,
    ) {
        let label = [("profile", profile.to_owned())];
        self.shadow_overlap.get_or_create(&label).observe(overlap);
        if let Some(tau) = rank_correlation {
            self.shadow_rank_correlation
                .get_or_create(&label)
                .observe(tau);
        }
        self.shadow_latency_delta
            .get_or_create(&label)
            .observe(latency_delta_seconds);
        self.shadow_outcome(profile, "compared");
    }
}
