//! Webhooks: subscriptions over `/api/v1/webhooks`, deliveries signed by
//! Standard Webhooks, in order, retried, once per subscription with two
//! delivery workers, and never to a private address unless allowed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::both_backends;
use crate::helpers::TestApp;
use scimd::HttpSettings;

/// A delivery as the receiver saw it.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

/// A local webhook receiver that answers 500 to its first `fail_first`
/// requests and 204 after, recording the requests it accepted.
struct Receiver {
    url: String,
    accepted: Arc<Mutex<Vec<Delivery>>>,
    refused: Arc<Mutex<usize>>,
    /// Requests that arrived (also those still held at the gate).
    arrived: Arc<AtomicUsize>,
    /// While closed, requests wait (up to 30 s) before being answered.
    gate: Arc<AtomicBool>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        Self::start_gated(fail_first, true).await
    }

    async fn start_gated(fail_first: usize, open: bool) -> Receiver {
        let accepted: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let refused: Arc<Mutex<usize>> = Arc::default();
        let arrived: Arc<AtomicUsize> = Arc::default();
        let gate = Arc::new(AtomicBool::new(open));
        let (a, r, n, g) = (
            accepted.clone(),
            refused.clone(),
            arrived.clone(),
            gate.clone(),
        );
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (a, r, n, g) = (a.clone(), r.clone(), n.clone(), g.clone());
                async move {
                    n.fetch_add(1, Ordering::SeqCst);
                    for _ in 0..300 {
                        if g.load(Ordering::SeqCst) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    {
                        let mut refused = r.lock().unwrap();
                        if *refused < fail_first {
                            *refused += 1;
                            return AxumStatus::INTERNAL_SERVER_ERROR;
                        }
                    }
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default()
                    };
                    a.lock().unwrap().push(Delivery {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        body,
                    });
                    AxumStatus::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url,
            accepted,
            refused,
            arrived,
            gate,
        }
    }

    /// The accepted deliveries once there are `n` (waits up to a minute).
    async fn wait_for(&self, n: usize) -> Vec<Delivery> {
        self.try_wait_for(n)
            .await
            .unwrap_or_else(|what| panic!("{what}"))
    }

    /// Like `wait_for`; past the minute, what arrived instead.
    async fn try_wait_for(&self, n: usize) -> Result<Vec<Delivery>, String> {
        for _ in 0..600 {
            let got = self.accepted.lock().unwrap().clone();
            if got.len() >= n {
                return Ok(got);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "{} deliveries, not {n} ({} POSTs arrived, {} refused)",
            self.accepted.lock().unwrap().len(),
            self.arrived.load(Ordering::SeqCst),
            self.refused.lock().unwrap()
        ))
    }
}

/// Verifies a delivery the way a receiver would, by the Standard Webhooks
/// algorithm (HMAC-SHA256 over "{id}.{timestamp}.{body}" with the
/// base64-decoded secret after `whsec_`).
fn verifies(secret: &str, d: &Delivery) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", d.id, d.timestamp, d.body).as_bytes());
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    d.signature.split(' ').any(|s| s == format!("v1,{want}"))
}

async fn api(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .request(method, format!("{}/api/v1{path}", app.origin))
        .bearer_auth(&app.token);
    if let Some(body) = body {
        req = req
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn allowing_private(app: &TestApp) -> TestApp {
    app.respawn(HttpSettings {
        webhook_allow_private: true,
        ..HttpSettings::default()
    })
    .await
}

both_backends! {
    async fn deliveries_are_signed_in_order_retried_and_once(app) {
        let app = allowing_private(&app).await;
        // A second delivery worker on the same database, as a second
        // process would run: each event still reaches the receiver once.
        let second = scimd::webhooks::Deliverer::new(
            app.store.clone(),
            scimd::http::cursor::CursorKey::new(
                &app.store.deployment_secret(scimd::http::cursor::SECRET_NAME).await.unwrap(),
            ),
            &app.origin,
            scimd::webhooks::WebhookSettings { allow_private: true, ..Default::default() },
        )
        .unwrap();
        tokio::spawn(second.run());
        app.create_user(json!({"userName": "before"})).await;
        let receiver = Receiver::start(2).await;
        let (status, hook) = api(&app, Method::POST, "/webhooks", Some(json!({"url": receiver.url}))).await;
        assert_eq!(status, StatusCode::CREATED, "{hook}");
        let secret = hook["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(hook["status"], "enabled");
        let hook_id = hook["id"].as_str().unwrap().to_owned();

        let mut ids = Vec::new();
        for i in 0..5 {
            let u = app.create_user(json!({"userName": format!("u{i}")})).await;
            ids.push(u["id"].as_str().unwrap().to_owned());
        }
        let resp = app
            .req(Method::PATCH, &format!("/Users/{}", ids[0]))
            .header(CONTENT_TYPE, "application/scim+json")
            .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "active", "value": false}]}).to_string())
            .send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);

        let got = receiver.wait_for(6).await;
        // Nothing more arrives: each event once.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let got_all = receiver.accepted.lock().unwrap().clone();
        assert_eq!(got_all.len(), 6, "{got_all:?}");
        assert_eq!(*receiver.refused.lock().unwrap(), 2, "the first two attempts failed");
        let bodies: Vec<Value> = got.iter().map(|d| serde_json::from_str(&d.body).unwrap()).collect();
        let kinds: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["user.created", "user.created", "user.created", "user.created", "user.created", "user.deactivated"]);
        let resources: Vec<&str> = bodies[..5].iter().map(|b| b["resourceId"].as_str().unwrap()).collect();
        assert_eq!(resources, ids.iter().map(String::as_str).collect::<Vec<_>>(), "in commit order, none from before the subscription");
        for (d, b) in got.iter().zip(&bodies) {
            assert!(verifies(&secret, d), "signature of {}", d.body);
            assert_eq!(d.id, b["id"].as_str().unwrap(), "webhook-id is the event id");
            let age = chrono::Utc::now().timestamp() - d.timestamp.parse::<i64>().unwrap();
            assert!((0..120).contains(&age), "webhook-timestamp is now");
        }
        // The events API shows the same events.
        let (_, feed) = api(&app, Method::GET, &format!("/events?after={}", bodies[0]["cursor"].as_str().unwrap()), None).await;
        let feed_ids: Vec<&str> = feed["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
        let sent_ids: Vec<&str> = bodies[1..].iter().map(|b| b["id"].as_str().unwrap()).collect();
        assert_eq!(feed_ids, sent_ids);

        let (status, state) = api(&app, Method::GET, &format!("/webhooks/{hook_id}"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(state["eventsPending"], 0);
        assert!(state["lastSuccessAt"].is_string(), "{state}");
        assert!(state["lastError"].as_str().is_some_and(|e| e.contains("500")), "{state}");
        assert!(state["failingSince"].is_null());
        assert!(state.get("secret").is_none());

        // Redelivery from a cursor sends the later events again.
        let (status, _) = api(&app, Method::POST, &format!("/webhooks/{hook_id}/redeliver"),
            Some(json!({"after": bodies[3]["cursor"]}))).await;
        assert_eq!(status, StatusCode::OK);
        let again = receiver.wait_for(8).await;
        let again_ids: Vec<&str> = again[6..].iter().map(|d| d.id.as_str()).collect();
        assert_eq!(again_ids, [bodies[4]["id"].as_str().unwrap(), bodies[5]["id"].as_str().unwrap()]);
    }

    async fn subscriptions_are_managed_by_tenant_admins(app) {
        let app = allowing_private(&app).await;
        let receiver = Receiver::start(0).await;
        let (status, hook) = api(&app, Method::POST, "/webhooks",
            Some(json!({"url": receiver.url, "types": ["user.deleted"]}))).await;
        assert_eq!(status, StatusCode::CREATED, "{hook}");
        let id = hook["id"].as_str().unwrap().to_owned();
        let (status, list) = api(&app, Method::GET, "/webhooks", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
        assert!(list["webhooks"][0].get("secret").is_none(), "the secret is shown once");
        assert_eq!(list["webhooks"][0]["types"], json!(["user.deleted"]));

        // Only the subscribed types are delivered.
        let u = app.create_user(json!({"userName": "typed"})).await;
        let resp = app.req(Method::DELETE, &format!("/Users/{}", u["id"].as_str().unwrap())).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let got = receiver.wait_for(1).await;
        let body: Value = serde_json::from_str(&got[0].body).unwrap();
        assert_eq!(body["type"], "user.deleted");

        for bad in [json!({}), json!({"url": "ftp://example.com/x"}), json!({"url": receiver.url, "types": ["user.exploded"]}), json!([1])] {
            let (status, body) = api(&app, Method::POST, "/webhooks", Some(bad.clone())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        }
        let (status, _) = api(&app, Method::POST, &format!("/webhooks/{id}/redeliver"), Some(json!({"after": "forged"}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = api(&app, Method::POST, &format!("/webhooks/{id}/enable"), None).await;
        assert_eq!(status, StatusCode::OK);

        // An events-reader key cannot manage webhooks.
        let reader = scimd::admin::create_key(&app.store, &app.project_id, "a", scimd::auth::EVENTS_READER, None, None).await.unwrap().token;
        let resp = app.client.get(format!("{}/api/v1/webhooks", app.origin)).bearer_auth(&reader).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        // Nor does another tenant see this one's.
        let other = app.token_for_new_tenant("b").await;
        let resp = app.client.get(format!("{}/api/v1/webhooks/{id}", app.origin)).bearer_auth(&other).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);

        let (status, _) = api(&app, Method::DELETE, &format!("/webhooks/{id}"), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = api(&app, Method::GET, &format!("/webhooks/{id}"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = api(&app, Method::DELETE, &format!("/webhooks/{id}"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn private_webhook_urls_are_refused_by_default(app) {
        for url in ["http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://[::1]/hook",
                    "http://169.254.169.254/latest/meta-data", "http://10.0.0.8/hook"] {
            let (status, body) = api(&app, Method::POST, "/webhooks", Some(json!({"url": url}))).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
            assert!(body["detail"].as_str().unwrap().contains("SCIMD_WEBHOOK_ALLOW_PRIVATE"), "{body}");
        }
        let (_, list) = api(&app, Method::GET, "/webhooks", None).await;
        assert_eq!(list["webhooks"], json!([]));
    }
}

both_backends! {
    async fn a_killed_process_loses_no_event_and_two_processes_deliver_each_once(app) {
        // Delivered by the scimd processes below alone.
        app.stop_webhooks();
        let token = "Pwebhooks:0123456789abcdefghijklmnopqrstuvwxyz";
        let env = [("SCIMD_WEBHOOK_ALLOW_PRIVATE", "true"), ("SCIMD_WEBHOOK_LEASE", "6s")];
        let mut first = crate::cli::Server::start_logging(&app.database_url, Some(token), None, &env).await;
        let receiver = Receiver::start_gated(0, false).await;
        let client = reqwest::Client::new();
        let hook: Value = client.post(format!("{}/api/v1/webhooks", first.url)).bearer_auth(token)
            .json(&json!({"url": receiver.url})).send().await.unwrap().json().await.unwrap();
        let secret = hook["secret"].as_str().unwrap().to_owned();
        let mut ids = Vec::new();
        for i in 0..20 {
            let u: Value = client.post(format!("{}/scim/v2/Users", first.url)).bearer_auth(token)
                .json(&json!({"userName": format!("k{i}")})).send().await.unwrap().json().await.unwrap();
            ids.push(u["id"].as_str().unwrap().to_owned());
        }
        // A delivery is under way (held by the receiver) when the process dies.
        for _ in 0..300 {
            if receiver.arrived.load(Ordering::SeqCst) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(receiver.arrived.load(Ordering::SeqCst) > 0, "no delivery started");
        first.kill().await;
        receiver.gate.store(true, Ordering::SeqCst);
        // Two processes take over once the dead one's lease runs out.
        let mut b = crate::cli::Server::start_logging(&app.database_url, Some(token), None, &env).await;
        let mut c = crate::cli::Server::start_logging(&app.database_url, Some(token), None, &env).await;
        let mut got = Vec::new();
        for _ in 0..600 {
            got = receiver.accepted.lock().unwrap().clone();
            let seen: std::collections::HashSet<String> = got.iter()
                .map(|d| serde_json::from_str::<Value>(&d.body).unwrap()["resourceId"].as_str().unwrap().to_owned())
                .collect();
            if ids.iter().all(|id| seen.contains(id)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let got_all = receiver.accepted.lock().unwrap().clone();
        assert!(got_all.len() >= got.len());
        let order: Vec<String> = got_all.iter()
            .map(|d| serde_json::from_str::<Value>(&d.body).unwrap()["resourceId"].as_str().unwrap().to_owned())
            .collect();
        for id in &ids {
            let n = order.iter().filter(|o| *o == id).count();
            // The event in flight when the process died may arrive twice;
            // every other exactly once.
            assert!(n == 1 || (n == 2 && id == &ids[0]), "{id} delivered {n} times: {order:?}");
        }
        let mut last = order.clone();
        last.dedup();
        assert_eq!(last, ids, "in order");
        assert!(got_all.iter().all(|d| verifies(&secret, d)));
        assert!(b.terminate().await.success());
        assert!(c.terminate().await.success());
    }
}

both_backends! {
    async fn two_processes_writing_make_one_feed_and_deliver_it_once(app) {
        // Delivered by the scimd processes below alone.
        app.stop_webhooks();
        const WRITERS: usize = 4;
        const WRITES: usize = 100;
        let token = "Ptwofeeds:0123456789abcdefghijklmnopqrstuvwxyz";
        let env = [("SCIMD_WEBHOOK_ALLOW_PRIVATE", "true")];
        let mut a = crate::cli::Server::start_logging(&app.database_url, Some(token), None, &env).await;
        let mut b = crate::cli::Server::start_logging(&app.database_url, Some(token), None, &env).await;
        let client = reqwest::Client::new();
        let receiver = Receiver::start(0).await;
        let resp = client.post(format!("{}/api/v1/webhooks", a.url)).bearer_auth(token)
            .json(&json!({"url": receiver.url})).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let reader = {
            let (client, origin) = (client.clone(), b.url.clone());
            tokio::spawn(async move {
                let mut seen: Vec<Value> = Vec::new();
                let mut cursor: Option<String> = None;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
                while seen.len() < WRITERS * WRITES && tokio::time::Instant::now() < deadline {
                    let after = cursor.as_deref().map(|c| format!("&after={c}")).unwrap_or_default();
                    let body: Value = client.get(format!("{origin}/api/v1/events?limit=50&wait=1{after}"))
                        .bearer_auth(token).send().await.unwrap().json().await.unwrap();
                    seen.extend(body["events"].as_array().unwrap().iter().cloned());
                    cursor = Some(body["nextCursor"].as_str().unwrap().to_owned());
                }
                seen
            })
        };
        let mut writers = Vec::new();
        for w in 0..WRITERS * 2 {
            let origin = if w % 2 == 0 { a.url.clone() } else { b.url.clone() };
            let client = client.clone();
            writers.push(tokio::spawn(async move {
                let mut user = String::new();
                for i in 0..WRITES / 2 {
                    let resp = match i % 2 {
                        0 => client.post(format!("{origin}/scim/v2/Users")).bearer_auth(token)
                            .json(&json!({"userName": format!("p{w}-{i}")})).send().await.unwrap(),
                        _ => client.patch(format!("{origin}/scim/v2/Users/{user}")).bearer_auth(token)
                            .json(&json!({"Operations": [{"op": "replace", "path": "displayName", "value": format!("d{i}")}]}))
                            .send().await.unwrap(),
                    };
                    assert!(resp.status().is_success(), "{}", resp.status());
                    if i % 2 == 0 {
                        user = resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
                    }
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        let seen = reader.await.unwrap();
        assert_eq!(seen.len(), WRITERS * WRITES, "every event once");
        let ids: std::collections::HashSet<&str> = seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), seen.len(), "no event twice");
        let mut versions: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        for e in &seen {
            let v: u64 = e["version"].as_str().unwrap().trim_start_matches("W/\"").trim_end_matches('"').parse().unwrap();
            let before = versions.insert(e["resourceId"].as_str().unwrap(), v);
            assert!(before.is_none_or(|b| b < v), "version order: {e}");
        }
        let delivered = match receiver.try_wait_for(WRITERS * WRITES).await {
            Ok(delivered) => delivered,
            // Seen once under a loaded machine: say where the subscription stood.
            Err(what) => {
                let state = client.get(format!("{}/api/v1/webhooks", a.url)).bearer_auth(token)
                    .send().await.unwrap().text().await.unwrap();
                panic!("{what}; subscriptions: {state}");
            }
        };
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let delivered_all = receiver.accepted.lock().unwrap().clone();
        assert_eq!(delivered_all.len(), delivered.len().max(WRITERS * WRITES), "each event delivered once");
        let sent: Vec<&str> = delivered_all.iter().map(|d| d.id.as_str()).collect();
        let read: Vec<&str> = seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(sent, read, "delivered in the feed's order");
        assert!(a.terminate().await.success());
        assert!(b.terminate().await.success());
    }
}

both_backends! {
    async fn an_idle_subscription_leaves_the_server_idle(app) {
        // Delivered by the scimd processes below alone.
        app.stop_webhooks();
        let token = "Pidlehook:0123456789abcdefghijklmnopqrstuvwxyz";
        let env = [("SCIMD_WEBHOOK_ALLOW_PRIVATE", "true")];
        let mut server = crate::cli::Server::start_logging(&app.database_url, Some(token), None, &env).await;
        let receiver = Receiver::start(0).await;
        let client = reqwest::Client::new();
        let resp = client.post(format!("{}/api/v1/webhooks", server.url)).bearer_auth(token)
            .json(&json!({"url": receiver.url})).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let resp = client.post(format!("{}/scim/v2/Users", server.url)).bearer_auth(token)
            .json(&json!({"userName": "idle"})).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        for _ in 0..100 {
            if !receiver.accepted.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(receiver.accepted.lock().unwrap().len(), 1);
        // Caught up, the worker looks for work a few times a second: it
        // does not spin on the subscription (which took a core).
        let before = server.cpu_time();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let used = server.cpu_time() - before;
        assert!(used < Duration::from_millis(200), "{used:?} of CPU in 2 s of idling");
        assert_eq!(receiver.accepted.lock().unwrap().len(), 1);
        assert!(server.terminate().await.success());
    }
}
