//! Change events (`/api/v1/events`): what each write records, the order and
//! exactly-once guarantee under concurrency, cursors, retention and roles.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::TestApp;
use scimd::HttpSettings;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// `GET /api/v1/events?{query}` with `token`: status and JSON body.
async fn events_as(app: &TestApp, token: &str, query: &str) -> (StatusCode, Value) {
    let resp = app
        .client
        .get(format!("{}/api/v1/events?{query}", app.origin))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = resp.json().await.unwrap();
    let want = match status.is_success() {
        true => "application/json",
        false => "application/problem+json",
    };
    assert_eq!(ct, want, "{status} {body}");
    if !status.is_success() {
        assert_eq!(body["status"], status.as_u16(), "{body}");
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    (status, body)
}

async fn events(app: &TestApp, query: &str) -> (StatusCode, Value) {
    events_as(app, &app.token, query).await
}

/// The cursor at the head of the feed now.
async fn head(app: &TestApp) -> String {
    let (status, body) = events(app, "limit=0").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"], json!([]));
    body["nextCursor"].as_str().unwrap().to_owned()
}

/// The `n` events after `cursor`, and the cursor after the last.
async fn after(app: &TestApp, cursor: &str, n: usize) -> (Vec<Value>, String) {
    read_from(app, Some(cursor), n).await
}

/// The `n` events after `cursor` (from the start without one), following
/// `nextCursor`. On PostgreSQL an event becomes readable once every
/// transaction of its database that started writing before it has ended:
/// long polls wait for that.
async fn read_from(app: &TestApp, cursor: Option<&str>, n: usize) -> (Vec<Value>, String) {
    let mut out = Vec::new();
    let mut cursor = cursor.map(str::to_owned);
    for _ in 0..200 {
        let after = cursor
            .as_deref()
            .map(|c| format!("after={c}&"))
            .unwrap_or_default();
        let (status, body) = events(app, &format!("{after}limit=1000&wait=1")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        out.extend(body["events"].as_array().unwrap().iter().cloned());
        let next = body["nextCursor"].as_str().unwrap().to_owned();
        cursor = Some(next.clone());
        if out.len() >= n && body["hasMore"] == false {
            assert_eq!(out.len(), n, "{:?}", types(&out));
            return (out, next);
        }
    }
    panic!("{} events, not {n}: {:?}", out.len(), types(&out));
}

/// Waits until the tenant's first `n` events are readable.
async fn settle(app: &TestApp, n: usize) {
    read_from(app, None, n).await;
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// Sends `body` with `method` to `path` with a request id and a client
/// name; the status and JSON body.
async fn write(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app
        .req(method, path)
        .header("x-request-id", "req-under-test")
        .header("user-agent", "Azure AD SCIM 2.0 (test)");
    if let Some(body) = body {
        req = req
            .header(CONTENT_TYPE, "application/scim+json")
            .body(body.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let body = match text.is_empty() {
        true => Value::Null,
        false => serde_json::from_str(&text).unwrap(),
    };
    (status, body)
}

async fn get(app: &TestApp, path: &str) -> Value {
    let resp = app.req(Method::GET, path).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// A key of the default tenant with `role`.
async fn token_with_role(app: &TestApp, role: &str) -> String {
    scimd::admin::create_key(&app.store, &app.project_id, "a", role, None, None)
        .await
        .unwrap()
        .token
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

both_backends! {
    async fn every_write_records_exactly_its_events(app) {
        let start = head(&app).await;
        let (s, a) = write(&app, Method::POST, "/Users", Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ada", "active": true, "name": {"givenName": "Ada", "familyName": "L"},
            "password": "s3cret-Passw0rd", ENTERPRISE: {"department": "R&D"}
        }))).await;
        assert_eq!(s, StatusCode::CREATED, "{a}");
        let a_id = a["id"].as_str().unwrap().to_owned();
        let a_path = format!("/Users/{a_id}");
        let (evs, cursor) = after(&app, &start, 1).await;
        assert_eq!(types(&evs), ["user.created"]);
        let created = &evs[0];
        assert_eq!(created["data"], get(&app, &a_path).await, "data is the resource as GET shows it");
        assert!(created["data"].get("password").is_none());
        assert_eq!(created["resourceType"], "User");
        assert_eq!(created["resourceId"], a_id);
        assert_eq!(created["version"], "W/\"1\"");
        assert_eq!(created["actor"]["requestId"], "req-under-test");
        assert_eq!(created["actor"]["userAgent"], "Azure AD SCIM 2.0 (test)");
        assert!(created["actor"]["keyId"].as_str().is_some_and(|k| !k.is_empty()));
        assert!(created.get("changedAttributes").is_none() && created.get("member").is_none());
        assert!(created["occurredAt"].as_str().unwrap().ends_with('Z'));

        // Updates: one event each, typed by `active`, with what changed.
        let (s, _) = write(&app, Method::PATCH, &a_path, Some(patch(json!([
            {"op": "replace", "path": "name.givenName", "value": "Augusta"},
            {"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Eng"}
        ])))).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = write(&app, Method::PATCH, &a_path, Some(patch(json!([
            {"op": "replace", "path": "active", "value": false}
        ])))).await;
        assert_eq!(s, StatusCode::OK);
        let (evs, cursor) = after(&app, &cursor, 2).await;
        assert_eq!(types(&evs), ["user.updated", "user.deactivated"]);
        assert_eq!(
            evs[0]["changedAttributes"],
            json!(["name.givenName", format!("{ENTERPRISE}:department")])
        );
        assert_eq!(evs[1]["changedAttributes"], json!(["active"]));
        assert_eq!(evs[1]["version"], "W/\"3\"");
        assert_eq!(evs[1]["data"], get(&app, &a_path).await);

        // PUT back to active: reactivated.
        let mut replacement = get(&app, &a_path).await;
        replacement["active"] = json!(true);
        let (s, put) = write(&app, Method::PUT, &a_path, Some(replacement.clone())).await;
        assert_eq!(s, StatusCode::OK, "{put}");

        // No change, and rejected writes: no events.
        let (s, _) = write(&app, Method::PUT, &a_path, Some(replacement)).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = write(&app, Method::PATCH, &a_path, Some(patch(json!([
            {"op": "replace", "path": "active", "value": true}
        ])))).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = write(&app, Method::POST, "/Users", Some(json!({"userName": "ADA"}))).await;
        assert_eq!(s, StatusCode::CONFLICT);
        let (s, _) = write(&app, Method::PATCH, &a_path, Some(patch(json!([
            {"op": "replace", "path": "userName", "value": 7}
        ])))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let stale = app.req(Method::PATCH, &a_path)
            .header("if-match", "W/\"1\"")
            .header(CONTENT_TYPE, "application/scim+json")
            .body(patch(json!([{"op": "replace", "path": "displayName", "value": "x"}])).to_string())
            .send().await.unwrap();
        assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
        let (evs, cursor) = after(&app, &cursor, 1).await;
        assert_eq!(types(&evs), ["user.reactivated"]);
        assert_eq!(evs[0]["changedAttributes"], json!(["active"]));

        // Groups: created with a member, a membership-only change, a rename.
        let b = app.create_user(json!({"userName": "bob"})).await;
        let b_id = b["id"].as_str().unwrap().to_owned();
        // Nothing of the rejected writes before it.
        let (evs, cursor) = after(&app, &cursor, 1).await;
        assert_eq!(types(&evs), ["user.created"]);
        // A rename onto another user's name, refused by the database.
        let (s, _) = write(&app, Method::PATCH, &format!("/Users/{b_id}"), Some(patch(json!([
            {"op": "replace", "path": "userName", "value": "Ada"}
        ])))).await;
        assert_eq!(s, StatusCode::CONFLICT);
        let (s, g) = write(&app, Method::POST, "/Groups", Some(json!({
            "displayName": "eng", "members": [{"value": a_id}]
        }))).await;
        assert_eq!(s, StatusCode::CREATED, "{g}");
        let g_id = g["id"].as_str().unwrap().to_owned();
        let g_path = format!("/Groups/{g_id}");
        let (s, _) = write(&app, Method::PATCH, &g_path, Some(patch(json!([
            {"op": "add", "path": "members", "value": [{"value": b_id}, {"value": a_id}]}
        ])))).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = write(&app, Method::PATCH, &g_path, Some(patch(json!([
            {"op": "replace", "path": "displayName", "value": "engineering"}
        ])))).await;
        assert!(s.is_success());
        let (evs, cursor) = after(&app, &cursor, 4).await;
        assert_eq!(
            types(&evs),
            ["group.created", "group.member_added", "group.member_added", "group.updated"]
        );
        assert_eq!(evs[1]["member"], json!({"value": a_id, "type": "User"}));
        assert!(evs[1].get("data").is_none());
        assert_eq!(evs[1]["version"], "W/\"1\"");
        assert_eq!(evs[2]["member"], json!({"value": b_id, "type": "User"}));
        assert_eq!(evs[2]["version"], "W/\"2\"");
        assert_eq!(evs[3]["changedAttributes"], json!(["displayName"]));
        assert_eq!(
            evs[3]["data"],
            get(&app, &format!("{g_path}?excludedAttributes=members")).await
        );
        assert!(evs[0]["data"].get("members").is_none());

        // Deleting a member: its delete and its departure from the group.
        let b_before = get(&app, &format!("/Users/{b_id}")).await;
        let (s, _) = write(&app, Method::DELETE, &format!("/Users/{b_id}"), None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = write(&app, Method::DELETE, &format!("/Users/{b_id}"), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (evs, cursor) = after(&app, &cursor, 2).await;
        let mut got = types(&evs);
        got.sort();
        assert_eq!(got, ["group.member_removed", "user.deleted"]);
        let deleted = evs.iter().find(|e| e["type"] == "user.deleted").unwrap();
        assert_eq!(deleted["data"], b_before, "a delete carries the resource as it was");
        let removed = evs.iter().find(|e| e["type"] == "group.member_removed").unwrap();
        assert_eq!(removed["resourceId"], g_id);
        assert_eq!(removed["member"], json!({"value": b_id, "type": "User"}));
        assert_eq!(removed["version"], get(&app, &g_path).await["meta"]["version"]);

        let (s, _) = write(&app, Method::DELETE, &g_path, None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (evs, _) = after(&app, &cursor, 1).await;
        assert_eq!(types(&evs), ["group.deleted"]);
        assert_eq!(evs[0]["version"], "W/\"4\"");

    }

    async fn readers_see_every_event_once_and_in_version_order(app) {
        const WRITERS: usize = 8;
        const WRITES: usize = 500;
        let (s, g) = write(&app, Method::POST, "/Groups", Some(json!({"displayName": "all"}))).await;
        assert_eq!(s, StatusCode::CREATED);
        let g_path = format!("/Groups/{}", g["id"].as_str().unwrap());
        let start = tokio::time::Instant::now();
        let deadline = start + Duration::from_secs(300);

        // A reader following the feed with small pages and long polls.
        let reader = {
            let (client, origin, token) = (app.client.clone(), app.origin.clone(), app.token.clone());
            tokio::spawn(async move {
                let mut seen: Vec<Value> = Vec::new();
                let mut cursor: Option<String> = None;
                let want = 1 + WRITERS * WRITES;
                while seen.len() < want && tokio::time::Instant::now() < deadline {
                    let after = cursor.as_deref().map(|c| format!("&after={c}")).unwrap_or_default();
                    let body: Value = client
                        .get(format!("{origin}/api/v1/events?limit=50&wait=1{after}"))
                        .bearer_auth(&token)
                        .send().await.unwrap().json().await.unwrap();
                    seen.extend(body["events"].as_array().unwrap().iter().cloned());
                    cursor = Some(body["nextCursor"].as_str().unwrap().to_owned());
                }
                seen
            })
        };
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (client, base, token) = (app.client.clone(), app.base.clone(), app.token.clone());
            let g_path = g_path.clone();
            tasks.push(tokio::spawn(async move {
                let mut user = String::new();
                for i in 0..WRITES {
                    let (method, path, body) = match i % 5 {
                        0 => (Method::POST, "/Users".to_owned(), json!({"userName": format!("w{w}-{i}")})),
                        1 => (Method::PATCH, format!("/Users/{user}"), patch(json!([
                            {"op": "replace", "path": "displayName", "value": format!("n{i}")}]))),
                        2 => (Method::PATCH, g_path.clone(), patch(json!([
                            {"op": "add", "path": "members", "value": [{"value": user}]}]))),
                        3 => (Method::PATCH, format!("/Users/{user}"), patch(json!([
                            {"op": "replace", "path": "active", "value": false}]))),
                        _ => (Method::PATCH, g_path.clone(), patch(json!([
                            {"op": "remove", "path": format!("members[value eq \"{user}\"]")}]))),
                    };
                    let resp = client.request(method, format!("{base}{path}"))
                        .bearer_auth(&token)
                        .header(CONTENT_TYPE, "application/scim+json")
                        .body(body.to_string()).send().await.unwrap();
                    let status = resp.status();
                    let text = resp.text().await.unwrap();
                    assert!(status.is_success(), "writer {w} write {i}: {status} {text}");
                    if i % 5 == 0 {
                        let created: Value = serde_json::from_str(&text).unwrap();
                        user = created["id"].as_str().unwrap().to_owned();
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let seen = reader.await.unwrap();
        assert_eq!(seen.len(), 1 + WRITERS * WRITES, "every event once, nothing more");
        let ids: HashSet<&str> = seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), seen.len(), "no event twice");
        let (everything, _) = read_from(&app, None, seen.len()).await;
        let order = |evs: &[Value]| evs.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
        assert_eq!(order(&seen), order(&everything), "one order for every reader");
        let mut last: HashMap<String, u64> = HashMap::new();
        for e in &seen {
            let v: u64 = e["version"].as_str().unwrap().trim_start_matches("W/\"").trim_end_matches('"').parse().unwrap();
            let r = e["resourceId"].as_str().unwrap().to_owned();
            let before = last.insert(r.clone(), v).unwrap_or(0);
            assert!(v >= before, "{r}: version {v} after {before}");
        }
        let mut count: HashMap<&str, usize> = HashMap::new();
        for t in types(&seen) {
            *count.entry(t).or_default() += 1;
        }
        let per = WRITERS * WRITES / 5;
        assert_eq!(count["user.created"], per);
        assert_eq!(count["user.updated"], per);
        assert_eq!(count["user.deactivated"], per);
        assert_eq!(count["group.member_added"], per);
        assert_eq!(count["group.member_removed"], per);
    }

    async fn cursors_past_retention_are_gone_and_forged_ones_refused(app) {
        app.create_user(json!({"userName": "one"})).await;
        settle(&app, 1).await;
        let (_, body) = events(&app, "limit=1").await;
        let first = body["events"][0]["cursor"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_millis(5)).await;
        app.create_user(json!({"userName": "two"})).await;
        settle(&app, 2).await;
        let (status, body) = events(&app, &format!("after={first}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(types(body["events"].as_array().unwrap()), ["user.created"]);
        let second: chrono::DateTime<chrono::Utc> =
            body["events"][0]["occurredAt"].as_str().unwrap().parse().unwrap();

        // Retention up to the second event removes only the first; a
        // reader that saw the first goes on.
        assert_eq!(app.store.purge_events(second).await.unwrap(), 1);
        let (status, body) = events(&app, "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["events"].as_array().unwrap().len(), 1, "{body}");
        let (status, body) = events(&app, &format!("after={first}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["events"].as_array().unwrap().len(), 1, "{body}");

        // Retention removes the rest: a cursor before them is 410.
        let removed = app
            .store
            .purge_events(chrono::Utc::now() + chrono::TimeDelta::seconds(1))
            .await
            .unwrap();
        assert_eq!(removed, 1);
        let (status, body) = events(&app, &format!("after={first}")).await;
        assert_eq!(status, StatusCode::GONE, "{body}");
        // Without a cursor: from the oldest event kept (none).
        let (status, body) = events(&app, "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["events"], json!([]));
        let now = body["nextCursor"].as_str().unwrap().to_owned();
        app.create_user(json!({"userName": "three"})).await;
        let (evs, _) = after(&app, &now, 1).await;
        assert_eq!(types(&evs), ["user.created"]);

        // Cursors scimd did not issue, or issued for something else: 400.
        let other = app.token_for_new_tenant("b").await;
        let (_, theirs) = events_as(&app, &other, "limit=0").await;
        let list = app.req(Method::GET, "/Users?count=1&cursor").send().await.unwrap();
        let list: Value = list.json().await.unwrap();
        for bad in [
            "nonsense".to_owned(),
            theirs["nextCursor"].as_str().unwrap().to_owned(),
            list["nextCursor"].as_str().unwrap().to_owned(),
            {
                // The same cursor with one character of its position changed.
                let mut edited = now.clone().into_bytes();
                edited[30] = if edited[30] == b'A' { b'B' } else { b'A' };
                String::from_utf8(edited).unwrap()
            },
        ] {
            let (status, body) = events(&app, &format!("after={bad}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        }
        for bad in ["limit=1001", "limit=-1", "wait=31", "types=user.exploded", "resourceId=42"] {
            let (status, _) = events(&app, bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    async fn retention_cuts_every_tenants_expired_prefix(app) {
        let other = app.token_for_new_tenant("b").await;
        // Each tenant's head before its writes: a reader there has yet to
        // see every event that follows.
        let mut heads = Vec::new();
        for token in [&app.token, &other] {
            let (status, body) = events_as(&app, token, "limit=0").await;
            assert_eq!(status, StatusCode::OK, "{body}");
            heads.push(body["nextCursor"].as_str().unwrap().to_owned());
        }
        app.create_user(json!({"userName": "a1"})).await;
        for name in ["b1", "b2"] {
            let resp = app
                .req_as(&other, Method::POST, "/Users")
                .json(&json!({"userName": name}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::CREATED);
        }
        settle(&app, 1).await;
        let (_, body) = events_as(&app, &other, "").await;
        assert_eq!(types(body["events"].as_array().unwrap()), ["user.created", "user.created"]);

        // Nothing has expired yet: nothing goes.
        let before = chrono::Utc::now() - chrono::TimeDelta::hours(1);
        assert_eq!(app.store.purge_events(before).await.unwrap(), 0);
        for (token, head) in [&app.token, &other].into_iter().zip(&heads) {
            let (status, body) = events_as(&app, token, &format!("after={head}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(!body["events"].as_array().unwrap().is_empty(), "{body}");
        }
        // Everything has: both tenants' feeds go, and a reader at either
        // head has missed events (410).
        let removed = app
            .store
            .purge_events(chrono::Utc::now() + chrono::TimeDelta::seconds(1))
            .await
            .unwrap();
        assert_eq!(removed, 3);
        let again = chrono::Utc::now() + chrono::TimeDelta::seconds(1);
        assert_eq!(app.store.purge_events(again).await.unwrap(), 0, "nothing is left to go");
        for (token, head) in [&app.token, &other].into_iter().zip(&heads) {
            let (status, body) = events_as(&app, token, &format!("after={head}")).await;
            assert_eq!(status, StatusCode::GONE, "{body}");
            let (status, body) = events_as(&app, token, "").await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["events"], json!([]));
        }

        // The feed goes on past what went: the next write follows the
        // head a reader takes now, in a feed that is no longer empty.
        let (_, body) = events_as(&app, &other, "limit=0").await;
        let head = body["nextCursor"].as_str().unwrap().to_owned();
        let resp = app
            .req_as(&other, Method::POST, "/Users")
            .json(&json!({"userName": "b3"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        for after in [format!("after={head}&wait=5"), String::new()] {
            let (status, body) = events_as(&app, &other, &after).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(types(body["events"].as_array().unwrap()), ["user.created"], "{after}");
        }
        for (token, head) in [&app.token, &other].into_iter().zip(&heads) {
            let (status, body) = events_as(&app, token, &format!("after={head}")).await;
            assert_eq!(status, StatusCode::GONE, "{body}");
        }
    }

    async fn an_events_reader_reads_events_and_nothing_else(app) {
        app.create_user(json!({"userName": "seen"})).await;
        settle(&app, 1).await;
        let reader = token_with_role(&app, scimd::auth::EVENTS_READER).await;
        let (status, body) = events_as(&app, &reader, "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(types(body["events"].as_array().unwrap()), ["user.created"]);
        let scim = app.req_as(&reader, Method::GET, "/Users").send().await.unwrap();
        assert_eq!(scim.status(), StatusCode::FORBIDDEN);
        let (status, body) = crate::helpers::json_of(scim).await;
        crate::helpers::assert_scim_error(status, &body, 403, None);
        let (status, _) = events_as(&app, "nobody:nothing", "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let other = token_with_role(&app, "auditor").await;
        let (status, _) = events_as(&app, &other, "").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // Another tenant's events stay its own.
        let b = app.token_for_new_tenant("b").await;
        let (status, body) = events_as(&app, &b, "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["events"], json!([]));
        let resp = app.client.post(format!("{}/api/v1/events", app.origin))
            .bearer_auth(&app.token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/problem+json");
    }

    async fn filters_limits_and_long_polls(app) {
        let a = app.create_user(json!({"userName": "a"})).await;
        let a_id = a["id"].as_str().unwrap().to_owned();
        app.create_user(json!({"userName": "b"})).await;
        let (s, _) = write(&app, Method::PATCH, &format!("/Users/{a_id}"), Some(patch(json!([
            {"op": "replace", "path": "displayName", "value": "A"}])))).await;
        assert_eq!(s, StatusCode::OK);
        settle(&app, 3).await;
        let (_, body) = events(&app, "types=user.updated,user.deleted").await;
        assert_eq!(types(body["events"].as_array().unwrap()), ["user.updated"]);
        let (_, body) = events(&app, &format!("resourceId={a_id}")).await;
        assert_eq!(types(body["events"].as_array().unwrap()), ["user.created", "user.updated"]);
        let (_, body) = events(&app, "limit=0").await;
        assert_eq!(body["events"], json!([]));
        assert_eq!(body["hasMore"], false);
        let (_, after_head) = events(&app, &format!("after={}", body["nextCursor"].as_str().unwrap())).await;
        assert_eq!(after_head["events"], json!([]), "the head is after every event");
        let (_, body) = events(&app, "limit=2").await;
        assert_eq!(body["events"].as_array().unwrap().len(), 2);
        assert_eq!(body["hasMore"], true);
        let (_, rest) = events(&app, &format!("after={}", body["nextCursor"].as_str().unwrap())).await;
        assert_eq!(types(rest["events"].as_array().unwrap()), ["user.updated"]);
        assert_eq!(rest["hasMore"], false);

        // A filtered read moves its cursor past what it skipped.
        let (_, body) = events(&app, "types=group.deleted").await;
        let cursor = body["nextCursor"].as_str().unwrap().to_owned();
        let (_, body) = events(&app, &format!("after={cursor}")).await;
        assert_eq!(body["events"], json!([]));

        // A long poll answers when an event arrives.
        let waiting = {
            let (client, origin, token) = (app.client.clone(), app.origin.clone(), app.token.clone());
            let cursor = cursor.clone();
            tokio::spawn(async move {
                client.get(format!("{origin}/api/v1/events?wait=20&after={cursor}"))
                    .bearer_auth(token).send().await.unwrap().json::<Value>().await.unwrap()
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.create_user(json!({"userName": "late"})).await;
        let body = tokio::time::timeout(Duration::from_secs(25), waiting).await.unwrap().unwrap();
        assert_eq!(types(body["events"].as_array().unwrap()), ["user.created"]);
        assert_eq!(body["events"][0]["data"]["userName"], "late");
    }

    async fn the_head_is_after_every_write_committed_before_it_was_asked(app) {
        // On PostgreSQL a transaction that began earlier (here: another
        // client's, holding a transaction id) and is still running keeps
        // the snapshot's xmin below the write committed after it; the head
        // a consumer takes must still be past that write.
        let older = match app.backend {
            crate::helpers::Backend::Postgres => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&app.database_url).await.unwrap();
                sqlx::raw_sql("BEGIN; SELECT pg_current_xact_id()").execute(&mut c).await.unwrap();
                Some(c)
            }
            crate::helpers::Backend::Sqlite => None,
        };
        app.create_user(json!({"userName": "before"})).await;
        let ending = older.map(|mut c| tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            sqlx::raw_sql("COMMIT").execute(&mut c).await.unwrap();
        }));
        let cursor = head(&app).await;
        if let Some(ending) = ending {
            ending.await.unwrap();
        }
        app.create_user(json!({"userName": "after"})).await;
        settle(&app, 2).await;
        let (seen, _) = after(&app, &cursor, 1).await;
        let names: Vec<&str> = seen.iter().map(|e| e["data"]["userName"].as_str().unwrap()).collect();
        assert_eq!(names, ["after"], "the head is past `before`, before `after`");
    }

    async fn a_long_transaction_in_another_database_holds_no_reader_back(app) {
        // On PostgreSQL every database of the cluster shares transaction
        // ids, and the snapshot's xmin is held back by any of them; only
        // this database's transactions can write its events.
        let elsewhere = match app.backend {
            crate::helpers::Backend::Postgres => {
                use sqlx::Connection;
                let url = crate::helpers::pg_admin_url().await.unwrap();
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::raw_sql("BEGIN; SELECT pg_current_xact_id()").execute(&mut c).await.unwrap();
                Some(c)
            }
            crate::helpers::Backend::Sqlite => None,
        };
        let cursor = head(&app).await;
        app.create_user(json!({"userName": "now"})).await;
        let (_, body) = events(&app, &format!("after={cursor}")).await;
        let names: Vec<&str> = body["events"].as_array().unwrap().iter()
            .map(|e| e["data"]["userName"].as_str().unwrap()).collect();
        assert_eq!(names, ["now"], "not held back by a transaction that cannot write events");
        if let Some(mut c) = elsewhere {
            sqlx::raw_sql("ROLLBACK").execute(&mut c).await.unwrap();
        }
    }

    async fn concurrent_writes_refused_or_not_record_exactly_theirs(app) {
        // Forty clients at once, two for each of twenty names: one of each
        // pair is created, the other refused (409); then twenty PATCHes at
        // once, every other one a rename onto a taken name (409). Only the
        // writes that were made record events. On SQLite the writes queued
        // together share a transaction: one the database refuses must leave
        // the others, and their events, as they were.
        let start = head(&app).await;
        let send_all = |reqs: Vec<reqwest::RequestBuilder>| async move {
            let tasks: Vec<_> = reqs.into_iter().map(|req| tokio::spawn(async move {
                let resp = req.send().await.unwrap();
                (resp.status(), resp.json::<Value>().await.unwrap())
            })).collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        };
        let creates = (0..40).map(|i| app.req(Method::POST, "/Users")
            .header(CONTENT_TYPE, "application/scim+json")
            .body(json!({"userName": format!("twin{}", i % 20)}).to_string())).collect();
        let mut created = HashMap::new();
        for (status, body) in send_all(creates).await {
            match status {
                StatusCode::CREATED => {
                    let name = body["userName"].as_str().unwrap().to_owned();
                    assert!(created.insert(name, body["id"].as_str().unwrap().to_owned()).is_none(), "{body}");
                }
                StatusCode::CONFLICT => assert_eq!(body["scimType"], "uniqueness", "{body}"),
                other => panic!("{other} {body}"),
            }
        }
        assert_eq!(created.len(), 20, "{created:?}");
        let ids: Vec<String> = (0..20).map(|i| created[&format!("twin{i}")].clone()).collect();
        let patches = ids.iter().enumerate().map(|(i, id)| {
            let op = match i % 2 {
                0 => json!({"op": "replace", "path": "title", "value": format!("title{i}")}),
                _ => json!({"op": "replace", "path": "userName", "value": "twin0"}),
            };
            app.req(Method::PATCH, &format!("/Users/{id}"))
                .header(CONTENT_TYPE, "application/scim+json")
                .body(patch(json!([op])).to_string())
        }).collect();
        for (i, (status, body)) in send_all(patches).await.into_iter().enumerate() {
            match i % 2 {
                0 => assert_eq!((status, body["title"].as_str()), (StatusCode::OK, Some(format!("title{i}").as_str())), "{body}"),
                _ => assert_eq!((status, body["scimType"].as_str()), (StatusCode::CONFLICT, Some("uniqueness")), "{body}"),
            }
        }
        let (seen, _) = after(&app, &start, 30).await;
        let mut recorded: HashMap<String, String> = HashMap::new();
        let mut updated = HashSet::new();
        for e in &seen {
            let id = e["resourceId"].as_str().unwrap().to_owned();
            match e["type"].as_str().unwrap() {
                "user.created" => assert!(recorded.insert(e["data"]["userName"].as_str().unwrap().to_owned(), id).is_none()),
                "user.updated" => {
                    assert_eq!(e["changedAttributes"], json!(["title"]), "{e}");
                    assert!(updated.insert(id));
                }
                other => panic!("{other}: {e}"),
            }
        }
        assert_eq!(recorded, created);
        assert_eq!(updated, ids.iter().step_by(2).cloned().collect::<HashSet<_>>());
        for (i, id) in ids.iter().enumerate() {
            let user = get(&app, &format!("/Users/{id}")).await;
            assert_eq!(user["userName"], format!("twin{i}"), "{user}");
            let version = match i % 2 {
                0 => "W/\"2\"",
                _ => "W/\"1\"",
            };
            assert_eq!(user["meta"]["version"], version, "{user}");
        }
    }

    async fn racing_writes_of_one_resource_record_each_change_once(app) {
        // Sixteen PATCHes of one user at once, and sixteen of one group. All
        // read the same version and write one after another: each write
        // but the first finds the version moved, and the store takes it
        // again from the current one. Every PATCH succeeds, and each records
        // one event at a version of its own; a write that lost its race
        // records nothing (on SQLite the event's statement follows the
        // write's and must see that it changed nothing).
        const N: usize = 16;
        let user = app.create_user(json!({"userName": "raced"})).await;
        let (s, group) = write(&app, Method::POST, "/Groups", Some(json!({"displayName": "raced"}))).await;
        assert_eq!(s, StatusCode::CREATED, "{group}");
        let start = head(&app).await;
        let mut tasks = Vec::new();
        for (path, attribute) in [("Users", "nickName"), ("Groups", "displayName")] {
            let id = match path {
                "Users" => user["id"].as_str().unwrap(),
                _ => group["id"].as_str().unwrap(),
            };
            for i in 0..N {
                let op = json!({"op": "replace", "path": attribute, "value": format!("raced {i}")});
                let req = app.req(Method::PATCH, &format!("/{path}/{id}"))
                    .header(CONTENT_TYPE, "application/scim+json")
                    .body(patch(json!([op])).to_string());
                tasks.push(tokio::spawn(async move {
                    let resp = req.send().await.unwrap();
                    (resp.status(), resp.text().await.unwrap())
                }));
            }
        }
        for t in tasks {
            let (status, body) = t.await.unwrap();
            assert!(status.is_success(), "{status} {body}");
        }
        let (seen, _) = after(&app, &start, 2 * N).await;
        for (kind, path, attribute) in [("user", "Users", "nickName"), ("group", "Groups", "displayName")] {
            let id = match kind {
                "user" => &user["id"],
                _ => &group["id"],
            };
            let mine: Vec<&Value> = seen.iter().filter(|e| e["resourceId"] == *id).collect();
            let versions: Vec<&str> = mine.iter().map(|e| e["version"].as_str().unwrap()).collect();
            let expected: Vec<String> = (2..=N + 1).map(|v| format!("W/\"{v}\"")).collect();
            assert_eq!(versions, expected, "{kind}: one event per version, in order");
            for e in &mine {
                assert_eq!(e["type"], format!("{kind}.updated"), "{e}");
                assert_eq!(e["changedAttributes"], json!([attribute]), "{e}");
            }
            // The last event holds the resource as it stands.
            let now = get(&app, &format!("/{path}/{}", id.as_str().unwrap())).await;
            assert_eq!(now["meta"]["version"], expected[N - 1], "{now}");
            assert_eq!(mine[N - 1]["data"][attribute], now[attribute], "{now}");
        }
    }

    async fn with_events_off_writes_record_none(app) {
        let settings = HttpSettings { events: false, ..HttpSettings::default() };
        let off = app.respawn(settings).await;
        let u = off.create_user(json!({"userName": "quiet"})).await;
        let (s, _) = write(&off, Method::DELETE, &format!("/Users/{}", u["id"].as_str().unwrap()), None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (status, body) = events(&off, "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["events"], json!([]));
    }
}
