//! The provisioning log over HTTP (`GET /api/v1/requests`), on both
//! backends: what it keeps by default (failed requests, bodies with secrets
//! masked), its filters and paging, and `SCIMD_REQUEST_LOG=all`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::TestApp;

async fn requests(app: &TestApp, query: &str) -> (StatusCode, Value) {
    let resp = app
        .client
        .get(format!("{}/api/v1/requests{query}", app.origin))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The log, once it holds `n` records (the writer batches for up to
/// 200 ms); waits at most 5 s.
async fn log_of(app: &TestApp, n: usize) -> Vec<Value> {
    for _ in 0..50 {
        let (status, body) = requests(app, "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let list = body["requests"].as_array().unwrap().clone();
        if list.len() >= n {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the log did not reach {n} records in 5 s");
}

both_backends! {
    async fn failed_requests_are_logged_with_secrets_masked(app) {
        let user = app.create_user(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ok.user"})).await;
        let id = user["id"].as_str().unwrap().to_owned();
        // 400: no userName; its password must not be kept.
        let resp = app.send_json(Method::POST, "/Users", &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "password": "hunter2", "displayName": "No Name"})).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        // 404 on a user that is not there.
        let missing = uuid::Uuid::now_v7().to_string();
        assert_eq!(app.get_user(&missing).await.0, StatusCode::NOT_FOUND);
        // What Entra sends, failing: a capitalised op on an attribute that is not there.
        let resp = app.req(Method::PATCH, &format!("/Users/{id}"))
            .header("User-Agent", "Microsoft.Identity.Provisioning")
            .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                          "Operations": [{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "x@example.com"},
                                         {"op": "Replace", "path": "password", "value": "s3cret"},
                                         {"op": "Remove", "path": "nosuchattribute"}]}))
            .send().await.unwrap();
        assert!(resp.status().is_client_error(), "{:?}", resp.status());
        let patch_status = resp.status().as_u16();

        let log = log_of(&app, 3).await;
        assert_eq!(log.len(), 3, "the 201 is not kept by default: {log:?}");
        let text = serde_json::to_string(&log).unwrap();
        assert!(!text.contains("hunter2") && !text.contains("s3cret"), "secrets masked: {text}");
        // Newest first.
        let (patch, get, post) = (&log[0], &log[1], &log[2]);
        assert_eq!(patch["method"], "PATCH");
        assert_eq!(patch["path"], "/scim/v2/Users/{id}");
        assert_eq!(patch["resourceId"], id.as_str());
        assert_eq!(patch["status"], patch_status);
        assert_eq!(patch["client"], "entra");
        assert_eq!(patch["userAgent"], "Microsoft.Identity.Provisioning");
        assert_eq!(patch["quirks"], json!(["entra.capitalised_op"]));
        assert_eq!(patch["body"]["Operations"][1]["value"], "********");
        assert!(patch["scimType"].is_string(), "{patch}");
        assert_eq!(get["status"], 404);
        assert_eq!(get["resourceId"], missing.as_str());
        assert!(get.get("body").is_none(), "a GET has no body");
        assert_eq!(post["status"], 400);
        assert_eq!(post["path"], "/scim/v2/Users");
        assert_eq!(post["scimType"], "invalidValue");
        assert_eq!(post["body"]["password"], "********");
        assert_eq!(post["body"]["displayName"], "No Name");
        for r in &log {
            assert!(r["keyId"].as_str().is_some_and(|k| !k.is_empty()));
            assert!(r["requestId"].as_str().is_some_and(|k| !k.is_empty()));
            assert!(r["durationMs"].as_f64().is_some_and(|d| d >= 0.0));
            assert!(r["time"].as_str().is_some_and(|t| t.ends_with('Z')));
        }

        // The client report counts every SCIM request, kept or not: the
        // 201 too (reqwest sends no User-Agent: family "none").
        let mut clients = Value::Null;
        for _ in 0..50 {
            let resp = app.client.get(format!("{}/api/v1/clients", app.origin)).bearer_auth(&app.token).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            clients = resp.json().await.unwrap();
            if clients["clients"].as_array().is_some_and(|c| c.len() == 2) && clients["clients"][1]["requests"] == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(clients["clients"][0], json!({"client": "entra", "requests": 1, "errorRate": 1.0,
                                                  "quirks": {"entra.capitalised_op": 1}}), "{clients}");
        assert_eq!(clients["clients"][1], json!({"client": "none", "requests": 3, "errorRate": 0.6667, "quirks": {}}), "{clients}");

        // Filters.
        let count = |body: &Value| body["requests"].as_array().map_or(0, Vec::len);
        assert_eq!(count(&requests(&app, "?status=404").await.1), 1);
        assert_eq!(count(&requests(&app, "?status=4xx").await.1), 3);
        assert_eq!(count(&requests(&app, "?status=2xx").await.1), 0);
        assert_eq!(count(&requests(&app, "?since=2999-01-01T00:00:00Z").await.1), 0);
        assert_eq!(count(&requests(&app, "?since=2000-01-01T00:00:00Z").await.1), 3);
        // Paging: newest first, a cursor to the next page, none after the last.
        let (_, page) = requests(&app, "?limit=2").await;
        assert_eq!(count(&page), 2);
        let cursor = page["nextCursor"].as_str().expect("more to come").to_owned();
        let (_, rest) = requests(&app, &format!("?limit=2&after={cursor}")).await;
        assert_eq!(rest["requests"][0]["status"], 400);
        assert_eq!(count(&rest), 1);
        assert!(rest.get("nextCursor").is_none());
        // Bad parameters are 400, as problem details.
        for bad in ["?status=abc", "?since=yesterday", "?limit=0", "?after=forged"] {
            let (status, body) = requests(&app, bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        }
        // Another tenant sees none of it, and cannot use this tenant's cursor.
        let other = app.token_for_new_tenant("b").await;
        let resp = app.client.get(format!("{}/api/v1/requests?after={cursor}", app.origin)).bearer_auth(&other).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let resp = app.client.get(format!("{}/api/v1/requests", app.origin)).bearer_auth(&other).send().await.unwrap();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(count(&body), 0);
        // Retention removes what is older than its cutoff.
        let removed = app.store.purge_requests(chrono::Utc::now() + chrono::TimeDelta::minutes(1)).await.unwrap();
        assert_eq!(removed, 3);
        assert_eq!(count(&requests(&app, "").await.1), 0);
    }

    async fn with_all_every_scim_request_is_logged_without_its_body(app) {
        let settings = scimd::HttpSettings { request_log: scimd::requestlog::Mode::All, ..Default::default() };
        let app = app.respawn(settings).await;
        let user = app.create_user(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "all.user", "password": "hunter2"})).await;
        let id = user["id"].as_str().unwrap();
        assert_eq!(app.get_user(id).await.0, StatusCode::OK);
        let log = log_of(&app, 2).await;
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!(log[0]["status"], 200);
        assert_eq!(log[1]["status"], 201);
        assert!(log[1].get("body").is_none(), "bodies of successful requests are not kept");
        // /api/v1 itself is not a SCIM request: reading the log logs nothing.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(log_of(&app, 2).await.len(), 2);
    }
}
