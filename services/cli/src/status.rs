//! `thinkbank status`: readiness per dependency and assets by status.

use crate::client::Client;

pub async fn run(client: &Client) -> anyhow::Result<()> {
    let response = client
        .http()
        .get(client.url("/readyz"))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the gateway at {}: {e}", client.url("")))?;
    let ready: serde_json::Value = response.json().await.unwrap_or_default();
    println!(
        "gateway {}: {}",
        client.url(""),
        ready["status"].as_str().unwrap_or("unknown")
    );
    if let Some(checks) = ready["checks"].as_object() {
        for (name, check) in checks {
            let latency = check["latency_ms"].as_f64().unwrap_or(0.0);
            let error = check["error"]
                .as_str()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            println!(
                "  {name:<9} {:<8} {latency:.1} ms{error}",
                check["status"].as_str().unwrap_or("?")
            );
        }
    }
    println!("assets:");
    for status in ["queued", "processing", "ready", "failed", "cancelled"] {
        let count = count_assets(client, status).await?;
        println!("  {status:<10} {count}");
    }
    Ok(())
}

/// Counts by paging through the list (bounded by what a status command should show).
async fn count_assets(client: &Client, status: &str) -> anyhow::Result<String> {
    let mut total = 0usize;
    let mut token: Option<String> = None;
    for _ in 0..50 {
        let mut request = client
            .http()
            .get(client.url("/api/v1/assets"))
            .query(&[("status", status), ("page_size", "200")]);
        if let Some(token) = &token {
            request = request.query(&[("page_token", token.as_str())]);
        }
        let (_, body) = client.json(request).await?;
        total += body["assets"].as_array().map_or(0, Vec::len);
        match body["next_page_token"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => return Ok(total.to_string()),
        }
    }
    Ok(format!("{total}+"))
}
