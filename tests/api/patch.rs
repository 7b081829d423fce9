//! PATCH: the table-driven corpus in tests/patch_corpus (every case against
//! the pure engine; the cases marked `"http": true` also over HTTP on both
//! backends), concurrency, preconditions and versions.

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, assert_scim_error, json_of};
use scimd::scim::compat::Quirks;
use scimd::scim::patch::{self, PATCH_OP_URN};
use scimd::scim::resource;
use scimd::scim::schema::{GROUP_RESOURCE, ResourceType, USER_RESOURCE};

/// The id the engine is told the resource has (Okta repeats it).
const CASE_ID: &str = "2819c223-7f76-453a-919d-413861904646";

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    #[serde(default)]
    resource: Option<String>,
    doc: Value,
    #[serde(default)]
    ops: Option<Value>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    expect: Option<Value>,
    #[serde(default)]
    error: Option<ExpectedError>,
    #[serde(default)]
    quirks: Option<Vec<String>>,
    #[serde(default)]
    http: bool,
}

#[derive(Debug, Deserialize)]
struct ExpectedError {
    status: u16,
    #[serde(rename = "scimType")]
    scim_type: Option<String>,
}

impl Case {
    fn resource_type(&self) -> &'static ResourceType {
        match self.resource.as_deref() {
            None | Some("User") => &USER_RESOURCE,
            Some("Group") => &GROUP_RESOURCE,
            Some(other) => panic!("{}: unknown resource {other}", self.name),
        }
    }

    fn body(&self) -> Value {
        match (&self.body, &self.ops) {
            (Some(b), _) => b.clone(),
            (None, Some(ops)) => json!({"schemas": [PATCH_OP_URN], "Operations": ops}),
            (None, None) => panic!("{}: neither body nor ops", self.name),
        }
    }

    /// A document as stored: validated and canonical (schemas computed).
    fn stored(&self, doc: &Value) -> Map<String, Value> {
        resource::normalize(self.resource_type(), doc.clone())
            .unwrap_or_else(|e| panic!("{}: invalid document {doc}: {e}", self.name))
    }
}

fn load_corpus() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/patch_corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in files
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "json"))
    {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut batch: Vec<Case> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        cases.append(&mut batch);
    }
    cases
}

#[test]
fn corpus_against_the_engine() {
    let cases = load_corpus();
    assert!(cases.len() >= 100, "the corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let rt = case.resource_type();
        let doc = case.stored(&case.doc);
        let mut quirks = Quirks::default();
        let result = patch::parse_request(case.body(), &mut quirks)
            .and_then(|ops| patch::apply(rt, CASE_ID, &doc, &ops, &mut quirks));
        let outcome = match (&result, &case.expect, &case.error) {
            (Ok(got), Some(want), None) => {
                let want = case.stored(want);
                (got == &want).then_some(()).ok_or_else(|| {
                    format!(
                        "got {}\n   want {}",
                        Value::Object(got.clone()),
                        Value::Object(want)
                    )
                })
            }
            (Err(e), None, Some(want)) => {
                let ok = e.status == want.status
                    && e.scim_type.map(|t| t.as_str().to_owned()) == want.scim_type;
                ok.then_some(())
                    .ok_or_else(|| format!("got error {e}, want {want:?}"))
            }
            (Ok(got), None, Some(want)) => Err(format!(
                "succeeded with {}, want {want:?}",
                Value::Object(got.clone())
            )),
            (Err(e), Some(_), None) => Err(format!("failed: {e}")),
            _ => Err("a case needs exactly one of expect and error".into()),
        };
        let outcome = outcome.and_then(|()| match &case.quirks {
            Some(want) => {
                let got: BTreeSet<&str> = quirks.names().iter().copied().collect();
                let want: BTreeSet<&str> = want.iter().map(String::as_str).collect();
                (got == want)
                    .then_some(())
                    .ok_or_else(|| format!("quirks {got:?}, want {want:?}"))
            }
            None => Ok(()),
        });
        if let Err(why) = outcome {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    let o = v.as_object_mut().unwrap();
    o.remove("id");
    o.remove("meta");
    v
}

both_backends! {
    async fn corpus_over_http(app) {
        let cases: Vec<Case> = load_corpus().into_iter().filter(|c| c.http).collect();
        assert!(cases.len() >= 30, "{} HTTP cases", cases.len());
        for case in cases {
            assert!(case.resource.is_none(), "{}: only Users are served", case.name);
            let created = app.create_user(case.doc.clone()).await;
            let id = created["id"].as_str().unwrap();
            let path = format!("/Users/{id}");
            let resp = app.req(Method::PATCH, &path).header("content-type", "application/scim+json").body(case.body().to_string()).send().await.unwrap();
            let etag = resp.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
            let (status, body) = json_of(resp).await;
            let (_, after) = app.get_user(id).await;
            match (&case.expect, &case.error) {
                (Some(want), None) => {
                    assert_eq!(status, StatusCode::OK, "{}: {body}", case.name);
                    assert_eq!(strip(&body), Value::Object(case.stored(want)), "{}", case.name);
                    assert_eq!(after, body, "{}: GET shows what PATCH returned", case.name);
                    assert_eq!(etag.as_deref(), body["meta"]["version"].as_str(), "{}", case.name);
                    let changed = strip(&body) != strip(&created);
                    let bumped = body["meta"]["version"] != created["meta"]["version"];
                    assert_eq!(changed, bumped, "{}: the version moves exactly when the document changes", case.name);
                }
                (None, Some(want)) => {
                    assert_scim_error(status, &body, want.status, want.scim_type.as_deref());
                    assert_eq!(after, created, "{}: a failed PATCH changes nothing", case.name);
                }
                _ => unreachable!(),
            }
            let resp = app.req(Method::DELETE, &path).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        }
    }

    async fn concurrent_patches_never_lose_a_change(app) {
        let user = app.create_user(json!({"userName": "busy"})).await;
        let path = format!("/Users/{}", user["id"].as_str().unwrap());
        let mut tasks = Vec::new();
        for i in 0..50 {
            let req = app.req(Method::PATCH, &path).header("content-type", "application/scim+json").body(
                json!({"schemas": [PATCH_OP_URN], "Operations": [{"op": "add", "path": "emails", "value": [{"value": format!("u{i}@example.com")}]}]}).to_string(),
            );
            tasks.push(tokio::spawn(async move { req.send().await.unwrap().status() }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), StatusCode::OK);
        }
        let (_, after) = app.get_user(user["id"].as_str().unwrap()).await;
        let emails: BTreeSet<&str> = after["emails"].as_array().unwrap().iter().map(|e| e["value"].as_str().unwrap()).collect();
        assert_eq!(emails.len(), 50, "{after}");
        assert_eq!(after["meta"]["version"], "W/\"51\"");
    }

    async fn if_match_guards_patch(app) {
        let user = app.create_user(json!({"userName": "guarded"})).await;
        let path = format!("/Users/{}", user["id"].as_str().unwrap());
        let body = |title: &str| json!({"schemas": [PATCH_OP_URN], "Operations": [{"op": "replace", "path": "title", "value": title}]}).to_string();
        let send = |tag: Option<&'static str>, b: String| {
            let mut r = app.req(Method::PATCH, &path).header("content-type", "application/scim+json").body(b);
            if let Some(tag) = tag {
                r = r.header("if-match", tag);
            }
            r.send()
        };
        let (status, err) = json_of(send(Some("W/\"9\""), body("a")).await.unwrap()).await;
        assert_scim_error(status, &err, 412, None);
        let (status, ok) = json_of(send(Some("W/\"1\""), body("b")).await.unwrap()).await;
        assert_eq!((status, ok["meta"]["version"].as_str()), (StatusCode::OK, Some("W/\"2\"")));
        let (status, _) = json_of(send(Some("*"), body("c")).await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        let (status, ok) = json_of(send(None, body("c")).await.unwrap()).await;
        assert_eq!((status, ok["meta"]["version"].as_str()), (StatusCode::OK, Some("W/\"3\"")), "no-op keeps the version");
        assert_eq!(ok["title"], "c");
    }

    async fn patch_of_missing_or_foreign_user_is_404(app) {
        let body = json!({"schemas": [PATCH_OP_URN], "Operations": [{"op": "replace", "path": "title", "value": "x"}]});
        let (status, err) = json_of(app.send_json(Method::PATCH, &format!("/Users/{}", uuid::Uuid::now_v7()), &body).await).await;
        assert_scim_error(status, &err, 404, None);
        let user = app.create_user(json!({"userName": "mine", "title": "keep"})).await;
        let other = app.token_for_new_tenant("b").await;
        let resp = app.req_as(&other, Method::PATCH, &format!("/Users/{}", user["id"].as_str().unwrap())).json(&body).send().await.unwrap();
        let (status, err) = json_of(resp).await;
        assert_scim_error(status, &err, 404, None);
        let (_, after) = app.get_user(user["id"].as_str().unwrap()).await;
        assert_eq!(after, user);
    }

    async fn patch_rename_onto_taken_username_is_409(app) {
        app.create_user(json!({"userName": "taken"})).await;
        let user = app.create_user(json!({"userName": "free"})).await;
        let body = json!({"schemas": [PATCH_OP_URN], "Operations": [{"op": "replace", "path": "userName", "value": "TAKEN"}]});
        let (status, err) = json_of(app.send_json(Method::PATCH, &format!("/Users/{}", user["id"].as_str().unwrap()), &body).await).await;
        assert_scim_error(status, &err, 409, Some("uniqueness"));
        let (_, after) = app.get_user(user["id"].as_str().unwrap()).await;
        assert_eq!(after, user);
    }
}

#[tokio::test]
async fn manager_set_by_bare_id_over_http() {
    // Entra's request, with a real manager id.
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let manager = app.create_user(json!({"userName": "boss"})).await;
    let user = app.create_user(json!({"userName": "worker"})).await;
    let mid = manager["id"].as_str().unwrap();
    let body = format!(
        r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"{mid}"}}]}}"#
    );
    let resp = app
        .req(
            Method::PATCH,
            &format!("/Users/{}", user["id"].as_str().unwrap()),
        )
        .header("content-type", "application/scim+json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, got) = json_of(resp).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(
        got["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]["value"],
        mid
    );
    assert_eq!(
        got["schemas"][1],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    );
}

/// PATCHes a user and returns the status and the user as GET shows it after.
async fn patch_then_get(app: &TestApp, id: &str, ops: Value) -> (StatusCode, Value, Value) {
    let body = json!({"schemas": [PATCH_OP_URN], "Operations": ops});
    let (status, resp) = json_of(
        app.send_json(Method::PATCH, &format!("/Users/{id}"), &body)
            .await,
    )
    .await;
    let (_, after) = app.get_user(id).await;
    (status, resp, after)
}

both_backends! {
    // One rule for every multi-valued attribute: a `remove` that carries
    // values removes the values that match (by `value` where the attribute
    // has one, else by equality); values that match nothing change nothing.
    async fn remove_with_values_removes_only_what_matches(app) {
        let user = app.create_user(json!({
            "userName": "multi",
            "emails": [{"value": "a@example.com", "type": "work"}, {"value": "b@example.com", "type": "home"}],
            "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}, {"value": "+1 555 0101", "type": "mobile"}],
            "roles": [{"value": "admin"}, {"value": "reader"}],
            "addresses": [{"locality": "Oslo", "type": "work"}, {"locality": "Bergen", "type": "home"}],
        })).await;
        let id = user["id"].as_str().unwrap();
        for (attr, value) in [
            ("emails", json!([])),
            ("emails", json!([{"value": "nobody@example.com"}])),
            ("emails", json!("nobody@example.com")),
            ("phoneNumbers", json!([])),
            ("phoneNumbers", json!([{"value": "+1 555 0199"}])),
            ("roles", json!([])),
            ("roles", json!("nobody")),
            ("addresses", json!([])),
            ("addresses", json!([{"locality": "Trondheim", "type": "work"}])),
        ] {
            let (status, resp, after) = patch_then_get(&app, id, json!([{"op": "remove", "path": attr, "value": value}])).await;
            assert_eq!(status, StatusCode::OK, "remove {attr} {value}: {resp}");
            assert_eq!(after, user, "remove {attr} with {value} matching nothing changes nothing");
        }
        let (status, resp, after) = patch_then_get(&app, id, json!([
            {"op": "remove", "path": "emails", "value": [{"value": "A@Example.com"}]},
            {"op": "remove", "path": "phoneNumbers", "value": "+1 555 0101"},
            {"op": "remove", "path": "roles", "value": [{"value": "reader"}, {"value": "nobody"}]},
            {"op": "remove", "path": "addresses", "value": [{"locality": "Bergen", "type": "home"}]},
        ])).await;
        assert_eq!(status, StatusCode::OK, "{resp}");
        assert_eq!(after["emails"], json!([{"value": "b@example.com", "type": "home"}]), "{after}");
        assert_eq!(after["phoneNumbers"], json!([{"value": "+1 555 0100", "type": "work"}]), "{after}");
        assert_eq!(after["roles"], json!([{"value": "admin"}]), "{after}");
        assert_eq!(after["addresses"], json!([{"locality": "Oslo", "type": "work"}]), "{after}");
        // Without a value, remove keeps RFC 7644 §3.5.2.2's meaning: all of it.
        let (status, resp, after) = patch_then_get(&app, id, json!([{"op": "remove", "path": "emails"}])).await;
        assert_eq!(status, StatusCode::OK, "{resp}");
        assert!(after.get("emails").is_none(), "{after}");
        assert_eq!(after["roles"], json!([{"value": "admin"}]), "{after}");
    }
}
