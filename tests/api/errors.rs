//! Transport-level errors are SCIM errors too; probes and request ids.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{
    Backend, TestApp, assert_scim_error, json_of, read_until, status_and_body, whole_response,
};

both_backends! {
    async fn malformed_json_is_400_invalid_syntax(app) {
        for body in ["{\"userName\": ", "not json", "", "[1,2"] {
            let resp = app.req(Method::POST, "/Users").header("content-type", "application/scim+json").body(body).send().await.unwrap();
            let (status, err) = json_of(resp).await;
            assert_scim_error(status, &err, 400, Some("invalidSyntax"));
        }
        let resp = app.req(Method::POST, "/Users").header("content-type", "application/json").body("[]").send().await.unwrap();
        let (status, err) = json_of(resp).await;
        assert_scim_error(status, &err, 400, Some("invalidSyntax"));
    }

    async fn json_media_types_are_accepted_and_others_are_415(app) {
        for (i, ct) in ["application/json", "application/json; charset=utf-8", "text/json"].iter().enumerate() {
            let resp = app.req(Method::POST, "/Users").header("content-type", *ct).body(json!({"userName": format!("m{i}")}).to_string()).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::CREATED, "{ct}");
        }
        let resp = app.req(Method::POST, "/Users").body(json!({"userName": "no-content-type"}).to_string()).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let resp = app.req(Method::POST, "/Users").header("content-type", "application/xml").body("<user/>").send().await.unwrap();
        let (status, err) = json_of(resp).await;
        assert_scim_error(status, &err, 415, Some("invalidSyntax"));
    }

    async fn oversize_body_is_413_and_stores_nothing(app) {
        // On a raw socket: scimd answers as soon as the declared length is
        // too large and closes, which an HTTP client still writing the body
        // may report as a broken pipe instead of the answer.
        use tokio::io::AsyncWriteExt;
        let big = json!({"userName": "big", "title": "x".repeat(1024 * 1024 + 1)}).to_string();
        let s = tokio::net::TcpStream::connect(app.origin.trim_start_matches("http://")).await.unwrap();
        let head = format!(
            "POST /scim/v2/Users HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n",
            app.token,
            big.len()
        );
        // Write while reading, so the answer is read before the close.
        let (mut reading, mut writing) = s.into_split();
        let writer = tokio::spawn(async move {
            let _ = writing.write_all(head.as_bytes()).await;
            let _ = writing.write_all(big.as_bytes()).await;
            writing
        });
        let raw = read_until(&mut reading, std::time::Duration::from_secs(10), whole_response).await.expect("an answer");
        drop(writer.await);
        let (status, err) = status_and_body(&raw);
        assert_scim_error(StatusCode::from_u16(status).unwrap(), &err, 413, None);
        let (_, list) = json_of(app.req(Method::GET, "/Users").send().await.unwrap()).await;
        assert_eq!(list["totalResults"], 0);
    }

    async fn a_write_failing_half_way_leaves_the_old_user_intact(app) {
        let user = app.create_user(json!({"userName": "keep", "title": "before", "emails": [{"value": "k@example.com"}]})).await;
        let id = user["id"].as_str().unwrap();
        // Fail every users UPDATE after the row has been changed.
        if app.backend == Backend::Postgres {
            app.exec_sql(
                "CREATE FUNCTION fail_after_update() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$; \
                 CREATE TRIGGER users_fail AFTER UPDATE ON users FOR EACH ROW EXECUTE FUNCTION fail_after_update();",
            )
            .await;
        } else {
            app.exec_sql("CREATE TRIGGER users_fail AFTER UPDATE ON users BEGIN SELECT RAISE(ABORT, 'injected failure'); END;")
                .await;
        }
        let body = json!({"userName": "renamed", "title": "after"});
        let (status, err) = json_of(app.send_json(Method::PUT, &format!("/Users/{id}"), &body).await).await;
        assert_scim_error(status, &err, 500, None);
        assert!(!err.to_string().contains("injected"), "no database text reaches the client: {err}");
        let (status, after) = app.get_user(id).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(after, user);
    }

    async fn readyz_reports_the_database(app) {
        let (status, body) = json_of(app.client.get(format!("{}/readyz", app.origin)).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["database"], if app.backend == Backend::Sqlite { "sqlite" } else { "postgres" });
        app.store.close().await;
        let resp = app.client.get(format!("{}/readyz", app.origin)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(resp.headers().contains_key("retry-after"));
        // With the database gone, SCIM requests get 503, never a hang or a 500.
        let (status, err) = json_of(app.req(Method::GET, "/Users").send().await.unwrap()).await;
        assert_scim_error(status, &err, 503, None);
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_scim_errors() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (method, path, want) in [
        (Method::GET, "/nope", 404),
        (Method::GET, "/Widgets", 404),
        (Method::PATCH, "/Users", 405),
        (
            Method::POST,
            &format!("/Users/{}", uuid::Uuid::now_v7()) as &str,
            405,
        ),
        (Method::DELETE, "/Users", 405),
    ] {
        let (status, body) = json_of(app.req(method.clone(), path).send().await.unwrap()).await;
        assert_scim_error(status, &body, want, None);
    }
    let (status, body) = json_of(
        app.client
            .get(format!("{}/", app.origin))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_scim_error(status, &body, 404, None);
}

#[tokio::test]
async fn healthz_needs_no_auth_and_responses_carry_a_request_id() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let resp = app
        .client
        .get(format!("{}/healthz", app.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("x-request-id"));
    let resp = app
        .client
        .get(format!("{}/readyz", app.origin))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn endpoint_names_are_case_insensitive_and_trailing_slashes_ignored() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.create_user(json!({"userName": "slash"})).await;
    let id = user["id"].as_str().unwrap();
    for path in [
        "/users",
        "/Users/",
        "/USERS?count=1",
        "/resourcetypes/user",
        "/serviceproviderconfig",
    ] {
        let (status, body) = json_of(app.req(Method::GET, path).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (status, got) = json_of(
        app.req(Method::GET, &format!("/users/{id}/"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, got["id"].as_str()), (StatusCode::OK, Some(id)));
    // The id segment itself is not rewritten; a UUID in a path is read as a
    // UUID, in either case.
    let (status, _) = json_of(
        app.req(Method::GET, &format!("/Users/{}", id.to_uppercase()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
