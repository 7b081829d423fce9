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
        statement_timeout: None,
    };
    let Some(app) = (match backend {
        Backend::Postgres => match crate::helpers::postgres_available().await {
            Some(()) => {
                Some(TestApp::spawn_with_pool(backend, HttpSettings::default(), pool).await)
            }
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
        Store::Postgres(pg) => HeldConn::Pg(pg.lease().await.unwrap()),
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

/// Many more concurrent requests than connections: every one waits its
/// turn and succeeds (connections released by one request are handed to
/// the next, including to those already waiting on the pool).
async fn small_pool_serves_a_crowd(backend: Backend) {
    let pool = PoolConfig {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(2),
        statement_timeout: None,
    };
    if backend == Backend::Postgres && crate::helpers::postgres_available().await.is_none() {
        return;
    }
    let app = TestApp::spawn_with_pool(backend, HttpSettings::default(), pool).await;
    let user = app.create_user(json!({"userName": "crowd"})).await;
    let uid = user["id"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for i in 0..96 {
        let req = match i % 3 {
            0 => app.req(Method::GET, &format!("/Users/{uid}")),
            1 => app.req(Method::GET, "/Users?filter=userName%20eq%20%22crowd%22"),
            _ => app.req(Method::PATCH, &format!("/Users/{uid}")).json(
                &json!({"Operations": [{"op": "replace", "path": "title", "value": format!("t{i}")}]}),
            ),
        };
        tasks.push(tokio::spawn(
            async move { req.send().await.unwrap().status() },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let (_, after) = app.get_user(&uid).await;
    assert_eq!(
        after["meta"]["version"], "W/\"33\"",
        "32 PATCHes, none lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_pool_serves_a_crowd_sqlite() {
    small_pool_serves_a_crowd(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_pool_serves_a_crowd_postgres() {
    small_pool_serves_a_crowd(Backend::Postgres).await;
}

#[allow(dead_code)]
enum HeldConn {
    Pg(scimd::store::Lease),
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
            .fetch_one(&mut *pg.lease().await.unwrap())
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

/// PostgreSQL restarted under load: while it is down requests get 503 (never
/// 500), /readyz says so, scimd recovers by itself, and every write that was
/// acknowledged with a 2xx is there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load() {
    let name = format!("scimd-restart-{}", std::process::id());
    let cluster = match tokio::task::spawn_blocking(move || crate::helpers::Cluster::start(&name))
        .await
        .unwrap()
    {
        Ok(c) => c,
        Err(e) => {
            crate::helpers::skip_postgres(&format!("cannot start a throwaway cluster: {e}"));
            return;
        }
    };
    let token = "Prestart:0123456789abcdefghijklmnopqrstuvwxyz";
    let env = [
        ("SCIMD_DB_ACQUIRE_TIMEOUT", "1s"),
        ("SCIMD_REQUEST_TIMEOUT", "5s"),
        ("SCIMD_AUTH_CACHE_TTL", "0s"),
    ];
    let mut server = crate::cli::Server::start_logging(&cluster.url, Some(token), None, &env).await;
    let base = format!("{}/scim/v2", server.url);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for i in 0..5000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let resp = client
                    .post(format!("{base}/Users"))
                    .header("authorization", format!("Bearer {token}"))
                    .json(&json!({"userName": format!("load{i}")}))
                    .send()
                    .await;
                let outcome = match resp {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        (status, body["id"].as_str().map(str::to_owned))
                    }
                    Err(_) => (0, None),
                };
                outcomes.push(outcome);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            outcomes
        })
    };
    let ready = |client: reqwest::Client, url: String| async move {
        client
            .get(format!("{url}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let c = std::sync::Arc::new(cluster);
    let c2 = c.clone();
    tokio::task::spawn_blocking(move || c2.down())
        .await
        .unwrap()
        .unwrap();
    let mut saw_unready = false;
    for _ in 0..50 {
        if ready(client.clone(), server.url.clone()).await == 503 {
            saw_unready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_unready, "/readyz reports the database down");
    // Down for longer than the acquire timeout, so waiting requests give up.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let c3 = c.clone();
    tokio::task::spawn_blocking(move || c3.up())
        .await
        .unwrap()
        .unwrap();
    let mut recovered = false;
    for _ in 0..300 {
        if ready(client.clone(), server.url.clone()).await == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "scimd recovers by itself");
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let outcomes = load.await.unwrap();

    let acknowledged: Vec<&String> = outcomes
        .iter()
        .filter(|(s, _)| *s == 201)
        .filter_map(|(_, id)| id.as_ref())
        .collect();
    let unavailable = outcomes.iter().filter(|(s, _)| *s == 503).count();
    let other: Vec<u16> = outcomes
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| *s != 201 && *s != 503)
        .collect();
    eprintln!(
        "{} writes: {} acknowledged, {unavailable} answered 503, others {other:?}",
        outcomes.len(),
        acknowledged.len()
    );
    assert!(
        other.is_empty(),
        "while PostgreSQL was down, failures were 503 only: {other:?}"
    );
    assert!(unavailable > 0, "the load saw the outage");
    let last = outcomes.last().unwrap().0;
    assert_eq!(last, 201, "writes succeed again after the restart");
    for id in acknowledged {
        let resp = client
            .get(format!("{base}/Users/{id}"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "acknowledged write {id} is present"
        );
    }
    assert!(server.terminate().await.success());
}
