//! `thinkbank search "…"`: the best chunks, one per line with score and location.

use crate::client::Client;

pub async fn run(client: &Client, query: &str, top_k: u32) -> anyhow::Result<()> {
    let request = client
        .http()
        .post(client.url("/api/v1/search"))
        .json(&serde_json::json!({ "query": query, "top_k": top_k }));
    let (_, body) = client.json(request).await?;
    let hits = body["hits"].as_array().cloned().unwrap_or_default();
    if hits.is_empty() {
        println!("no results");
    }
    for (rank, hit) in hits.iter().enumerate() {
        let mut place = hit["filename"].as_str().unwrap_or("?").to_owned();
        if let Some(page) = hit["position"]["page"].as_u64() {
            place.push_str(&format!(" p.{page}"));
        }
        let headings: Vec<&str> = hit["position"]["headings"]
            .as_array()
            .map(|h| h.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        if !headings.is_empty() {
            place.push_str(&format!(" › {}", headings.join(" › ")));
        }
        let text: String = hit["text"]
            .as_str()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let snippet: String = text.chars().take(160).collect();
        println!(
            "{:>2}. {:.3}  {place}\n    {snippet}",
            rank + 1,
            hit["score"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}
