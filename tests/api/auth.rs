//! Authentication (401), authorisation (403) and tenant isolation (404).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, assert_scim_error, json_of};
use scimd::admin;
use scimd::auth::TENANT_ADMIN;

/// Sends `GET /Users` with the given Authorization header (or none).
async fn get_users_with(app: &TestApp, authorization: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(format!("{}/Users", app.base));
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    req.send().await.unwrap()
}

async fn assert_401(resp: reqwest::Response) -> Value {
    assert_eq!(
        resp.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("Bearer realm=\"scimd\"".to_owned())
    );
    let (status, body) = json_of(resp).await;
    assert_scim_error(status, &body, 401, None);
    body
}

both_backends! {
    async fn every_bad_credential_gets_the_same_401(app) {
        let (project, key) = app.token.split_once(':').unwrap();
        let revoked = admin::create_key(&app.store, project, "a", TENANT_ADMIN, None, None).await.unwrap();
        assert!(admin::revoke_key(&app.store, &revoked.key_id).await.unwrap());
        let expired = admin::create_key(&app.store, project, "a", TENANT_ADMIN, Some(Duration::ZERO), None).await.unwrap();
        let other_project = admin::create_project(&app.store, None, "other").await.unwrap();

        let mut wrong_secret = key.to_owned();
        let last = wrong_secret.pop().unwrap();
        wrong_secret.push(if last == 'A' { 'B' } else { 'A' });

        let cases: Vec<Option<String>> = vec![
            None,
            Some(format!("Basic {}", app.token)),
            Some("Bearer".to_owned()),
            Some(format!("Bearer {project}{key}")),
            Some(format!("Bearer NoSuchProject:{key}")),
            Some(format!("Bearer {}:{key}", other_project.id)),
            Some(format!("Bearer {project}:unknownkeyunknownkeyunknownkey0000000000")),
            Some(format!("Bearer {project}:{wrong_secret}")),
            Some(format!("Bearer {}", revoked.token)),
            Some(format!("Bearer {}", expired.token)),
        ];
        let mut bodies = Vec::new();
        for auth in &cases {
            bodies.push(assert_401(get_users_with(&app, auth.as_deref()).await).await);
        }
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "identical bodies: {bodies:?}");

        // Every method is guarded, and a bad token never reaches the body parser.
        let resp = app.client.post(format!("{}/Users", app.base)).body("{not json").send().await.unwrap();
        assert_401(resp).await;
        let resp = app.client.delete(format!("{}/Users/{}", app.base, uuid::Uuid::now_v7())).send().await.unwrap();
        assert_401(resp).await;

        // The good token still works, in any scheme casing.
        assert_eq!(get_users_with(&app, Some(&format!("bearer {}", app.token))).await.status(), StatusCode::OK);
    }

    async fn revocation_takes_effect(app) {
        let key = admin::create_key(&app.store, &app.project_id, "a", TENANT_ADMIN, None, None).await.unwrap();
        let auth = format!("Bearer {}", key.token);
        assert_eq!(get_users_with(&app, Some(&auth)).await.status(), StatusCode::OK);
        admin::revoke_key(&app.store, &key.key_id).await.unwrap();
        assert_401(get_users_with(&app, Some(&auth)).await).await;
    }

    async fn a_key_without_tenant_admin_is_403(app) {
        let key = admin::create_key(&app.store, &app.project_id, "a", "auditor", None, None).await.unwrap();
        let (status, body) = json_of(get_users_with(&app, Some(&format!("Bearer {}", key.token))).await).await;
        assert_scim_error(status, &body, 403, None);
        let resp = app.req_as(&key.token, Method::POST, "/Users").json(&json!({"userName": "x"})).send().await.unwrap();
        let (status, body) = json_of(resp).await;
        assert_scim_error(status, &body, 403, None);
        let (_, list) = json_of(app.req(Method::GET, "/Users").send().await.unwrap()).await;
        assert_eq!(list["totalResults"], 0);
    }

    async fn users_of_another_tenant_are_404_for_every_method(app) {
        let user = app.create_user(json!({"userName": "alice", "title": "A"})).await;
        let id = user["id"].as_str().unwrap();
        let path = format!("/Users/{id}");
        let other = app.token_for_new_tenant("b").await;

        let (status, body) = json_of(app.req_as(&other, Method::GET, &path).send().await.unwrap()).await;
        assert_scim_error(status, &body, 404, None);
        let resp = app.req_as(&other, Method::PUT, &path).json(&json!({"userName": "alice", "title": "B"})).send().await.unwrap();
        let (status, body) = json_of(resp).await;
        assert_scim_error(status, &body, 404, None);
        let (status, body) = json_of(app.req_as(&other, Method::DELETE, &path).send().await.unwrap()).await;
        assert_scim_error(status, &body, 404, None);
        let (_, list) = json_of(app.req_as(&other, Method::GET, "/Users").send().await.unwrap()).await;
        assert_eq!(list["totalResults"], 0);

        // Untouched for its own tenant; and userName uniqueness is per tenant.
        let (_, after) = app.get_user(id).await;
        assert_eq!(after, user);
        let resp = app.req_as(&other, Method::POST, "/Users").json(&json!({"userName": "ALICE"})).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }

    async fn key_use_is_recorded_without_a_write_per_request(app) {
        let key = admin::create_key(&app.store, &app.project_id, "a", TENANT_ADMIN, None, Some("probe")).await.unwrap();
        let auth = format!("Bearer {}", key.token);
        let last_used = || async {
            let keys = admin::list_keys(&app.store, Some(&app.project_id)).await.unwrap();
            keys.into_iter().find(|k| k.id == key.key_id).unwrap().last_used_at
        };
        assert_eq!(last_used().await, None);
        assert_eq!(get_users_with(&app, Some(&auth)).await.status(), StatusCode::OK);
        // The touch runs in the background; wait for it (bounded).
        let mut first = None;
        for _ in 0..50 {
            first = last_used().await;
            if first.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(first.is_some(), "last_used_at is recorded");
        for _ in 0..5 {
            assert_eq!(get_users_with(&app, Some(&auth)).await.status(), StatusCode::OK);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(last_used().await, first, "at most one write a minute");
    }
}

/// `GET /Users` with `token`: the status.
async fn status_with(app: &TestApp, token: &str) -> StatusCode {
    get_users_with(app, Some(&format!("Bearer {token}")))
        .await
        .status()
}

both_backends! {
    // The verification cache lets a revoked key work at most its TTL longer.
    async fn a_revoked_key_works_at_most_the_cache_ttl_longer(app) {
        const TTL: Duration = Duration::from_secs(2);
        let app = app.respawn_with_auth_cache(TTL).await;
        let key = admin::create_key(&app.store, &app.project_id, "a", TENANT_ADMIN, None, None).await.unwrap();
        assert_eq!(status_with(&app, &key.token).await, StatusCode::OK);
        assert!(admin::revoke_key(&app.store, &key.key_id).await.unwrap());
        let revoked = tokio::time::Instant::now();
        assert_eq!(status_with(&app, &key.token).await, StatusCode::OK, "cached: the cache is in use");
        tokio::time::sleep_until(revoked + TTL).await;
        for _ in 0..3 {
            assert_eq!(status_with(&app, &key.token).await, StatusCode::UNAUTHORIZED, "a TTL after revocation");
        }
    }

    // Expiry is checked on every request, cached or not.
    async fn an_expired_key_never_works_even_when_cached(app) {
        let app = app.respawn_with_auth_cache(Duration::from_secs(600)).await;
        let lifetime = Duration::from_millis(1500);
        let key = admin::create_key(&app.store, &app.project_id, "a", TENANT_ADMIN, Some(lifetime), None).await.unwrap();
        let issued = tokio::time::Instant::now();
        assert_eq!(status_with(&app, &key.token).await, StatusCode::OK);
        tokio::time::sleep_until(issued + lifetime + Duration::from_millis(50)).await;
        assert_eq!(status_with(&app, &key.token).await, StatusCode::UNAUTHORIZED);
    }

    // However many keys verify, the cache holds at most its capacity, and
    // a key verifies the same whether it is cached or was evicted.
    async fn the_verification_cache_stays_bounded(app) {
        let verifier = scimd::auth::KeyVerifier::with_capacity(app.store.clone(), Duration::from_secs(600), 4);
        let mut tokens = Vec::new();
        for _ in 0..12 {
            let key = admin::create_key(&app.store, &app.project_id, "a", TENANT_ADMIN, None, None).await.unwrap();
            let creds = scimd::auth::token::parse_token(&key.token).unwrap();
            assert!(verifier.verify(&creds).await.is_ok());
            assert!(verifier.cached() <= 4, "{} cached", verifier.cached());
            tokens.push(creds);
        }
        assert!(verifier.cached() >= 1);
        for creds in &tokens {
            assert!(verifier.verify(creds).await.is_ok());
            assert!(verifier.cached() <= 4);
        }
    }
}

/// A key's token bucket: `burst` requests at once, then `429` with
/// `Retry-After` and a SCIM error (problem details on `/api/v1`); other
/// keys are not held back; after the wait the key works again. Nothing is
/// stored about it, so one backend shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after() {
    let base = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let limit = scimd::auth::RateLimit {
        per_second: 1.0,
        burst: 3,
    };
    let app = base
        .respawn(scimd::HttpSettings {
            rate_limit: Some(limit),
            ..Default::default()
        })
        .await;
    let other = app.token_for_new_tenant("b").await;
    for _ in 0..3 {
        let resp = app.req(Method::GET, "/Users").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let resp = app.req(Method::GET, "/Users").send().await.unwrap();
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let (status, body) = json_of(resp).await;
    assert_scim_error(status, &body, 429, None);
    assert!(
        body["detail"].as_str().unwrap().contains("retry after"),
        "{body}"
    );

    // /api/v1 answers the same limit with problem details.
    let resp = app
        .client
        .get(format!("{}/api/v1/events?limit=0", app.origin))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(resp.headers()["content-type"], "application/problem+json");

    // Another key has its own bucket.
    let resp = app
        .req_as(&other, Method::GET, "/Users")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // After the wait it names, the key works again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let resp = app.req(Method::GET, "/Users").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}
