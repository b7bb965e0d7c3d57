//! The matrix itself: for each (METHOD, route template) the requests an intruder sends, naming
//! the owner's resources wherever the route takes an id, a collection or a continuation.

use reqwest::Method;
use serde_json::json;

use super::{Body, Owner, Probe, Scope};

/// Routes no intruder is sent to, each with the reason.
pub const EXEMPT: &[(&str, &str, &str)] = &[
    (
        "GET",
        "/ui/{*path}",
        "static files compiled into the binary; no tenant data",
    ),
    (
        "GET",
        "/docs/docs.css",
        "a static stylesheet compiled into the binary; no tenant data",
    ),
];

pub type Build = fn(&Owner) -> Vec<Probe>;

/// Requests that only read, sent with no body.
fn plain(method: Method, paths: &[String]) -> Vec<Probe> {
    paths
        .iter()
        .map(|p| Probe::new(method.clone(), p.clone()))
        .collect()
}

const MODES: [&str; 3] = ["hybrid", "vector", "keyword"];
const ASK: &str = "What is the vault combination on the zebra postcard?";

pub fn matrix() -> Vec<(&'static str, &'static str, Build)> {
    vec![
        // Public pages and probes: nothing of a tenant's may show, whoever asks.
        ("GET", "/", |_| plain(Method::GET, &["/".into()])),
        ("GET", "/api", |_| plain(Method::GET, &["/api".into()])),
        ("GET", "/healthz", |_| {
            plain(Method::GET, &["/healthz".into()])
        }),
        ("GET", "/readyz", |_| {
            plain(Method::GET, &["/readyz".into()])
        }),
        ("GET", "/openapi.json", |_| {
            plain(Method::GET, &["/openapi.json".into()])
        }),
        ("GET", "/docs", |_| plain(Method::GET, &["/docs".into()])),
        ("GET", "/metrics", |_| {
            plain(Method::GET, &["/metrics".into()])
        }),
        // Sign-in: alice's name with a wrong password, garbage tokens, a fresh registration.
        ("POST", "/api/v1/auth/login", |_| {
            vec![
                Probe::new(Method::POST, "/api/v1/auth/login")
                    .json(json!({"username": "alice-mx", "password": "not her password"})),
            ]
        }),
        ("POST", "/api/v1/auth/refresh", |_| {
            vec![
                Probe::new(Method::POST, "/api/v1/auth/refresh")
                    .json(json!({"refresh_token": "tbr_garbage"})),
            ]
        }),
        ("POST", "/api/v1/auth/logout", |_| {
            vec![
                Probe::new(Method::POST, "/api/v1/auth/logout")
                    .json(json!({"refresh_token": "tbr_garbage"})),
            ]
        }),
        ("POST", "/api/v1/auth/register", |_| {
            let name = format!("newcomer-{}", uuid::Uuid::now_v7().simple());
            vec![
                Probe::new(Method::POST, "/api/v1/auth/register")
                    .json(json!({"username": name, "password": "correct horse battery"})),
            ]
        }),
        ("GET", "/api/v1/auth/me", |_| {
            plain(Method::GET, &["/api/v1/auth/me".into()])
        }),
        // Assets: by id, into the owner's collection, listed by the owner's collection.
        ("POST", "/api/v1/assets", |o| {
            vec![Probe {
                body: Body::Upload(o.vault.clone()),
                ..Probe::new(Method::POST, "/api/v1/assets").targets(Scope::Collection)
            }]
        }),
        ("GET", "/api/v1/assets", |o| {
            plain(
                Method::GET,
                &[
                    "/api/v1/assets".into(),
                    format!("/api/v1/assets?collection_id={}", o.vault),
                ],
            )
        }),
        ("GET", "/api/v1/assets/{id}", |o| {
            by_asset(o, Method::GET, "")
        }),
        ("DELETE", "/api/v1/assets/{id}", |o| {
            by_asset(o, Method::DELETE, "")
        }),
        ("POST", "/api/v1/assets/{id}/cancel", |o| {
            by_asset(o, Method::POST, "/cancel")
        }),
        ("POST", "/api/v1/assets/{id}/reprocess", |o| {
            by_asset(o, Method::POST, "/reprocess")
        }),
        ("GET", "/api/v1/assets/{id}/events", |o| {
            by_asset(o, Method::GET, "/events")
        }),
        // Search in every mode, narrowed to the owner's collection or assets, and continued
        // with the owner's page token.
        ("POST", "/api/v1/search", |o| {
            let mut probes = Vec::new();
            for mode in MODES {
                for narrow in [
                    json!({}),
                    json!({"collection_ids": [o.vault]}),
                    json!({"asset_ids": o.assets}),
                    json!({"page_token": o.page_token}),
                ] {
                    let mut body = json!({"query": "vault zebra greenhouse", "mode": mode});
                    body.as_object_mut()
                        .unwrap()
                        .extend(narrow.as_object().unwrap().clone());
                    probes.push(Probe::new(Method::POST, "/api/v1/search").json(body));
                }
            }
            probes
        }),
        // Chat: continue alice's conversation; ask within the owner's collection.
        ("POST", "/api/v1/chat", |o| {
            vec![
                Probe::new(Method::POST, "/api/v1/chat")
                    .json(json!({"question": ASK, "conversation_id": o.conversation}))
                    .targets(Scope::Principal),
                Probe::new(Method::POST, "/api/v1/chat")
                    .json(json!({"question": ASK, "collection_ids": [o.vault]})),
            ]
        }),
        ("POST", "/api/v1/chat/{conversation_id}/stop", |o| {
            vec![
                Probe::new(Method::POST, format!("/api/v1/chat/{}/stop", o.live))
                    .targets(Scope::Principal),
            ]
        }),
        ("GET", "/api/v1/chat/{conversation_id}/events", |o| {
            vec![
                Probe::new(Method::GET, format!("/api/v1/chat/{}/events", o.live))
                    .targets(Scope::Principal),
            ]
        }),
        ("GET", "/api/v1/conversations", |_| {
            plain(
                Method::GET,
                &[
                    "/api/v1/conversations".into(),
                    "/api/v1/conversations?all=true".into(),
                ],
            )
        }),
        ("GET", "/api/v1/conversations/{id}", |o| {
            [&o.conversation, &o.live]
                .into_iter()
                .map(|c| {
                    Probe::new(Method::GET, format!("/api/v1/conversations/{c}"))
                        .targets(Scope::Principal)
                })
                .collect()
        }),
        ("PATCH", "/api/v1/conversations/{id}", |o| {
            vec![
                Probe::new(
                    Method::PATCH,
                    format!("/api/v1/conversations/{}", o.conversation),
                )
                .json(json!({"title": "taken over"}))
                .targets(Scope::Principal),
            ]
        }),
        ("DELETE", "/api/v1/conversations/{id}", |o| {
            vec![
                Probe::new(
                    Method::DELETE,
                    format!("/api/v1/conversations/{}", o.conversation),
                )
                .targets(Scope::Principal),
            ]
        }),
        // Collections.
        ("POST", "/api/v1/collections", |_| {
            let name = format!("intruder-{}", uuid::Uuid::now_v7().simple());
            vec![Probe::new(Method::POST, "/api/v1/collections").json(json!({"name": name}))]
        }),
        ("GET", "/api/v1/collections", |_| {
            plain(Method::GET, &["/api/v1/collections".into()])
        }),
        ("GET", "/api/v1/collections/{id}", |o| {
            vec![
                Probe::new(Method::GET, format!("/api/v1/collections/{}", o.vault))
                    .targets(Scope::Collection),
            ]
        }),
        ("POST", "/api/v1/collections/{id}/migration", |o| {
            vec![
                Probe::new(
                    Method::POST,
                    format!("/api/v1/collections/{}/migration", o.vault),
                )
                .json(json!({"target_model": "all-minilm-l6-v2"}))
                .targets(Scope::Collection),
            ]
        }),
        ("DELETE", "/api/v1/collections/{id}/migration", |o| {
            vec![
                Probe::new(
                    Method::DELETE,
                    format!("/api/v1/collections/{}/migration", o.vault),
                )
                .targets(Scope::Collection),
            ]
        }),
        ("GET", "/api/v1/embedding-models", |_| {
            plain(Method::GET, &["/api/v1/embedding-models".into()])
        }),
        // The OpenAI-compatible façade, asked about the owner's collection.
        ("POST", "/v1/chat/completions", |o| {
            [false, true]
                .into_iter()
                .map(|stream| {
                    Probe::new(Method::POST, "/v1/chat/completions").json(json!({
                        "model": "thinkbank", "stream": stream, "collection_ids": [o.vault],
                        "messages": [{"role": "user", "content": ASK}],
                    }))
                })
                .collect()
        }),
        ("GET", "/v1/models", |_| {
            plain(Method::GET, &["/v1/models".into()])
        }),
        ("POST", "/v1/embeddings", |_| {
            vec![Probe::new(Method::POST, "/v1/embeddings").json(json!({"input": ASK}))]
        }),
        // Identities: the owner tenant's keys, users, tenants and audit log.
        ("POST", "/api/v1/keys", |o| {
            vec![
                Probe::new(Method::POST, "/api/v1/keys").json(
                    json!({"name": "intruder", "role": "reader", "collection_ids": [o.vault]}),
                ),
            ]
        }),
        ("GET", "/api/v1/keys", |_| {
            plain(Method::GET, &["/api/v1/keys".into()])
        }),
        ("DELETE", "/api/v1/keys/{id}", |o| {
            vec![
                Probe::new(Method::DELETE, format!("/api/v1/keys/{}", o.spare_key))
                    .targets(Scope::Admin),
            ]
        }),
        ("POST", "/api/v1/users", |_| {
            let name = format!("intruder-{}", uuid::Uuid::now_v7().simple());
            vec![Probe::new(Method::POST, "/api/v1/users").json(
                json!({"username": name, "password": "correct horse battery", "role": "reader"}),
            )]
        }),
        ("GET", "/api/v1/users", |_| {
            plain(Method::GET, &["/api/v1/users".into()])
        }),
        ("PATCH", "/api/v1/users/{id}", |o| {
            vec![
                Probe::new(Method::PATCH, format!("/api/v1/users/{}", o.alice_id))
                    .json(json!({"role": "admin"}))
                    .targets(Scope::Admin),
            ]
        }),
        ("POST", "/api/v1/tenants", |_| {
            let name = format!("planted-{}", uuid::Uuid::now_v7().simple());
            vec![Probe::new(Method::POST, "/api/v1/tenants").json(json!({"name": name}))]
        }),
        ("GET", "/api/v1/tenants", |_| {
            plain(Method::GET, &["/api/v1/tenants".into()])
        }),
        // Quotas are the operator's: no intruder reads or sets the owner tenant's
        // (`assert_untouched` checks they are still unset).
        ("GET", "/api/v1/tenants/{id}/quotas", |o| {
            plain(
                Method::GET,
                &[format!("/api/v1/tenants/{}/quotas", o.tenant_id)],
            )
        }),
        ("PUT", "/api/v1/tenants/{id}/quotas", |o| {
            vec![
                Probe::new(
                    Method::PUT,
                    format!("/api/v1/tenants/{}/quotas", o.tenant_id),
                )
                .json(json!({"max_assets": 1, "max_bytes": 1, "max_chunks": 1})),
            ]
        }),
        ("GET", "/api/v1/audit", |_| {
            plain(Method::GET, &["/api/v1/audit?limit=1000".into()])
        }),
        ("GET", "/api/v1/audit/verify", |_| {
            plain(Method::GET, &["/api/v1/audit/verify".into()])
        }),
    ]
}

/// `method /api/v1/assets/{id}{suffix}` for each of the owner's assets.
fn by_asset(o: &Owner, method: Method, suffix: &str) -> Vec<Probe> {
    o.assets
        .iter()
        .map(|a| {
            Probe::new(method.clone(), format!("/api/v1/assets/{a}{suffix}"))
                .targets(Scope::Collection)
        })
        .collect()
}
