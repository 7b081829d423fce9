//! PATCH: the table-driven corpus in tests/patch_corpus (every case against
//! the pure engine, and every case over HTTP on both backends, Users and
//! Groups), concurrency, preconditions and versions.

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

/// The id the engine is told a User case's resource has (Okta repeats it).
const USER_CASE_ID: &str = "2819c223-7f76-453a-919d-413861904646";
/// The id of a Group case's group (RFC 7644's example group id); the
/// corpus's other ids in Group cases are users that are members.
const GROUP_CASE_ID: &str = "e9e30dba-f08f-4109-8486-d5c6a331660a";

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

    fn is_group(&self) -> bool {
        std::ptr::eq(self.resource_type(), &GROUP_RESOURCE)
    }

    /// The id the case's resource has.
    fn case_id(&self) -> &'static str {
        if self.is_group() {
            GROUP_CASE_ID
        } else {
            USER_CASE_ID
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
            .and_then(|ops| patch::apply(rt, case.case_id(), &doc, &ops, &mut quirks));
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

/// A resource as GET shows it, without what the server assigns (`id`,
/// `meta`) and with members as the client gave them: sorted by id, each its
/// `value` and `display` (the server writes `$ref` and `type` itself).
fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    let o = v.as_object_mut().unwrap();
    o.remove("id");
    o.remove("meta");
    if let Some(Value::Array(members)) = o.get_mut("members") {
        for m in members.iter_mut() {
            let m = m.as_object_mut().unwrap();
            m.retain(|k, _| k == "value" || k == "display");
        }
        members.sort_by(|a, b| a["value"].as_str().cmp(&b["value"].as_str()));
    }
    v
}

/// Every UUID written in `text`, in order of first appearance.
fn uuids_in(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for (i, _) in text.char_indices() {
        if let Some(cand) = text.get(i..i + 36)
            && uuid::Uuid::try_parse(cand).is_ok()
            && cand.as_bytes()[8] == b'-'
            && !found.iter().any(|f| f == cand)
        {
            found.push(cand.to_owned());
        }
    }
    found
}

/// The case with its ids replaced: `ids` maps a corpus id to a real one.
fn with_ids(case: &Case, ids: &[(String, String)]) -> (Value, Value, Option<Value>) {
    let swap = |v: &Value| {
        let mut text = v.to_string();
        for (from, to) in ids {
            text = text.replace(from.as_str(), to);
        }
        serde_json::from_str::<Value>(&text).unwrap()
    };
    (
        swap(&case.doc),
        swap(&case.body()),
        case.expect.as_ref().map(swap),
    )
}

/// Runs one corpus case over HTTP: creates the resource (and, for a Group,
/// the users its ids name), PATCHes it, and compares what GET shows.
async fn run_case_over_http(app: &TestApp, case: &Case) -> Result<(), String> {
    let rt = case.resource_type();
    let endpoint = format!("/{}", rt.endpoint.trim_start_matches('/'));
    let all = serde_json::to_string(&(&case.doc, case.body(), &case.expect)).unwrap();
    let mut ids: Vec<(String, String)> = Vec::new();
    if case.is_group() {
        for (n, corpus_id) in uuids_in(&all).into_iter().enumerate() {
            if corpus_id != GROUP_CASE_ID {
                let user = app
                    .create_user(
                        json!({"userName": format!("member-{n}-{}", uuid::Uuid::new_v4())}),
                    )
                    .await;
                ids.push((corpus_id, user["id"].as_str().unwrap().to_owned()));
            }
        }
    }
    let (doc, _, _) = with_ids(case, &ids);
    let (status, created) = json_of(app.send_json(Method::POST, &endpoint, &doc).await).await;
    if status != StatusCode::CREATED {
        return Err(format!("create: {status} {created}"));
    }
    let id = created["id"].as_str().unwrap().to_owned();
    ids.push((case.case_id().to_owned(), id.clone()));
    let (_, body, expect) = with_ids(case, &ids);
    let path = format!("{endpoint}/{id}");
    let get = async || {
        json_of(app.req(Method::GET, &path).send().await.unwrap())
            .await
            .1
    };
    let before = get().await;
    let resp = app
        .req(Method::PATCH, &path)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let etag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, resp) = json_of(resp).await;
    let after = get().await;
    let check = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{what}\n   before {before}\n   response {status} {resp}\n   after {after}"
            ))
        }
    };
    match (&expect, &case.error) {
        (Some(want), None) => {
            check(status.is_success(), "the PATCH failed")?;
            let want = comparable(&Value::Object(case.stored(want)));
            check(
                comparable(&after) == want,
                &format!("GET differs from {want}"),
            )?;
            if status == StatusCode::OK {
                check(
                    resp == after,
                    "GET shows something else than PATCH returned",
                )?;
            }
            check(
                etag.as_deref() == after["meta"]["version"].as_str(),
                "the ETag is not the new version",
            )?;
            let changed = comparable(&after) != comparable(&before);
            let bumped = after["meta"]["version"] != before["meta"]["version"];
            check(
                changed == bumped,
                "the version moves exactly when the resource changes",
            )?;
        }
        (None, Some(want)) => {
            let got = (
                status.as_u16(),
                resp.get("scimType").and_then(Value::as_str),
            );
            check(
                got == (want.status, want.scim_type.as_deref()),
                &format!("want error {want:?}"),
            )?;
            check(after == before, "a failed PATCH changes nothing")?;
        }
        _ => unreachable!(),
    }
    let resp = app.req(Method::DELETE, &path).send().await.unwrap();
    check(resp.status() == StatusCode::NO_CONTENT, "DELETE")
}

both_backends! {
    async fn corpus_over_http(app) {
        let cases = load_corpus();
        let mut failures = Vec::new();
        for case in &cases {
            if let Err(why) = run_case_over_http(&app, case).await {
                failures.push(format!("{}: {why}", case.name));
            }
        }
        assert!(failures.is_empty(), "{} of {} cases failed over HTTP:\n{}", failures.len(), cases.len(), failures.join("\n"));
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

    async fn filters_and_sorts_follow_every_patch_of_the_indexed_attributes(app) {
        // userName, externalId and displayName are columns with indexes;
        // a PATCH that keeps them may leave the columns be (SQLite), and one
        // that changes them must not.
        let user = app.create_user(json!({"userName": "Kept.Name", "externalId": "ext-1", "displayName": "Kept Display"})).await;
        let id = user["id"].as_str().unwrap().to_owned();
        app.create_user(json!({"userName": "other", "displayName": "M"})).await;
        let patch = |ops: Value| {
            let app = &app;
            let path = format!("/Users/{id}");
            async move {
                let (status, body) = json_of(app.send_json(Method::PATCH, &path, &json!({"schemas": [PATCH_OP_URN], "Operations": ops})).await).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                body
            }
        };
        let found = |filter: &'static str| {
            let app = &app;
            async move {
                let (status, body) = json_of(app.req(Method::GET, "/Users").query(&[("filter", filter)]).send().await.unwrap()).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                body["Resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
            }
        };
        let keys = [r#"userName eq "kept.name""#, r#"externalId eq "ext-1""#, r#"displayName eq "Kept Display""#];
        // Twice over the keys-kept path: emails and name, then active.
        patch(json!([{"op": "add", "path": "emails", "value": [{"value": "k@example.com", "type": "work"}]},
                     {"op": "replace", "path": "name.familyName", "value": "F"}])).await;
        let patched = patch(json!([{"op": "replace", "path": "active", "value": false}])).await;
        assert_eq!(patched["meta"]["version"], "W/\"3\"");
        for filter in keys {
            assert_eq!(found(filter).await, [id.as_str()], "{filter}");
        }
        assert_eq!(found(r#"active eq false"#).await, [id.as_str()]);
        // Each key changed on its own: the old value finds nothing, the new one the user.
        patch(json!([{"op": "replace", "path": "displayName", "value": "A New Display"}])).await;
        assert!(found(keys[2]).await.is_empty());
        assert_eq!(found(r#"displayName eq "A New Display""#).await, [id.as_str()]);
        let (_, sorted) = json_of(app.req(Method::GET, "/Users").query(&[("sortBy", "displayName")]).send().await.unwrap()).await;
        assert_eq!(sorted["Resources"][0]["id"], id.as_str(), "sorted by the new displayName: {sorted}");
        patch(json!([{"op": "replace", "path": "externalId", "value": "ext-2"}])).await;
        assert!(found(keys[1]).await.is_empty());
        assert_eq!(found(r#"externalId eq "ext-2""#).await, [id.as_str()]);
        patch(json!([{"op": "replace", "path": "userName", "value": "Renamed"}])).await;
        assert!(found(keys[0]).await.is_empty());
        assert_eq!(found(r#"userName eq "RENAMED""#).await, [id.as_str()]);
        // The old userName is free again, the new one taken.
        let (status, _) = json_of(app.send_json(Method::POST, "/Users", &json!({"userName": "kept.name"})).await).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, err) = json_of(app.send_json(Method::POST, "/Users", &json!({"userName": "renamed"})).await).await;
        assert_scim_error(status, &err, 409, Some("uniqueness"));
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
