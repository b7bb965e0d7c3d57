//! The worker fails closed: the real binary refuses to start without an internal token, and
//! starts — with a loud warning — only when told explicitly that it may serve without one.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use thinkbank_testkit::{TestDatabase, model_dir};

/// The worker binary with a clean environment (nothing inherited from the test runner, so a
/// token exported there cannot hide the bug) and everything it needs to start on port 0.
fn worker(db: &TestDatabase) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_thinkbank-ai-worker"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("THINKBANK_DATABASE_URL", &db.url)
        .env("THINKBANK_WORKER_LISTEN", "127.0.0.1:0")
        .env("THINKBANK_WORKER_ADMIN_LISTEN", "127.0.0.1:0")
        .env("THINKBANK_EMBED_MODEL_DIR", model_dir())
        .env(
            "THINKBANK_OBJECT_STORE_DIR",
            thinkbank_testkit::fresh_objects_dir(),
        )
        .env("THINKBANK_INGEST_CONCURRENCY", "0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[tokio::test]
async fn without_a_token_or_the_insecure_flag_the_worker_refuses_to_start() {
    let db = TestDatabase::create().await;
    let mut child = worker(&db).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            // Not left behind serving: the old, failing-open binary ran until killed.
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the worker kept running without an internal token");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let mut output = std::io::read_to_string(stdout).unwrap();
    output.push_str(&std::io::read_to_string(stderr).unwrap());
    assert!(!status.success(), "exit status {status}: {output}");
    assert!(output.contains("THINKBANK_INTERNAL_TOKEN"), "{output}");
    assert!(output.contains("--insecure-no-internal-token"), "{output}");
    assert!(!output.contains("worker listening"), "{output}");
}

#[tokio::test]
async fn with_the_insecure_flag_the_worker_starts_and_warns() {
    let db = TestDatabase::create().await;
    let mut child = worker(&db)
        .env("THINKBANK_INSECURE_NO_INTERNAL_TOKEN", "true")
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    // Lines until the worker says it is ready (or its output ends).
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in stdout.lines() {
            let line = line.unwrap();
            let ready = line.contains("worker ready");
            seen.push(line);
            if ready {
                break;
            }
        }
        seen
    });
    let lines = tokio::time::timeout(Duration::from_secs(120), lines).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let lines = lines.expect("the worker did not become ready").unwrap();
    let output = lines.join("\n");
    assert!(
        lines.last().is_some_and(|l| l.contains("worker ready")),
        "{output}"
    );
    let warning = lines
        .iter()
        .find(|l| l.contains("INSECURE"))
        .unwrap_or_else(|| panic!("no warning about the missing token: {output}"));
    assert!(warning.contains("WARN"), "{warning}");
}
