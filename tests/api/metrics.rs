//! `/metrics` on its own listener (`SCIMD_METRICS_BIND`): scraped and
//! parsed after requests of several kinds, on both backends.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::cli::{Server, free_port};

/// Samples by metric name and sorted labels.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

/// `name{label="value",…} number` lines, by name and sorted labels.
fn parse(text: &str) -> Samples {
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut labels: Vec<(String, String)> = labels
            .split("\",")
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once('=').expect("label=value");
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        labels.sort();
        out.insert((name.to_owned(), labels), value.parse().expect("a number"));
    }
    out
}

fn sample(m: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    m.get(&(name.to_owned(), labels)).copied()
}

both_backends! {
    async fn metrics_count_requests_by_route_status_rule_and_client(app) {
        // Its subscription is leased by the scimd process below alone.
        app.stop_webhooks();
        let token = "Pmetrics:0123456789abcdefghijklmnopqrstuvwxyz";
        let env = [("SCIMD_METRICS_BIND", "127.0.0.1:0"), ("SCIMD_WEBHOOK_ALLOW_PRIVATE", "true")];
        let mut server = Server::start_logging(&app.database_url, Some(token), None, &env).await;
        let metrics_url = server.metrics_url.clone().expect("the metrics listener's address");
        let client = reqwest::Client::new();
        let users = format!("{}/scim/v2/Users", server.url);
        // A subscription nobody answers: what it has not received is pending.
        let dead = format!("http://127.0.0.1:{}/hook", free_port());
        let hook = client.post(format!("{}/api/v1/webhooks", server.url)).bearer_auth(token)
            .json(&json!({"url": dead})).send().await.unwrap();
        assert_eq!(hook.status(), StatusCode::CREATED);

        let created = client.post(&users).bearer_auth(token)
            .json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "metrics.user"}))
            .send().await.unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let id = created.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        for _ in 0..2 {
            let read = client.get(format!("{users}/{id}")).bearer_auth(token).send().await.unwrap();
            assert_eq!(read.status(), StatusCode::OK);
        }
        let missing = client.get(format!("{users}/{}", uuid::Uuid::now_v7())).bearer_auth(token).send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        // What Entra ID sends: a capitalised op.
        let patched = client.patch(format!("{users}/{id}")).bearer_auth(token)
            .header("User-Agent", "Microsoft.Identity.Provisioning")
            .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                          "Operations": [{"op": "Replace", "path": "displayName", "value": "M"}]}))
            .send().await.unwrap();
        assert_eq!(patched.status(), StatusCode::OK);
        let unauthenticated = client.get(&users).send().await.unwrap();
        assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
        let nowhere = client.get(format!("{}/nowhere", server.url)).send().await.unwrap();
        assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);

        // Not on the API's listener.
        let on_api = client.get(format!("{}/metrics", server.url)).send().await.unwrap();
        assert_eq!(on_api.status(), StatusCode::NOT_FOUND);

        let scraped = client.get(format!("{metrics_url}/metrics")).send().await.unwrap();
        assert_eq!(scraped.status(), StatusCode::OK);
        assert!(scraped.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = scraped.text().await.unwrap();
        assert!(!text.contains(&id), "no ids as label values");
        let m = parse(&text);
        let requests = "scimd_http_requests_total";
        assert_eq!(sample(&m, requests, &[("route", "/scim/v2/Users"), ("method", "POST"), ("status", "201")]), Some(1.0), "{text}");
        assert_eq!(sample(&m, requests, &[("route", "/scim/v2/Users/{id}"), ("method", "GET"), ("status", "200")]), Some(2.0));
        assert_eq!(sample(&m, requests, &[("route", "/scim/v2/Users/{id}"), ("method", "GET"), ("status", "404")]), Some(1.0));
        assert_eq!(sample(&m, requests, &[("route", "/scim/v2/Users/{id}"), ("method", "PATCH"), ("status", "200")]), Some(1.0));
        assert_eq!(sample(&m, requests, &[("route", "/scim/v2/Users"), ("method", "GET"), ("status", "401")]), Some(1.0));
        // /nowhere and /metrics on the API listener.
        assert_eq!(sample(&m, requests, &[("route", "unmatched"), ("method", "GET"), ("status", "404")]), Some(2.0));
        assert_eq!(sample(&m, "scimd_http_request_duration_seconds_count", &[("route", "/scim/v2/Users/{id}"), ("method", "GET")]), Some(3.0));
        assert_eq!(sample(&m, "scimd_compat_rules_fired_total", &[("rule", "entra.capitalised_op"), ("client", "entra")]), Some(1.0));
        let hits = sample(&m, "scimd_auth_cache_lookups_total", &[("result", "hit")]).unwrap_or(0.0);
        let misses = sample(&m, "scimd_auth_cache_lookups_total", &[("result", "miss")]).unwrap_or(0.0);
        assert_eq!(hits + misses, 6.0, "one verification per authenticated request: {text}");
        assert!(misses >= 1.0);
        assert_eq!(sample(&m, "scimd_db_connections_max", &[]), Some(10.0));
        assert!(sample(&m, "scimd_db_acquire_wait_seconds_count", &[]).is_some());
        // user.created and user.updated, never delivered.
        assert_eq!(sample(&m, "scimd_webhook_events_pending", &[]), Some(2.0));
        assert_eq!(sample(&m, "scimd_webhook_events_pending_max", &[]), Some(2.0));
        assert_eq!(sample(&m, "scimd_rate_limited_requests_total", &[]), Some(0.0));
        assert!(server.terminate().await.success());
    }
}
