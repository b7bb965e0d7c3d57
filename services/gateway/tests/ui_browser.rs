//! The browser UI in headless Chromium: the real worker (answers from the OpenAI-compatible
//! test server, scripted with delays so tokens arrive over time) and the real gateway on port
//! 0, driven by `tests/ui/browser.mjs` through playwright-core. Afterwards the fake LLM's
//! records prove that the UI's Stop button really dropped the upstream request.
//!
//! Needs Debian's `chromium` and `npm ci` in `tests/ui`, which
//! `python3 deploy/local/thinkbank_dev.py setup --test` (and so `make test`) installs.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use thinkbank_testkit::{
    FakeLlm, Script, TestDatabase, fresh_objects_dir, llm_config, spawn_worker_with, worker_config,
};

/// Asked in a fresh conversation and stopped mid-answer by the browser.
const UI_USER: &str = "browser-user";
const UI_PASSWORD: &str = "a long browser password";
const STOP_QUESTION: &str = "Tell me everything about tides";
/// The whole browser run; it normally takes well under a minute.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(150);

/// A Markdown answer with a supported, an unsupported and an invented citation.
const CITED_ANSWER: &str = "Tides are caused by the **gravitational pull of the Moon** [1]. \
Penguins enjoy jazz music [2]. The oracle agrees [9].\n\n\
- High tides happen twice a day\n- The Sun adds a smaller pull\n\n\
| Body | Effect |\n|---|---|\n| Moon | strong |\n| Sun | weaker |\n\n\
```rust\nlet tide = moon + sun;\n```";
const REGENERATED_ANSWER: &str =
    "Regenerated: the gravitational pull of the Moon causes tides [1].";
/// Model output trying every trick: raw HTML, event handlers, script and data URLs.
const HOSTILE_ANSWER: &str = "Here is the document [1].\n\n\
<script>window.__pwned = 1</script> <img src=x onerror=\"window.__pwned=2\">\n\n\
[click me](javascript:window.__pwned=3) and [data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==) \
and [safe docs](https://example.com/docs)";

fn repo_root() -> PathBuf {
    std::env::var_os("THINKBANK_REPO_ROOT").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."),
        PathBuf::from,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_uploads_searches_streams_cites_stops_and_renders_hostile_content_inert() {
    let repo = repo_root();
    let test_dir = repo.join("tests/ui");
    assert!(
        test_dir.join("node_modules/playwright-core").is_dir(),
        "tests/ui/node_modules is missing: run `python3 deploy/local/thinkbank_dev.py setup --test` \
         (installs chromium and runs npm ci)"
    );
    let chromium =
        std::env::var("THINKBANK_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());

    // Scripts are served in the order the browser asks; anything else gets the default.
    let fake = FakeLlm::start(Script::words("Nothing more to add [1].")).await;
    let delay = Duration::from_millis(30);
    fake.push_script(Script::words(CITED_ANSWER).with_delay(delay));
    fake.push_script(Script::words(REGENERATED_ANSWER).with_delay(delay));
    let long: Vec<String> = (0..400).map(|i| format!(" tide{i}")).collect();
    fake.push_script(Script::tokens(long).with_delay(Duration::from_millis(100)));
    fake.push_script(Script::words(HOSTILE_ANSWER).with_delay(delay));

    let db = TestDatabase::create().await;
    let mut llm = llm_config(&fake);
    // A follow-up would first ask the model to rewrite the question, shifting the scripts.
    llm.llm_rewrite_questions = false;
    let mut config = worker_config(&db, &fresh_objects_dir());
    config.llm = llm;
    // The page must render whatever the model streams, hostile output included, whatever the
    // question: the relevance floor (tested in answer_eval.rs) is not what this test is about.
    config.answers.chat_min_relevance = 0.0;
    let worker = spawn_worker_with(config).await;
    let config = thinkbank_gateway::Config::for_worker(worker.url(), db.url.clone());
    let gateway = thinkbank_testkit::spawn_gateway_with(config).await;
    // A person who signs in with a password, besides the admin key the page is given first.
    let created = gateway
        .client()
        .post(gateway.url("/api/v1/users"))
        .json(&serde_json::json!({"username": UI_USER, "password": UI_PASSWORD, "role": "editor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);

    let artifacts = repo.join("bench/results/ui");
    let started = Instant::now();
    let mut child = tokio::process::Command::new("node")
        .arg("browser.mjs")
        .current_dir(&test_dir)
        .env("THINKBANK_UI_URL", gateway.url(""))
        .env("THINKBANK_UI_API_KEY", &gateway.api_key)
        .env("THINKBANK_UI_USER", UI_USER)
        .env("THINKBANK_UI_PASSWORD", UI_PASSWORD)
        .env("THINKBANK_UI_ARTIFACTS", &artifacts)
        .env("THINKBANK_UI_STOP_QUESTION", STOP_QUESTION)
        .env("THINKBANK_CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot run node (install Node.js 20+)");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let read = |mut pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
        tokio::spawn(async move {
            let mut text = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut text).await;
            text
        })
    };
    let (out, err) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let status = tokio::time::timeout(BROWSER_TIMEOUT, child.wait()).await;
    let _ = child.start_kill();
    let (out, err) = (out.await.unwrap(), err.await.unwrap());
    println!("{out}");
    eprintln!("{err}");
    let status = status
        .unwrap_or_else(|_| panic!("the browser test did not finish within {BROWSER_TIMEOUT:?}"))
        .unwrap();
    assert!(
        status.success(),
        "the browser test failed ({status}):\n{err}"
    );
    println!("browser run: {:.1} s", started.elapsed().as_secs_f64());

    // The Stop button reached the provider: the LLM request of the stopped answer was
    // dropped before it completed.
    let requests = fake.requests();
    let stopped = requests
        .iter()
        .position(|r| r.prompt().contains(STOP_QUESTION))
        .expect("the stopped question never reached the LLM");
    assert!(
        fake.wait_for_disconnect(stopped, Duration::from_secs(5))
            .await
            .is_some(),
        "the LLM request of the stopped answer was not dropped"
    );
    assert!(
        !fake.requests()[stopped].completed,
        "the stopped answer ran to its end"
    );
    // Each question reached the model once: nothing was asked behind the user's back (the
    // first answer, its regeneration, the stopped one, the hostile one, the phone-width one).
    assert_eq!(requests.len(), 5, "one LLM request per question");
}
