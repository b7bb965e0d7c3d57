//! A collection-scoped admin administers only within its collections: it cannot create or
//! change users (they reach the whole tenant), revoke or see wider keys, mint keys beyond its
//! collections, create collections, read the tenant's audit log, or act as an operator.
//! Issue 22, item 3; over real HTTP against a real stack.
#![expect(clippy::unwrap_used, reason = "tests fail loudly at the broken step")]

use reqwest::StatusCode;
use serde_json::{Value, json};
use thinkbank_testkit::{TestDatabase, client_with_key, spawn_gateway, spawn_worker};

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_collection_scoped_admin_cannot_grant_revoke_or_act_beyond_its_collections() {
    let db = TestDatabase::create().await;
    let worker = spawn_worker(&db).await;
    let gateway = spawn_gateway(&worker.url(), &db.url).await;
    let url = |path: &str| gateway.url(path);
    let operator = gateway.client();

    let team = json_of(
        operator
            .post(url("/api/v1/collections"))
            .json(&json!({"name": "team"}))
            .send()
            .await
            .unwrap(),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let collections = json_of(
        operator
            .get(url("/api/v1/collections"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let default = collections["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "default")
        .unwrap()
        .clone();
    let default_id = default["id"].as_str().unwrap().to_owned();
    let new_key = |client: reqwest::Client, body: Value| {
        let url = url("/api/v1/keys");
        async move { client.post(url).json(&body).send().await.unwrap() }
    };
    let created = |response: reqwest::Response| async move {
        assert_eq!(response.status(), StatusCode::CREATED);
        let body = json_of(response).await;
        (
            body["key"].as_str().unwrap().to_owned(),
            body["id"].as_str().unwrap().to_owned(),
        )
    };
    let (scoped_key, scoped_id) = created(
        new_key(
            operator.clone(),
            json!({"name": "team admin", "role": "admin", "collection_ids": [team]}),
        )
        .await,
    )
    .await;
    let scoped = client_with_key(&scoped_key);
    let (wide_key, wide_id) = created(
        new_key(
            operator.clone(),
            json!({"name": "whole tenant reader", "role": "reader"}),
        )
        .await,
    )
    .await;
    let (other_key, other_id) = created(
        new_key(
            operator.clone(),
            json!({"name": "default reader", "role": "reader", "collection_ids": [default_id]}),
        )
        .await,
    )
    .await;
    let user = json_of(
        operator
            .post(url("/api/v1/users"))
            .json(&json!({"username": "carol", "password": "carol's long password"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let carol = user["id"].as_str().unwrap().to_owned();

    // Users reach the whole tenant: a scoped admin creates, lists and changes none.
    let refused = [
        (
            "create an admin user",
            scoped.post(url("/api/v1/users")).json(
                &json!({"username": "mallory", "password": "mallory's long password",
                              "role": "admin"}),
            ),
        ),
        (
            "create a reader user",
            scoped
                .post(url("/api/v1/users"))
                .json(&json!({"username": "mallory2", "password": "mallory's long password"})),
        ),
        (
            "register a user",
            scoped.post(url("/api/v1/auth/register")).json(
                &json!({"username": "mallory3", "password": "mallory's long password",
                        "role": "admin"}),
            ),
        ),
        ("list users", scoped.get(url("/api/v1/users"))),
        (
            "make a user admin",
            scoped
                .patch(url(&format!("/api/v1/users/{carol}")))
                .json(&json!({"role": "admin"})),
        ),
        (
            "read the tenant's audit log",
            scoped.get(url("/api/v1/audit")),
        ),
        (
            "verify the audit chain",
            scoped.get(url("/api/v1/audit/verify")),
        ),
        ("list tenants", scoped.get(url("/api/v1/tenants"))),
        (
            "create a tenant",
            scoped
                .post(url("/api/v1/tenants"))
                .json(&json!({"name": "mine"})),
        ),
        (
            "mint a key for another collection",
            scoped
                .post(url("/api/v1/keys"))
                .json(&json!({"name": "x", "role": "admin", "collection_ids": [default_id]})),
        ),
        (
            "mint a key for its own and another collection",
            scoped.post(url("/api/v1/keys")).json(
                &json!({"name": "x", "role": "reader", "collection_ids": [team, default_id]}),
            ),
        ),
        (
            "create a collection",
            scoped
                .post(url("/api/v1/collections"))
                .json(&json!({"name": "widened"})),
        ),
    ];
    for (what, request) in refused {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
    }
    for name in ["mallory", "mallory2", "mallory3"] {
        let login = reqwest::Client::new()
            .post(url("/api/v1/auth/login"))
            .json(&json!({"username": name, "password": "mallory's long password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), StatusCode::UNAUTHORIZED, "{name} exists");
    }
    let users = json_of(operator.get(url("/api/v1/users")).send().await.unwrap()).await;
    let carol_now = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == carol.as_str())
        .unwrap()
        .clone();
    assert_eq!(carol_now["role"], "reader");

    // Wider keys are neither listed nor revocable, and keep working.
    let listed = json_of(scoped.get(url("/api/v1/keys")).send().await.unwrap()).await;
    let listed: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [scoped_id.as_str()]);
    for (id, key) in [(&wide_id, &wide_key), (&other_id, &other_key)] {
        let response = scoped
            .delete(url(&format!("/api/v1/keys/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let still = client_with_key(key)
            .get(url("/api/v1/assets"))
            .send()
            .await
            .unwrap();
        assert_eq!(still.status(), StatusCode::OK, "key {id} was revoked");
    }
    // Nor can it start or stop a migration of a collection it does not reach.
    let model = default["embedding_model"].as_str().unwrap();
    let migrate = scoped
        .post(url(&format!("/api/v1/collections/{default_id}/migration")))
        .json(&json!({"target_model": model}))
        .send()
        .await
        .unwrap();
    assert_eq!(migrate.status(), StatusCode::NOT_FOUND);
    let cancel = scoped
        .delete(url(&format!("/api/v1/collections/{default_id}/migration")))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), StatusCode::NOT_FOUND);

    // Within its collections it still administers: it mints (at most its own scope), lists
    // and revokes keys there.
    let (child_key, child_id) = created(
        new_key(
            scoped.clone(),
            json!({"name": "team bot", "role": "editor"}),
        )
        .await,
    )
    .await;
    let listed = json_of(scoped.get(url("/api/v1/keys")).send().await.unwrap()).await;
    let child = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == child_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(child["collection_ids"], json!([team]));
    let revoked = scoped
        .delete(url(&format!("/api/v1/keys/{child_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let gone = client_with_key(&child_key)
        .get(url("/api/v1/assets"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::UNAUTHORIZED);

    // The admin of the whole tenant keeps every power the scoped one lacks.
    let promoted = operator
        .patch(url(&format!("/api/v1/users/{carol}")))
        .json(&json!({"role": "editor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(promoted.status(), StatusCode::OK);
    let revoked = operator
        .delete(url(&format!("/api/v1/keys/{wide_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        operator
            .get(url("/api/v1/audit"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}
