//! PostgreSQL goes away under load and comes back (through a loopback proxy, so the shared
//! test cluster stays up): meanwhile requests get 503 with `Retry-After`, nothing panics, no
//! queued job is lost or duplicated, and the platform recovers by itself when it returns.

use std::time::{Duration, Instant};

use reqwest::{StatusCode, multipart};
use serde_json::{Value, json};
use thinkbank_testkit::{
    TestDatabase, db_proxy::DbProxy, spawn_gateway_with, spawn_worker_with, worker_config,
};

const DOCUMENTS: usize = 6;

fn document(n: usize) -> String {
    let mut text = format!("# Station report {n}\n\n");
    for paragraph in 0..12 {
        text.push_str(&format!(
            "Paragraph {paragraph} of report {n} records tide gauge readings at harbour {} \
             with notes on calibration and drift.\n\n",
            n * 10 + paragraph
        ));
    }
    text
}

#[tokio::test]
async fn losing_the_database_answers_503_and_everything_recovers_when_it_returns() {
    let db = TestDatabase::create().await;
    let proxy = DbProxy::start(&db.url).await;
    let objects = thinkbank_testkit::fresh_objects_dir();
    let mut config = worker_config(&db, &objects);
    config.database_url = proxy.url().to_owned();
    // A short lease, so a job whose outcome could not be recorded is retried soon.
    config.ingest_lease = Duration::from_secs(3);
    config.ingest_max_attempts = 20;
    let worker = spawn_worker_with(config).await;
    let mut gateway_config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    gateway_config.database_url = proxy.url().to_owned();
    gateway_config.bootstrap_admin_key = Some(thinkbank_testkit::bootstrap_key_for(&db.url));
    let gateway = spawn_gateway_with(gateway_config).await;
    let http = gateway.client();

    // Load: documents queued for ingestion, then the database disappears under them.
    let mut ids = Vec::new();
    for n in 0..DOCUMENTS {
        let form = multipart::Form::new().part(
            "file",
            multipart::Part::bytes(document(n).into_bytes()).file_name(format!("report-{n}.md")),
        );
        let response = http
            .post(gateway.url("/api/v1/assets"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let body: Value = response.json().await.unwrap();
        ids.push(body["asset"]["id"].as_str().unwrap().to_owned());
    }
    proxy.stop();

    // Meanwhile: 503 with Retry-After (never a hang, a 500 or a dropped connection).
    for path in ["/api/v1/search", "/api/v1/assets"] {
        let response = if path == "/api/v1/search" {
            http.post(gateway.url(path))
                .json(&json!({"query": "tide gauge"}))
                .send()
                .await
                .unwrap()
        } else {
            http.get(gateway.url(path)).send().await.unwrap()
        };
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(response.headers().contains_key("retry-after"), "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable", "{path}");
    }
    let ready = http.get(gateway.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The database returns: searches work again without restarting anything.
    proxy.resume();
    let back = Instant::now();
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    while back.elapsed() < Duration::from_secs(30) {
        status = http
            .post(gateway.url("/api/v1/search"))
            .json(&json!({"query": "tide gauge"}))
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::OK);
    println!(
        "search answered 200 again {:.2} s after the database returned",
        back.elapsed().as_secs_f64()
    );

    // No job lost: every document ends READY once, with its chunks indexed once.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut conn = db.connect().await;
    loop {
        let statuses: Vec<(String,)> =
            sqlx::query_as("SELECT status FROM worker.assets ORDER BY created_at")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        if statuses.iter().all(|(s,)| s == "ready") || Instant::now() > deadline {
            assert_eq!(statuses.len(), DOCUMENTS);
            assert!(statuses.iter().all(|(s,)| s == "ready"), "{statuses:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "all {DOCUMENTS} documents READY {:.2} s after the database returned",
        back.elapsed().as_secs_f64()
    );
    let (jobs,): (i64,) = sqlx::query_as("SELECT count(*) FROM worker.ingest_jobs")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
    let duplicates: Vec<(String, i64)> = sqlx::query_as(
        "SELECT asset_id::text, count(*) FROM worker.chunks GROUP BY asset_id, chunk_index \
         HAVING count(*) > 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(duplicates.is_empty(), "{duplicates:?}");
    for id in &ids {
        let (chunks,): (i32,) =
            sqlx::query_as("SELECT chunk_count FROM worker.assets WHERE id = $1::uuid")
                .bind(id)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(chunks > 0);
    }
    // Readiness is back too, within 5 s of the database (the worker re-probes every 250 ms
    // while NOT_SERVING).
    loop {
        let ready = http.get(gateway.url("/readyz")).send().await.unwrap();
        let status = ready.status();
        let body = ready.text().await.unwrap();
        if status == StatusCode::OK {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "not ready {:.1} s after the database returned: {body}",
            back.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "/readyz answered 200 again {:.2} s after the database returned",
        back.elapsed().as_secs_f64()
    );
}
