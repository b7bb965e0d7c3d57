//! The owner, the intruders and the probes of the tenancy matrix (`tenancy_matrix.rs`), and the
//! route list read from the router's source.

mod owner;
mod table;

use std::{collections::BTreeSet, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use thinkbank_gateway::auth::Role;
use thinkbank_testkit::GatewayHandle;

pub use owner::Owner;
pub use table::{EXEMPT, matrix};

/// What a targeted probe names: who may legitimately see it decides the expected answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Lives in the owner's collection: the whole tenant sees it, a key limited to another
    /// collection does not.
    Collection,
    /// Belongs to alice alone (her conversations and live chat).
    Principal,
    /// The tenant's identities (keys, users): its admins only.
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OtherTenant,
    SameTenantUser,
    ScopedKey,
}

/// A principal probing the owner's resources.
pub struct Intruder {
    pub name: &'static str,
    pub kind: Kind,
    pub role: Role,
    pub client: reqwest::Client,
    /// Strings of the owner's that this intruder must never read.
    pub secrets: Vec<String>,
}

impl Intruder {
    /// May this intruder legitimately read what `scope` guards?
    pub fn sees(&self, scope: Scope) -> bool {
        self.kind == Kind::SameTenantUser && scope == Scope::Collection
    }
}

#[derive(Debug, Clone)]
pub enum Body {
    None,
    Json(Value),
    /// A small Markdown file uploaded into this collection.
    Upload(String),
}

/// One request of the matrix.
#[derive(Debug, Clone)]
pub struct Probe {
    pub method: Method,
    pub path: String,
    pub body: Body,
    /// The owner's resource this request names, if any.
    pub target: Option<Scope>,
}

impl Probe {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            body: Body::None,
            target: None,
        }
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }

    pub fn targets(mut self, scope: Scope) -> Self {
        self.target = Some(scope);
        self
    }

    /// Everything the intruder itself sent: the owner's strings in it are not leaks when
    /// echoed back.
    pub fn request_text(&self) -> String {
        match &self.body {
            Body::None => self.path.clone(),
            Body::Json(value) => format!("{} {value}", self.path),
            Body::Upload(collection) => format!("{} {collection}", self.path),
        }
    }

    /// Sends the probe; the status and up to a few seconds of the body (an event stream an
    /// intruder wrongly gets may never end).
    pub async fn send(
        &self,
        who: &reqwest::Client,
        gateway: &GatewayHandle,
    ) -> (StatusCode, String) {
        let mut request = who.request(self.method.clone(), gateway.url(&self.path));
        match &self.body {
            Body::None => {}
            Body::Json(value) => request = request.json(value),
            Body::Upload(collection) => {
                let form = reqwest::multipart::Form::new()
                    .part(
                        "file",
                        reqwest::multipart::Part::bytes(b"# Planted\n\nintruder text".to_vec())
                            .file_name("planted.md"),
                    )
                    .text("collection_id", collection.clone());
                request = request.multipart(form);
            }
        }
        let mut response = request.send().await.unwrap();
        let status = response.status();
        let mut body = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, response.chunk()).await {
            body.extend_from_slice(&chunk);
        }
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// Every (METHOD, path) the router serves: the gateway's route table, which the router is
/// built from.
pub fn router_routes() -> BTreeSet<(String, String)> {
    let routes: BTreeSet<(String, String)> = thinkbank_gateway::routes::table::routes()
        .into_iter()
        .map(|route| (route.method.to_string(), route.path))
        .collect();
    assert!(!routes.is_empty(), "the route table is empty");
    routes
}
