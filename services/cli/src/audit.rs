//! `thinkbank audit verify`: checks the audit log's hash chain, either straight from
//! PostgreSQL (the same verification the gateway runs, without trusting a gateway) or through
//! the gateway's admin endpoint.

use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::Value;

use crate::client::Client;

pub async fn verify(
    client: &Client,
    database_url: Option<&str>,
    audit_key: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let report: Value = match database_url {
        Some(url) => {
            // Without the key, keyed entries cannot be checked and are reported as such.
            let key = audit_key
                .map(|k| thinkbank_audit::AuditKey::new(k.as_bytes()))
                .transpose()
                .map_err(|e| anyhow::anyhow!("THINKBANK_AUDIT_KEY: {e}"))?;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .context("cannot connect to PostgreSQL")?;
            let verification = thinkbank_audit::verify(&pool, key.as_ref())
                .await
                .context("cannot read the audit log")?;
            serde_json::to_value(verification).context("cannot encode the report")?
        }
        None => {
            let (_, body) = client
                .json(client.http().get(client.url("/api/v1/audit/verify")))
                .await?;
            body
        }
    };
    let checked = report["entries_checked"].as_u64().unwrap_or(0);
    if report["ok"].as_bool() == Some(true) {
        println!("audit log intact: {checked} entries verified");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "audit log BROKEN at entry {}: {} ({checked} entries before it verified)",
            report["first_broken_seq"],
            report["reason"].as_str().unwrap_or("unknown reason")
        );
        Ok(ExitCode::from(1))
    }
}
