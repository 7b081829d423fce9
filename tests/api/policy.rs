//! A tenant's deprovisioning policy (`/api/v1/tenant`, `scimd admin
//! tenant`): the pause switch and the deletion circuit breaker.

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::cli::scimd;
use crate::helpers::{TestApp, assert_scim_error, json_of};

/// `METHOD /api/v1{path}` with the default tenant's token.
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
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = resp.json().await.unwrap();
    let want = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    assert_eq!(ct, want, "{status} {body}");
    (status, body)
}

fn patch_op(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

/// Sends a SCIM write; its status, `Retry-After` and body.
async fn scim(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let resp = match body {
        Some(body) => app.send_json(method, path, &body).await,
        None => app.req(method, path).send().await.unwrap(),
    };
    let retry = resp
        .headers()
        .get(RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = json_of(resp).await;
    (status, retry, body)
}

/// The tenant's events of `type_` so far.
async fn tenant_events(app: &TestApp, type_: &str) -> Vec<Value> {
    let resp = app
        .client
        .get(format!(
            "{}/api/v1/events?types={type_}&limit=1000&wait=1",
            app.origin
        ))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    body["events"].as_array().unwrap().clone()
}

both_backends! {
    async fn the_policy_reads_and_changes_over_the_api(app) {
        let (status, body) = api(&app, Method::GET, "/tenant", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["name"], "a");
        assert_eq!(body["deleteMode"], "hard");
        assert_eq!(body["deletionThreshold"], Value::Null);
        assert_eq!(body["paused"], false);
        assert_eq!(body["deletionsHeld"], 0);

        let (status, body) = api(&app, Method::PATCH, "/tenant",
            Some(json!({"deletionThreshold": "50/60m", "paused": false}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["deletionThreshold"], "50/1h");
        let (_, body) = api(&app, Method::PATCH, "/tenant", Some(json!({"deletionThreshold": null}))).await;
        assert_eq!(body["deletionThreshold"], Value::Null);

        for bad in [json!({"deleteMode": "gentle"}), json!({"deletionThreshold": "50"}),
                    json!({"paused": "yes"}), json!({"colour": "red"}), json!([1])] {
            let (status, body) = api(&app, Method::PATCH, "/tenant", Some(bad.clone())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
        }
        let (_, body) = api(&app, Method::GET, "/tenant", None).await;
        assert_eq!(body["deleteMode"], "hard", "a refused change changes nothing");

        // Only tenant admins.
        let reader = scimd::admin::create_key(&app.store, &app.project_id, "a", "events-reader", None, None)
            .await.unwrap().token;
        let resp = app.client.get(format!("{}/api/v1/tenant", app.origin)).bearer_auth(&reader).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);

        // Each change is an event.
        let updates = tenant_events(&app, "tenant.updated").await;
        assert_eq!(updates.len(), 2, "{updates:?}");
        assert_eq!(updates[0]["resourceType"], "Tenant");
        assert_eq!(updates[0]["changedAttributes"], json!(["deletionThreshold"]));
    }

    async fn a_paused_tenant_refuses_writes_and_serves_reads(app) {
        let u = app.create_user(json!({"userName": "kept"})).await;
        let id = u["id"].as_str().unwrap().to_owned();
        let (status, body) = api(&app, Method::PATCH, "/tenant", Some(json!({"paused": true}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["paused"], true);

        let writes = [
            (Method::POST, "/Users".to_owned(), Some(json!({"userName": "new"}))),
            (Method::PUT, format!("/Users/{id}"), Some(json!({"userName": "kept", "displayName": "X"}))),
            (Method::PATCH, format!("/Users/{id}"), Some(patch_op(json!([{"op": "replace", "path": "displayName", "value": "Y"}])))),
            (Method::DELETE, format!("/Users/{id}"), None),
            (Method::POST, "/Groups".to_owned(), Some(json!({"displayName": "g"}))),
        ];
        for (method, path, body) in writes {
            let (status, retry, body) = scim(&app, method.clone(), &path, body).await;
            assert_scim_error(status, &body, 503, None);
            assert!(body["detail"].as_str().unwrap().contains("paused"), "{body}");
            assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() > 0), "{method} {path}");
        }
        let (status, user) = app.get_user(&id).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(user["displayName"], Value::Null, "nothing was written");
        let (status, _, _) = scim(&app, Method::GET, "/Users?filter=userName%20eq%20%22kept%22", None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = scim(&app, Method::POST, "/Users/.search", Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}))).await;
        assert_eq!(status, StatusCode::OK, "a search reads");

        api(&app, Method::PATCH, "/tenant", Some(json!({"paused": false}))).await;
        let (status, _, _) = scim(&app, Method::POST, "/Users", Some(json!({"userName": "new"}))).await;
        assert_eq!(status, StatusCode::CREATED);
    }

    async fn the_breaker_trips_past_its_threshold_and_holds_until_released(app) {
        let mut ids = Vec::new();
        for i in 0..6 {
            let u = app.create_user(json!({"userName": format!("u{i}"), "active": true})).await;
            ids.push(u["id"].as_str().unwrap().to_owned());
        }
        let g = scim(&app, Method::POST, "/Groups", Some(json!({"displayName": "g"}))).await.2;
        let (status, _) = api(&app, Method::PATCH, "/tenant", Some(json!({"deletionThreshold": "3/1h"}))).await;
        assert_eq!(status, StatusCode::OK);

        // Three go through: a delete, a PATCH deactivation, a PUT deactivation.
        let (status, _, _) = scim(&app, Method::DELETE, &format!("/Users/{}", ids[0]), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _, body) = scim(&app, Method::PATCH, &format!("/Users/{}", ids[1]),
            Some(patch_op(json!([{"op": "replace", "path": "active", "value": false}])))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _, body) = scim(&app, Method::PUT, &format!("/Users/{}", ids[2]),
            Some(json!({"userName": "u2", "active": false}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Neither a missing user's delete nor a change that deactivates
        // nobody counts.
        let missing = uuid::Uuid::now_v7();
        let (status, _, _) = scim(&app, Method::DELETE, &format!("/Users/{missing}"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = scim(&app, Method::PATCH, &format!("/Users/{}", ids[1]),
            Some(patch_op(json!([{"op": "replace", "path": "active", "value": false}])))).await;
        assert_eq!(status, StatusCode::OK, "already inactive");

        // The fourth trips it: deletes and deactivations are held.
        let (status, retry, body) = scim(&app, Method::DELETE, &format!("/Users/{}", ids[3]), None).await;
        assert_scim_error(status, &body, 503, None);
        assert!(body["detail"].as_str().unwrap().contains("deletion threshold"), "{body}");
        assert!(retry.is_some());
        let (status, _, body) = scim(&app, Method::PATCH, &format!("/Users/{}", ids[4]),
            Some(patch_op(json!([{"op": "replace", "path": "active", "value": false}])))).await;
        assert_scim_error(status, &body, 503, None);
        let (status, _, body) = scim(&app, Method::PUT, &format!("/Users/{}", ids[5]),
            Some(json!({"userName": "u5", "active": false}))).await;
        assert_scim_error(status, &body, 503, None);
        let (status, _, body) = scim(&app, Method::DELETE, &format!("/Groups/{}", g["id"].as_str().unwrap()), None).await;
        assert_scim_error(status, &body, 503, None);
        for id in &ids[3..] {
            let (status, user) = app.get_user(id).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(user["active"], true, "held: nothing changed");
        }
        // Everything else keeps working.
        let (status, _, _) = scim(&app, Method::PATCH, &format!("/Users/{}", ids[4]),
            Some(patch_op(json!([{"op": "replace", "path": "displayName", "value": "Still here"}])))).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = scim(&app, Method::POST, "/Users", Some(json!({"userName": "hired"}))).await;
        assert_eq!(status, StatusCode::CREATED);

        let (_, tenant) = api(&app, Method::GET, "/tenant", None).await;
        assert!(tenant["heldSince"].is_string(), "{tenant}");
        assert_eq!(tenant["deletionsHeld"], 4, "{tenant}");
        let held = tenant_events(&app, "tenant.deletions_held").await;
        assert_eq!(held.len(), 1, "recorded once: {held:?}");

        // Released, they go through again, counted afresh.
        let (status, tenant) = api(&app, Method::POST, "/tenant/release", None).await;
        assert_eq!(status, StatusCode::OK, "{tenant}");
        assert_eq!(tenant["heldSince"], Value::Null);
        assert_eq!(tenant["deletionsHeld"], 0);
        let (status, _, _) = scim(&app, Method::DELETE, &format!("/Users/{}", ids[3]), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(tenant_events(&app, "tenant.deletions_released").await.len(), 1);
    }

    async fn admins_set_show_and_release_from_the_command_line(app) {
        let project = app.project_id.clone();
        let (ok, out, err) = scimd(&app, &["admin", "tenant", "set", "--project", &project, "a",
            "--delete-mode", "soft", "--deletion-threshold", "1/1d", "--paused", "true"]);
        assert!(ok, "{err}");
        let shown: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(shown["deleteMode"], "soft");
        assert_eq!(shown["deletionThreshold"], "1/1d");
        assert_eq!(shown["paused"], true);
        // The server reads it with the key (no key cache in tests).
        let (status, _, _) = scim(&app, Method::POST, "/Users", Some(json!({"userName": "x"}))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let (ok, _, err) = scimd(&app, &["admin", "tenant", "set", "--project", &project, "a", "--paused", "false"]);
        assert!(ok, "{err}");
        let u1 = app.create_user(json!({"userName": "one"})).await;
        let u2 = app.create_user(json!({"userName": "two"})).await;
        let (status, _, _) = scim(&app, Method::DELETE, &format!("/Users/{}", u1["id"].as_str().unwrap()), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _, _) = scim(&app, Method::DELETE, &format!("/Users/{}", u2["id"].as_str().unwrap()), None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let (ok, out, _) = scimd(&app, &["admin", "tenant", "show", "--project", &project, "a"]);
        assert!(ok);
        let shown: Value = serde_json::from_str(&out).unwrap();
        assert!(shown["heldSince"].is_string(), "{shown}");
        assert_eq!(shown["deletionsHeld"], 1);
        let (ok, out, err) = scimd(&app, &["admin", "tenant", "release", "--project", &project, "a"]);
        assert!(ok, "{err}");
        assert!(out.contains("\"heldSince\":null"), "{out}");
        let (status, _, _) = scim(&app, Method::DELETE, &format!("/Users/{}", u2["id"].as_str().unwrap()), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);

        let (ok, _, err) = scimd(&app, &["admin", "tenant", "set", "--project", &project, "a", "--deletion-threshold", "lots"]);
        assert!(!ok && err.contains("N/WINDOW"), "{err}");
        let (ok, _, err) = scimd(&app, &["admin", "tenant", "show", "--project", &project, "nobody"]);
        assert!(!ok && err.contains("does not exist"), "{err}");
    }
}

/// `PATCH /api/v1/tenant {"deleteMode": "soft"}`.
async fn soft(app: &TestApp) {
    let (status, body) = api(
        app,
        Method::PATCH,
        "/tenant",
        Some(json!({"deleteMode": "soft"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn add_member(id: &str) -> Value {
    patch_op(json!([{"op": "add", "path": "members", "value": [{"value": id}]}]))
}

/// The ids of a group's members.
async fn member_ids(app: &TestApp, group: &str) -> Vec<String> {
    let (status, _, g) = scim(app, Method::GET, &format!("/Groups/{group}"), None).await;
    assert_eq!(status, StatusCode::OK, "{g}");
    let mut ids: Vec<String> = g["members"].as_array().map_or(Vec::new(), |m| {
        m.iter()
            .map(|m| m["value"].as_str().unwrap().to_owned())
            .collect()
    });
    ids.sort();
    ids
}

both_backends! {
    async fn hard_delete_stays_the_default(app) {
        let u = app.create_user(json!({"userName": "gone", "externalId": "e1"})).await;
        let (status, _, _) = scim(&app, Method::DELETE, &format!("/Users/{}", u["id"].as_str().unwrap()), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let again = app.create_user(json!({"userName": "gone", "externalId": "e1"})).await;
        assert_ne!(again["id"], u["id"], "a hard-deleted user does not come back");
        assert!(tenant_events(&app, "user.revived").await.is_empty());
    }

    async fn a_soft_deleted_user_is_gone_to_scim_and_comes_back_with_its_groups(app) {
        soft(&app).await;
        let u = app.create_user(json!({"userName": "alice", "externalId": "ext-1", "displayName": "Alice"})).await;
        let id = u["id"].as_str().unwrap().to_owned();
        let (_, _, g) = scim(&app, Method::POST, "/Groups", Some(json!({"displayName": "staff"}))).await;
        let gid = g["id"].as_str().unwrap().to_owned();
        let (status, _, _) = scim(&app, Method::PATCH, &format!("/Groups/{gid}"), Some(add_member(&id))).await;
        assert!(status.is_success());

        let (status, _, _) = scim(&app, Method::DELETE, &format!("/Users/{id}"), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        // Gone, as in hard mode: GET, list, filter, the group, uniqueness.
        assert_eq!(app.get_user(&id).await.0, StatusCode::NOT_FOUND);
        let (_, _, list) = scim(&app, Method::GET, "/Users", None).await;
        assert_eq!(list["totalResults"], 0, "{list}");
        let (_, _, found) = scim(&app, Method::GET, "/Users?filter=userName%20eq%20%22alice%22", None).await;
        assert_eq!(found["totalResults"], 0);
        let (_, _, found) = scim(&app, Method::GET, "/Users?filter=externalId%20eq%20%22ext-1%22", None).await;
        assert_eq!(found["totalResults"], 0);
        assert!(member_ids(&app, &gid).await.is_empty());
        let (status, _, _) = scim(&app, Method::DELETE, &format!("/Users/{id}"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "deleted once");
        // Another externalId is another person: a new user, even with the
        // same userName (free again).
        let other = app.create_user(json!({"userName": "alice", "externalId": "ext-2"})).await;
        assert_ne!(other["id"], u["id"]);
        let (status, _, _) = scim(&app, Method::DELETE, &format!("/Users/{}", other["id"].as_str().unwrap()), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);

        // The IdP creates it again (renamed): same id, new attributes, its groups.
        let (status, _, back) = scim(&app, Method::POST, "/Users",
            Some(json!({"userName": "alice.b", "externalId": "ext-1", "active": true}))).await;
        assert_eq!(status, StatusCode::CREATED, "{back}");
        assert_eq!(back["id"], u["id"]);
        assert_eq!(back["userName"], "alice.b");
        assert_eq!(back["displayName"], Value::Null, "the new attributes only");
        assert_eq!(back["meta"]["created"], u["meta"]["created"]);
        assert_eq!(back["meta"]["version"], "W/\"2\"", "the version after the deleted one");
        assert_eq!(back["groups"][0]["value"], gid.as_str(), "{back}");
        assert_eq!(member_ids(&app, &gid).await, [id.as_str()]);
        let revived = tenant_events(&app, "user.revived").await;
        assert_eq!(revived.len(), 1, "{revived:?}");
        assert_eq!(revived[0]["resourceId"], id.as_str());
        assert_eq!(revived[0]["data"]["userName"], "alice.b");
        let added = tenant_events(&app, "group.member_added").await;
        assert_eq!(added.len(), 2, "joined, then rejoined: {added:?}");
        // Revived once: the tombstone is used up.
        let (status, _, _) = scim(&app, Method::POST, "/Users", Some(json!({"userName": "x", "externalId": "ext-1"}))).await;
        assert_eq!(status, StatusCode::CREATED);
    }

    async fn without_an_external_id_the_user_name_revives(app) {
        soft(&app).await;
        let u = app.create_user(json!({"userName": "Bob"})).await;
        let id = u["id"].as_str().unwrap();
        let (status, _, _) = scim(&app, Method::DELETE, &format!("/Users/{id}"), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let back = app.create_user(json!({"userName": "bob"})).await;
        assert_eq!(back["id"], u["id"], "userName matches caselessly");
        // Another externalId is someone else.
        let (status, _, _) = scim(&app, Method::DELETE, &format!("/Users/{id}"), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _, body) = scim(&app, Method::POST, "/Users", Some(json!({"userName": "bob", "externalId": "zzz"}))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_ne!(body["id"], u["id"]);

        // A revival whose userName is taken is the create's 409, and the
        // tombstone stays for the next try.
        let c = app.create_user(json!({"userName": "carol", "externalId": "c-1"})).await;
        let (status, _, _) = scim(&app, Method::DELETE, &format!("/Users/{}", c["id"].as_str().unwrap()), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _, body) = scim(&app, Method::POST, "/Users", Some(json!({"userName": "BOB", "externalId": "c-1"}))).await;
        assert_scim_error(status, &body, 409, Some("uniqueness"));
        let back = app.create_user(json!({"userName": "carol.c", "externalId": "c-1"})).await;
        assert_eq!(back["id"], c["id"]);
    }

    async fn a_soft_deleted_group_comes_back_with_its_members_and_parents(app) {
        soft(&app).await;
        let a = app.create_user(json!({"userName": "a1"})).await;
        let b = app.create_user(json!({"userName": "b1"})).await;
        let (aid, bid) = (a["id"].as_str().unwrap().to_owned(), b["id"].as_str().unwrap().to_owned());
        let (_, _, parent) = scim(&app, Method::POST, "/Groups", Some(json!({"displayName": "parent"}))).await;
        let pid = parent["id"].as_str().unwrap().to_owned();
        let (_, _, g) = scim(&app, Method::POST, "/Groups", Some(json!({"displayName": "Team",
            "externalId": "t-1", "members": [{"value": aid}, {"value": bid}]}))).await;
        let gid = g["id"].as_str().unwrap().to_owned();
        scim(&app, Method::PATCH, &format!("/Groups/{pid}"), Some(add_member(&gid))).await;

        let (status, _, _) = scim(&app, Method::DELETE, &format!("/Groups/{gid}"), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _, _) = scim(&app, Method::GET, &format!("/Groups/{gid}"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(member_ids(&app, &pid).await.is_empty());
        // b is deleted meanwhile: it does not come back with the group.
        scim(&app, Method::DELETE, &format!("/Users/{bid}"), None).await;

        let (status, _, back) = scim(&app, Method::POST, "/Groups",
            Some(json!({"displayName": "Team (renamed)", "externalId": "t-1"}))).await;
        assert_eq!(status, StatusCode::CREATED, "{back}");
        assert_eq!(back["id"], gid.as_str());
        assert_eq!(back["displayName"], "Team (renamed)");
        assert_eq!(member_ids(&app, &gid).await, [aid.as_str()], "the members that still exist");
        assert_eq!(member_ids(&app, &pid).await, [gid.as_str()]);
        assert_eq!(tenant_events(&app, "group.revived").await.len(), 1);

        // A create naming a member that does not exist changes nothing.
        scim(&app, Method::DELETE, &format!("/Groups/{gid}"), None).await;
        let ghost = uuid::Uuid::now_v7().to_string();
        let (status, _, body) = scim(&app, Method::POST, "/Groups",
            Some(json!({"displayName": "Team", "externalId": "t-1", "members": [{"value": ghost}]}))).await;
        assert!(status.is_client_error(), "{status} {body}");
        let (status, _, again) = scim(&app, Method::POST, "/Groups", Some(json!({"displayName": "Team", "externalId": "t-1"}))).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(again["id"], gid.as_str(), "the tombstone was still there");
    }

    async fn tombstones_are_purged_after_their_retention(app) {
        let server = crate::cli::Server::start_logging(&app.database_url, None, None,
            &[("SCIMD_TOMBSTONE_RETENTION", "2s")]).await;
        let client = reqwest::Client::new();
        let call = |method: Method, path: String, body: Option<Value>| {
            let mut req = client.request(method, format!("{}{path}", server.url)).bearer_auth(&app.token);
            if let Some(body) = body {
                req = req.header(CONTENT_TYPE, "application/scim+json").body(body.to_string());
            }
            req.send()
        };
        let resp = call(Method::PATCH, "/api/v1/tenant".into(), Some(json!({"deleteMode": "soft"}))).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let u: Value = call(Method::POST, "/scim/v2/Users".into(), Some(json!({"userName": "brief"}))).await.unwrap().json().await.unwrap();
        let id = u["id"].as_str().unwrap().to_owned();
        let resp = call(Method::DELETE, format!("/scim/v2/Users/{id}"), None).await.unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let mut purged = Vec::new();
        for _ in 0..40 {
            purged = tenant_events(&app, "user.purged").await;
            if !purged.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        assert_eq!(purged.len(), 1, "purged within 10 s of a 2 s retention");
        assert_eq!(purged[0]["resourceId"], id.as_str());
        let again: Value = call(Method::POST, "/scim/v2/Users".into(), Some(json!({"userName": "brief"}))).await.unwrap().json().await.unwrap();
        assert_ne!(again["id"], id.as_str(), "past retention a create creates");
    }
}
