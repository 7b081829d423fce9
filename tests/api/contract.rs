//! The OpenAPI contract (`GET /openapi.json`) and the routes agree: every
//! mounted route is in it, everything in it is mounted, and each path
//! answers exactly the methods the contract gives it (the others are 405).

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{Backend, TestApp};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_names_every_route_and_method_and_no_other() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let resp = app
        .client
        .get(format!("{}/openapi.json", app.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let documented: BTreeSet<String> = paths.keys().cloned().collect();
    let mounted: BTreeSet<String> = scimd::http::mounted_paths().into_iter().collect();
    let missing: Vec<_> = mounted.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the contract: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&mounted).collect();
    assert!(
        extra.is_empty(),
        "the contract names routes that are not mounted: {extra:?}"
    );

    for (path, item) in paths {
        let concrete = path
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{urn}", "urn:ietf:params:scim:schemas:core:2.0:User")
            .replace("{name}", "User");
        for method in METHODS {
            let resp = app
                .client
                .request(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    format!("{}{concrete}", app.origin),
                )
                .bearer_auth(&app.token)
                .header("Content-Type", "application/scim+json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let allowed = item.get(method).is_some();
            let status = resp.status();
            if allowed {
                assert_ne!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is in the contract"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is not in the contract"
                );
            }
        }
    }
}
