//! The dashboard and alert rules in `deploy/observability/` refer only to metrics the services
//! really export (names taken from the services' own registries), and every expression uses
//! at least one of them. promtool is not needed: expressions are scanned for metric names.

use std::{collections::BTreeSet, path::PathBuf};

use thinkbank_testkit::prometheus::series_names;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every series name either service can export.
fn exported() -> BTreeSet<String> {
    let gateway = thinkbank_gateway::metrics::METRICS.families();
    let worker = thinkbank_ai_worker::telemetry::METRICS.families();
    let names = series_names(
        gateway
            .iter()
            .chain(worker)
            .map(|(name, kind)| (name.as_str(), *kind)),
    );
    assert!(names.len() >= 35, "{names:?}");
    names
}

/// Identifiers in a PromQL expression that name thinkbank metrics.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut current = String::new();
    let mut in_string = false;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            in_string = !in_string;
        }
        if !in_string && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            current.push(c);
        } else {
            if current.starts_with("thinkbank_") {
                names.push(current.clone());
            }
            current.clear();
        }
    }
    names
}

/// The `expr:` values of a Prometheus rule file (plain or block scalars).
fn rule_expressions(yaml: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut alert = String::new();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            alert = name.trim().to_owned();
        }
        if let Some(rest) = trimmed.strip_prefix("expr:") {
            let rest = rest.trim();
            let indent = line.len() - trimmed.len();
            let expr = if rest.starts_with('|') || rest.starts_with('>') {
                let mut body = Vec::new();
                while i + 1 < lines.len() {
                    let next = lines[i + 1];
                    let next_indent = next.len() - next.trim_start().len();
                    if !next.trim().is_empty() && next_indent <= indent {
                        break;
                    }
                    body.push(next.trim());
                    i += 1;
                }
                body.join(" ")
            } else {
                rest.to_owned()
            };
            out.push((alert.clone(), expr));
        }
        i += 1;
    }
    out
}

#[test]
fn the_expression_scanner_finds_metric_names_and_skips_label_values() {
    assert_eq!(
        metric_names(
            r#"sum(rate(thinkbank_a_total{route!~"thinkbank_not_a_metric"}[5m])) / thinkbank_b"#
        ),
        ["thinkbank_a_total", "thinkbank_b"]
    );
}

#[test]
fn alert_rules_cover_stuck_jobs_errors_and_p99_and_use_only_exported_metrics() {
    let exported = exported();
    let yaml =
        std::fs::read_to_string(repo().join("deploy/observability/prometheus/alerts.yml")).unwrap();
    let rules = rule_expressions(&yaml);
    assert!(rules.len() >= 5, "{rules:?}");
    for (alert, expr) in &rules {
        let names = metric_names(expr);
        assert!(
            !names.is_empty(),
            "{alert} uses no thinkbank metric: {expr}"
        );
        for name in names {
            assert!(
                exported.contains(&name),
                "{alert} uses {name}, which no service exports"
            );
        }
    }
    let all: String = rules.iter().map(|(_, e)| e.as_str()).collect();
    assert!(all.contains("thinkbank_ingest_queue_oldest_job_age_seconds"));
    assert!(all.contains("status=~\"5..\""));
    assert!(all.contains("histogram_quantile(0.99"));
}

#[test]
fn every_dashboard_query_uses_only_exported_metrics() {
    let exported = exported();
    let text = std::fs::read_to_string(
        repo().join("deploy/observability/grafana/thinkbank-dashboard.json"),
    )
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut panels: Vec<&serde_json::Value> =
        dashboard["panels"].as_array().unwrap().iter().collect();
    let mut queries = 0;
    let mut seen = BTreeSet::new();
    while let Some(panel) = panels.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            panels.extend(nested);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{}: {expr}", panel["title"]);
            for name in names {
                assert!(exported.contains(&name), "{} uses {name}", panel["title"]);
                seen.insert(name);
            }
            queries += 1;
        }
    }
    assert!(queries >= 15, "{queries}");
    // Every exported family shows up somewhere on the dashboard.
    let families: BTreeSet<String> = exported
        .iter()
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n)
                .to_owned()
        })
        .collect();
    for family in families {
        assert!(
            seen.iter().any(|s| s.starts_with(&family)),
            "{family} is on no dashboard panel"
        );
    }
}
