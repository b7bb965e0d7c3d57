//! A thin HTTP client for the gateway that turns its JSON errors into readable messages.

use anyhow::{Context as _, bail};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    pub fn new(base: &str, api_key: Option<&str>) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--url must start with http:// or https://, got '{base}'");
        }
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = api_key.filter(|k| !k.is_empty()) {
            let value = format!("Bearer {key}")
                .parse()
                .context("the API key holds characters a header cannot carry")?;
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        Ok(Self {
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .default_headers(headers)
                .build()
                .context("cannot build the HTTP client")?,
            base,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `request` and returns the status and JSON body, or the API's error message.
    pub async fn json(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{}", error_message(status, &body));
        }
        Ok((status, body))
    }
}

/// "400 invalid_argument: the uploaded file is empty"
pub fn error_message(status: reqwest::StatusCode, body: &Value) -> String {
    let code = body["error"]["code"].as_str().unwrap_or("error");
    let message = body["error"]["message"].as_str().unwrap_or("no details");
    format!("{} {code}: {message}", status.as_u16())
}
