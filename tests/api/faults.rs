//! Behaviour under load and faults: pool exhaustion, requests dropped
//! mid-flight, and several scimd processes writing one user.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, assert_scim_error, json_of};
use scimd::HttpSettings;
use scimd::store::{PoolConfig, Store};

/// With every connection taken, a request waits the acquire timeout, then
/// gets 503 with Retry-After: no 500, no hang.
async fn pool_exhaustion(backend: Backend) {
    let pool = PoolConfig {
        max_connections: 1,
        acquire_timeout: Duration::from_millis(300),
    };
    let Some(app) = (match backend {
        Backend::Postgres => match crate::helpers::pg_admin_url().await {
            Some(_) => Some(TestApp::spawn_with_pool(backend, HttpSettings::default(), pool).await),
            None => None,
        },
        Backend::Sqlite => {
            Some(TestApp::spawn_with_pool(backend, HttpSettings::default(), pool).await)
        }
    }) else {
        return;
    };
    let user = app.create_user(json!({"userName": "held"})).await;
    let held = match &app.store {
        Store::Postgres(pg) => HeldConn::Pg(pg.pool().acquire().await.unwrap()),
        Store::Sqlite(lite) => HeldConn::Lite(lite.pool().acquire().await.unwrap()),
    };
    for (method, path) in [
        (Method::GET, "/Users".to_owned()),
        (
            Method::GET,
            format!("/Users/{}", user["id"].as_str().unwrap()),
        ),
    ] {
        let resp = app.req(method, &path).send().await.unwrap();
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
            Some("1".to_owned())
        );
        let (status, err) = json_of(resp).await;
        assert_scim_error(status, &err, 503, None);
    }
    drop(held);
    let (status, _) = app.get_user(user["id"].as_str().unwrap()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "recovers as soon as a connection is free"
    );
}

#[allow(dead_code)]
enum HeldConn {
    Pg(sqlx::pool::PoolConnection<sqlx::Postgres>),
    Lite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_exhaustion_is_503_with_retry_after_sqlite() {
    pool_exhaustion(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_exhaustion_is_503_with_retry_after_postgres() {
    pool_exhaustion(Backend::Postgres).await;
}

both_backends! {
    async fn requests_dropped_mid_flight_leave_nothing_half_done(app) {
        let user = app.create_user(json!({"userName": "dropped", "emails": [{"value": "d@example.com"}]})).await;
        let uid = user["id"].as_str().unwrap().to_owned();
        let (status, group) = json_of(app.send_json(Method::POST, "/Groups", &json!({"displayName": "dropped"})).await).await;
        assert_eq!(status, StatusCode::CREATED);
        let gid = group["id"].as_str().unwrap().to_owned();
        let mut members = Vec::new();
        for i in 0..20 {
            members.push(app.create_user(json!({"userName": format!("m{i}")})).await["id"].as_str().unwrap().to_owned());
        }
        // Hundreds of writes whose clients give up after a few milliseconds.
        let impatient = reqwest::Client::new();
        let mut tasks = Vec::new();
        for i in 0..300 {
            let (method, path, body) = match i % 3 {
                0 => (Method::PATCH, format!("/Users/{uid}"), json!({"Operations": [{"op": "add", "path": "emails", "value": [{"value": format!("x{i}@example.com")}]}]})),
                1 => (Method::PUT, format!("/Users/{uid}"), json!({"userName": "dropped", "title": format!("t{i}")})),
                _ => (Method::PATCH, format!("/Groups/{gid}"), json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": members[i % 20]}]}, {"op": "remove", "path": "members", "value": [{"value": members[(i + 7) % 20]}]}]})),
            };
            let req = impatient
                .request(method, format!("{}{path}", app.base))
                .header("authorization", format!("Bearer {}", app.token))
                .header("content-type", "application/scim+json")
                .timeout(Duration::from_millis(2 + (i as u64 * 7) % 40))
                .body(body.to_string());
            tasks.push(tokio::spawn(async move { req.send().await.is_ok() }));
        }
        let mut dropped = 0;
        for t in tasks {
            if !t.await.unwrap() {
                dropped += 1;
            }
        }
        eprintln!("{dropped} of 300 requests were abandoned by their client");
        assert!(dropped >= 100, "the check must abandon requests in flight ({dropped} were)");
        // Let the server finish (or roll back) what it was doing.
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Store::Postgres(pg) = &app.store {
            let stuck: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
            )
            .fetch_one(pg.pool())
            .await
            .unwrap();
            assert_eq!(stuck, 0, "no session left idle in transaction");
        }
        // Every following request succeeds.
        for i in 0..50 {
            let body = json!({"Operations": [{"op": "replace", "path": "title", "value": format!("after{i}")}]});
            let (status, body) = json_of(app.send_json(Method::PATCH, &format!("/Users/{uid}"), &body).await).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let body = json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": members[i % 20]}]}]});
            let resp = app.req(Method::PATCH, &format!("/Groups/{gid}")).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        }
        let (_, after) = app.get_user(&uid).await;
        assert_eq!(after["title"], "after49");
        let (status, g) = json_of(app.req(Method::GET, &format!("/Groups/{gid}")).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{g}");
        assert!(g["members"].is_array());
    }
}
