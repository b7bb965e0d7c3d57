//! The cross-principal matrix (issue 22, "Done when"): every route the gateway serves, driven as
//! three intruders against what a first principal owns, with no leak allowed.
//!
//! The route list is not written here: it is the OpenAPI document the gateway serves plus the
//! routes of its route table (`routes::table`, which the router is built from). Every one must
//! be in [`matrix`] or in [`EXEMPT`] with a reason, and every entry there must be a real route,
//! so a new route fails this test until someone decides how it is probed.
//!
//! The owner is a tenant of its own ("matrix-owner"): its admin's collections and assets, its
//! user alice's conversations and live chat, its keys and users. The intruders are the admin of
//! another tenant, bob (a reader user of the same tenant) and an editor key of the same tenant
//! limited to another collection. A probe naming a resource the intruder may not see must get
//! 404 (403 where its role alone forbids the route), and no response, whatever its status, may
//! carry a secret the intruder did not send itself (ids, names, text).
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

mod matrix;

use std::collections::BTreeSet;

use matrix::{EXEMPT, Intruder, Kind, Owner, Probe, Scope, matrix, router_routes};
use reqwest::StatusCode;
use thinkbank_gateway::{auth::Role, routes::table::declared};

#[tokio::test]
async fn no_route_leaks_another_principals_data_to_another_tenant_user_or_scoped_key() {
    let owner = Owner::set_up().await;
    let spec: serde_json::Value = owner
        .operator
        .get(owner.gateway.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes: BTreeSet<(String, String)> = router_routes();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.insert((method.to_uppercase(), path.clone()));
        }
    }

    let table = matrix();
    let listed: BTreeSet<(String, String)> = table
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .chain(
            EXEMPT
                .iter()
                .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned())),
        )
        .collect();
    let missing: Vec<_> = routes.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the tenancy matrix (add a probe, or exempt with a reason): {missing:?}"
    );
    let stale: Vec<_> = listed.difference(&routes).collect();
    assert!(stale.is_empty(), "matrix entries for no route: {stale:?}");

    let intruders = owner.intruders().await;
    // What each intruder has sent so far: the owner's ids in it are known to it, and may come
    // back in what it stored itself (a key it limited to the owner's collection id).
    let mut sent = vec![String::new(); intruders.len()];
    let mut probes_sent = 0;
    let mut findings = Vec::new();
    for (method, template, build) in &table {
        for probe in build(&owner) {
            for (intruder, sent) in intruders.iter().zip(&mut sent) {
                probes_sent += 1;
                sent.push_str(&probe.request_text());
                if let Some(finding) = check(&owner, intruder, sent, method, template, &probe).await
                {
                    findings.push(finding);
                }
            }
        }
    }
    println!(
        "tenancy matrix: {} routes ({} exempt) x {} principals = {} route-principal pairs, \
         {probes_sent} requests",
        table.len(),
        EXEMPT.len(),
        intruders.len(),
        table.len() * intruders.len(),
    );
    assert!(findings.is_empty(), "leaks:\n{}", findings.join("\n"));
    owner.assert_untouched().await;
}

/// Sends `probe` as `intruder`; a description of what went wrong, if anything did.
async fn check(
    owner: &Owner,
    intruder: &Intruder,
    sent: &str,
    method: &str,
    template: &str,
    probe: &Probe,
) -> Option<String> {
    let (status, body) = probe.send(&intruder.client, &owner.gateway).await;
    let at = format!("{} {method} {} ({template})", intruder.name, probe.path);
    // A probe that never reached its handler proves nothing.
    // (Only the sign-in endpoints judge credentials the intruder sent in the body.)
    let refused_credentials =
        status == StatusCode::UNAUTHORIZED && !probe.path.starts_with("/api/v1/auth/");
    if matches!(
        status,
        StatusCode::METHOD_NOT_ALLOWED | StatusCode::TOO_MANY_REQUESTS
    ) || refused_credentials
        || status.is_server_error()
        || body.contains("no such route")
    {
        return Some(format!("{at}: did not reach its handler: {status} {body}"));
    }
    let leaked: Vec<&String> = intruder
        .secrets
        .iter()
        .filter(|s| body.contains(s.as_str()) && !sent.contains(s.as_str()))
        .collect();
    if !leaked.is_empty() {
        return Some(format!("{at}: {status} leaks {leaked:?}: {body}"));
    }
    let target = probe.target?;
    if intruder.sees(target) {
        return None;
    }
    // A collection-scoped admin may not manage the tenant's identities at all: refused
    // outright (403, whatever the id, so nothing is revealed) where a wider target is 404.
    if target == Scope::Admin
        && intruder.kind == Kind::ScopedKey
        && intruder.role == Role::Admin
        && status == StatusCode::FORBIDDEN
    {
        return None;
    }
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let role_forbids = declared(&m, template)
        .and_then(|route| route.access.role())
        .is_some_and(|needed| needed > intruder.role);
    let expected = if role_forbids {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::NOT_FOUND
    };
    (status != expected).then(|| format!("{at}: {status} where {expected} was due: {body}"))
}
