//! How the gateway serves the UI's files over HTTP: the page for browsers and the JSON index
//! for API clients at `/`, a strict Content-Security-Policy, gzip, and ETag revalidation.
//! (The UI itself is exercised in a real browser by `ui_browser.rs`.)

use reqwest::{StatusCode, header};
use serde_json::Value;
use thinkbank_testkit::spawn_gateway;

/// Static files need no worker: the gateway connects to it lazily.
const NO_WORKER: &str = "http://127.0.0.1:9";
/// Nothing listens here either: the UI is served without the identity store.
const NO_DATABASE: &str = "postgres://nobody@127.0.0.1:9/none";

#[tokio::test]
async fn browsers_get_the_page_under_a_strict_csp_and_api_clients_get_the_json_index() {
    let gateway = spawn_gateway(NO_WORKER, NO_DATABASE).await;
    let http = reqwest::Client::new();

    let page = http
        .get(gateway.url("/"))
        .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
    }
    assert!(
        !csp.contains("unsafe"),
        "no unsafe-inline or unsafe-eval: {csp}"
    );
    assert_eq!(page.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/ui/js/main.js">"#));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page loads nothing from elsewhere"
    );

    for (path, accept) in [("/", "application/json"), ("/api", "*/*")] {
        let index = http
            .get(gateway.url(path))
            .header(header::ACCEPT, accept)
            .send()
            .await
            .unwrap();
        assert_eq!(index.status(), StatusCode::OK, "{path}");
        let body: Value = index.json().await.unwrap();
        assert_eq!(body["name"], "thinkbank", "{path}");
        assert_eq!(body["endpoints"]["ui"], "GET / (browser UI)", "{path}");
    }

    let missing = http
        .get(gateway.url("/ui/js/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn files_are_gzipped_for_clients_that_accept_it_and_revalidated_with_their_etag() {
    let gateway = spawn_gateway(NO_WORKER, NO_DATABASE).await;
    // Without automatic decompression, so the encoding on the wire is visible.
    let http = reqwest::Client::builder().no_gzip().build().unwrap();
    let url = gateway.url("/ui/js/markdown.js");

    let plain = http.get(&url).send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(
        plain.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
    assert_eq!(plain.headers()[header::CACHE_CONTROL], "no-cache");
    let etag = plain.headers()[header::ETAG].to_str().unwrap().to_owned();
    let source = plain.bytes().await.unwrap();
    assert!(
        std::str::from_utf8(&source)
            .unwrap()
            .contains("export function renderMarkdown")
    );

    let gzipped = http
        .get(&url)
        .header(header::ACCEPT_ENCODING, "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(gzipped.headers()[header::ETAG], etag.as_str());
    let compressed = gzipped.bytes().await.unwrap();
    assert!(
        compressed.len() * 2 < source.len(),
        "gzip shrinks the file: {} of {} bytes",
        compressed.len(),
        source.len()
    );
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, source);

    let revalidated = http
        .get(&url)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    assert!(revalidated.bytes().await.unwrap().is_empty());
    let changed = http
        .get(&url)
        .header(header::IF_NONE_MATCH, "W/\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
}
