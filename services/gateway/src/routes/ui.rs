//! The browser UI: static files from `services/gateway/ui/`, embedded in the binary, served at
//! `/` and `/ui/…` with a strict Content-Security-Policy, a validator (ETag) and gzip.
//!
//! There is no build step: the files are plain ES modules and CSS, compiled in with
//! `include_bytes!`, so the gateway binary is the whole deployment and nothing is fetched at
//! run time. Browsers revalidate every load (`no-cache`), which costs a 304 per file but means
//! an upgraded gateway never serves stale code next to a new API.

use std::{collections::HashMap, io::Write as _, sync::LazyLock};

use axum::{
    Json,
    body::Body,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::{Digest as _, Sha256};

use crate::error::ApiError;

/// No inline script or style, no eval, nothing from another origin; Trusted Types make any
/// accidental `innerHTML` with a string throw instead of parsing markup.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; \
    require-trusted-types-for 'script'; trusted-types 'none'";

/// One embedded file: its URL path below `/ui/`, its content type and its bytes.
struct File {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! ui_file {
    ($path:literal, $content_type:expr) => {
        File {
            path: $path,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../ui/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const FILES: &[File] = &[
    ui_file!("index.html", "text/html; charset=utf-8"),
    ui_file!("app.css", "text/css; charset=utf-8"),
    ui_file!("icon.svg", "image/svg+xml"),
    ui_file!("js/api.js", JS),
    ui_file!("js/auth.js", JS),
    ui_file!("js/chat.js", JS),
    ui_file!("js/conversations.js", JS),
    ui_file!("js/dom.js", JS),
    ui_file!("js/library.js", JS),
    ui_file!("js/main.js", JS),
    ui_file!("js/markdown.js", JS),
    ui_file!("js/message.js", JS),
    ui_file!("js/passage.js", JS),
    ui_file!("js/search.js", JS),
    ui_file!("js/status.js", JS),
    ui_file!("js/theme.js", JS),
];

/// A file ready to serve: its gzip variant (when smaller) and its validator.
struct Prepared {
    content_type: &'static str,
    identity: &'static [u8],
    gzip: Option<bytes::Bytes>,
    etag: String,
}

/// Compressed once, on first use; a dozen small text files.
static PREPARED: LazyLock<HashMap<&'static str, Prepared>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|file| {
            let digest = Sha256::digest(file.bytes);
            let etag = format!(
                "W/\"{}\"",
                digest
                    .iter()
                    .take(12)
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            let gzip = gzip(file.bytes)
                .filter(|gz| gz.len() + 64 < file.bytes.len())
                .map(bytes::Bytes::from);
            let prepared = Prepared {
                content_type: file.content_type,
                identity: file.bytes,
                gzip,
                etag,
            };
            (file.path, prepared)
        })
        .collect()
});

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

/// `GET /`: the UI for browsers; the JSON index for clients that ask for JSON.
#[utoipa::path(get, path = "/", tag = "meta", security(()),
    responses((status = 200,
        description = "the browser UI (HTML); with `Accept: application/json` and no `text/html`, \
                       the JSON index of endpoints",
        content((String = "text/html"), (Object = "application/json")))))]
pub async fn index(headers: HeaderMap) -> Response {
    if wants_json(&headers) {
        return api_index().await.into_response();
    }
    let mut response = serve("index.html", &headers);
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("accept"));
    response
}

/// `GET /api`: what the gateway offers, as JSON.
#[utoipa::path(get, path = "/api", tag = "meta", security(()),
    responses((status = 200, description = "the JSON index of endpoints", body = Object)))]
pub async fn api_index() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "name": "thinkbank",
        "version": env!("CARGO_PKG_VERSION"),
        "endpoints": {
            "ui": "GET / (browser UI)",
            "upload": "POST /api/v1/assets",
            "assets": "GET /api/v1/assets",
            "search": "POST /api/v1/search",
            "chat": "POST /api/v1/chat (text/event-stream)",
            "conversations": "GET /api/v1/conversations",
            "embeddings": "POST /v1/embeddings (OpenAI-compatible)",
            "chat_completions": "POST /v1/chat/completions (OpenAI-compatible)",
            "health": "GET /healthz, GET /readyz"
        }
    }))
}

/// `GET /ui/{*path}`: one embedded file, or the API's JSON 404.
pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    if !PREPARED.contains_key(path.as_str()) {
        return ApiError::new(
            thinkbank_common::ErrorCode::NotFound,
            format!("no UI file '{path}'"),
        )
        .into_response();
    }
    serve(&path, &headers)
}

/// A JSON-only client (curl with `-H 'accept: application/json'`, SDKs) gets the index;
/// browsers send `text/html` first.
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    accept.contains("application/json") && !accept.contains("text/html")
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = PREPARED.get(path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim() == file.etag || t.trim() == "*")
        });
    let mut builder = Response::builder()
        .header(header::ETAG, &file.etag)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::VARY, "accept-encoding")
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header("cross-origin-opener-policy", "same-origin");
    let body = if not_modified {
        builder = builder.status(StatusCode::NOT_MODIFIED);
        Body::empty()
    } else {
        builder = builder.header(header::CONTENT_TYPE, file.content_type);
        match &file.gzip {
            Some(gz) if accepts_gzip(headers) => {
                builder = builder.header(header::CONTENT_ENCODING, "gzip");
                Body::from(gz.clone())
            }
            _ => Body::from(file.identity),
        }
    };
    builder
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                name.clone(),
                HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
            );
        }
        map
    }

    #[test]
    fn every_file_the_page_references_is_embedded() {
        let index = std::str::from_utf8(FILES[0].bytes).unwrap_or_default();
        for reference in index.split('"').filter(|s| s.starts_with("/ui/")) {
            assert!(
                PREPARED.contains_key(&reference["/ui/".len()..]),
                "{reference} is not embedded"
            );
        }
        for file in FILES.iter().filter(|f| f.path.ends_with(".js")) {
            let text = std::str::from_utf8(file.bytes).unwrap_or_default();
            for import in text.split(['\'', '"']).filter(|s| s.starts_with("./")) {
                let path = format!("js/{}", &import[2..]);
                assert!(
                    PREPARED.contains_key(path.as_str()),
                    "{} imports {import}, which is not embedded",
                    file.path
                );
            }
        }
    }

    #[test]
    fn gzip_is_offered_only_when_the_client_accepts_it() {
        assert!(accepts_gzip(&headers(&[(
            header::ACCEPT_ENCODING,
            "gzip, deflate, br"
        )])));
        assert!(!accepts_gzip(&headers(&[(
            header::ACCEPT_ENCODING,
            "gzip;q=0, br"
        )])));
        assert!(!accepts_gzip(&headers(&[(
            header::ACCEPT_ENCODING,
            "identity"
        )])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn json_clients_get_the_index_and_browsers_the_page() {
        assert!(wants_json(&headers(&[(
            header::ACCEPT,
            "application/json"
        )])));
        assert!(!wants_json(&headers(&[(
            header::ACCEPT,
            "text/html,application/xhtml+xml,*/*;q=0.8"
        )])));
        assert!(!wants_json(&HeaderMap::new()));
    }
}
