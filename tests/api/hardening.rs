//! Hostile and slow clients: idle and slow connections, oversized requests,
//! runaway filters, and bad input that must get a 4xx and store nothing.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::both_backends;
use crate::helpers::{
    TestApp, assert_scim_error, json_of, read_until, status_and_body, whole_response,
};
use scimd::scim::patch::PATCH_OP_URN;
use scimd::store::PoolConfig;
use scimd::{ConnectionLimits, HttpSettings};

fn host_port(app: &TestApp) -> String {
    app.origin.trim_start_matches("http://").to_owned()
}

/// What a user looks like to GET, and how many users there are.
async fn snapshot(app: &TestApp) -> Value {
    let (status, list) = json_of(
        app.req(Method::GET, "/Users?count=1000")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["Resources"].clone()
}

both_backends! {
    // Connections that send nothing, half a request line, or headers a byte
    // at a time are closed after the header read timeout, and do not keep
    // other clients out for longer than that.
    async fn idle_and_slow_connections_are_closed(app) {
        let limits = ConnectionLimits { header_read_timeout: Duration::from_millis(700), max_connections: 8 };
        let app = app.respawn_with_limits(limits).await;
        let addr = host_port(&app);
        let mut hogs = Vec::new();
        for i in 0..24 {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            match i % 3 {
                0 => {}
                1 => s.write_all(b"GET /healthz HT").await.unwrap(),
                _ => s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a").await.unwrap(),
            }
            hogs.push(s);
        }
        // One connection trickles a header byte every 100 ms: bytes do not
        // keep it open.
        let mut trickle = TcpStream::connect(&addr).await.unwrap();
        trickle.write_all(b"GET /healthz HTTP/1.1\r\nX-Drip: ").await.unwrap();
        let drip = tokio::spawn(async move {
            for _ in 0..100 {
                if trickle.write_all(b"a").await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        });
        // A real client gets through once the hogs are cut.
        let (status, _) = json_of(app.req(Method::GET, "/Users").send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        for mut hog in hogs {
            let got = read_until(&mut hog, Duration::from_secs(10), |_| false).await;
            assert!(got.is_some(), "an idle or slow connection stayed open");
        }
        assert!(drip.await.unwrap(), "the trickling connection was never closed");
    }

    // A declared body over the limit is refused before any of it is read.
    async fn an_oversized_content_length_is_413_at_once(app) {
        let mut s = TcpStream::connect(host_port(&app)).await.unwrap();
        let head = format!(
            "POST /scim/v2/Users HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/scim+json\r\nContent-Length: 50000000\r\n\r\n{{",
            app.token
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let raw = read_until(&mut s, Duration::from_secs(5), whole_response).await.expect("answered without waiting for the body");
        let (status, body) = status_and_body(&raw);
        assert_eq!(status, 413, "{}", String::from_utf8_lossy(&raw));
        assert_eq!(body["status"], "413", "a SCIM error body: {body}");
    }

    // Oversized headers and request targets get SCIM errors, not bare statuses.
    async fn oversized_headers_and_targets_are_scim_errors(app) {
        let resp = app.req(Method::GET, "/Users").header("x-big", "a".repeat(40 * 1024)).send().await.unwrap();
        let (status, body) = json_of(resp).await;
        assert_scim_error(status, &body, 431, None);
        let mut many = app.req(Method::GET, "/Users");
        for i in 0..150 {
            many = many.header(format!("x-h{i}"), "1");
        }
        let (status, body) = json_of(many.send().await.unwrap()).await;
        assert_scim_error(status, &body, 431, None);
        let long = format!("/Users?filter=userName%20eq%20%22{}%22", "a".repeat(40 * 1024));
        let (status, body) = json_of(app.req(Method::GET, &long).send().await.unwrap()).await;
        assert_scim_error(status, &body, 414, None);
    }

    // U+0000 in any string is 400 invalidValue, and nothing is stored.
    async fn nul_in_any_string_is_refused(app) {
        let user = app.create_user(json!({"userName": "clean"})).await;
        let uid = user["id"].as_str().unwrap();
        let group = json_of(app.send_json(Method::POST, "/Groups", &json!({"displayName": "G"})).await).await.1;
        let gid = group["id"].as_str().unwrap();
        let before = snapshot(&app).await;
        let patch = |value: Value| json!({"schemas": [PATCH_OP_URN], "Operations": [{"op": "replace", "path": "displayName", "value": value}]});
        let cases = [
            (Method::POST, "/Users".to_owned(), json!({"userName": "a\u{0}b"})),
            (Method::POST, "/Users".to_owned(), json!({"userName": "ok", "displayName": "x\u{0}"})),
            (Method::POST, "/Users".to_owned(), json!({"userName": "ok", "emails": [{"value": "a\u{0}@x.io"}]})),
            (Method::PUT, format!("/Users/{uid}"), json!({"userName": "clean", "title": "\u{0}"})),
            (Method::PATCH, format!("/Users/{uid}"), patch(json!("n\u{0}"))),
            (Method::POST, "/Groups".to_owned(), json!({"displayName": "g\u{0}"})),
            (Method::PATCH, format!("/Groups/{gid}"), patch(json!("g\u{0}"))),
        ];
        for (method, path, body) in cases {
            let (status, err) = json_of(app.send_json(method.clone(), &path, &body).await).await;
            assert_scim_error(status, &err, 400, Some("invalidValue"));
            assert_eq!(snapshot(&app).await, before, "{method} {path} stored nothing");
        }
        let resp = app.req(Method::GET, "/Users").query(&[("filter", "userName eq \"a\u{0}\"")]).send().await.unwrap();
        let (status, err) = json_of(resp).await;
        assert_scim_error(status, &err, 400, Some("invalidValue"));
        let (_, g) = json_of(app.req(Method::GET, &format!("/Groups/{gid}")).send().await.unwrap()).await;
        assert_eq!(g, group);
    }

    // A filter is bounded in comparisons: past the bound, 400 on both
    // backends (SQLite used to answer 500 from 500 `or` terms).
    async fn filters_past_the_term_limit_are_400(app) {
        // 500 terms in one value filter, within the 8 KiB length bound.
        let filter = format!("emails[{}]", vec!["value pr"; 500].join(" or "));
        let resp = app.req(Method::GET, "/Users").query(&[("filter", filter)]).send().await.unwrap();
        let (status, err) = json_of(resp).await;
        assert_scim_error(status, &err, 400, Some("invalidFilter"));
        assert!(err["detail"].as_str().unwrap().contains("comparisons"), "{err}");
        let terms: Vec<String> = (0..100).map(|i| format!("userName eq \"u{i}\"")).collect();
        let resp = app.req(Method::GET, "/Users").query(&[("filter", terms.join(" or "))]).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "100 comparisons are fine");
    }

    // A member named twice in one object, exactly or in another case, at
    // any level: 400 invalidSyntax, nothing stored.
    async fn duplicate_keys_are_invalid_syntax(app) {
        let user = app.create_user(json!({"userName": "dup"})).await;
        let before = snapshot(&app).await;
        let path = format!("/Users/{}", user["id"].as_str().unwrap());
        let cases = [
            (Method::POST, "/Users".to_owned(), r#"{"userName": "a", "userName": "b"}"#.to_owned()),
            (Method::POST, "/Users".to_owned(), r#"{"userName": "a", "USERNAME": "b"}"#.to_owned()),
            (Method::POST, "/Users".to_owned(), r#"{"userName": "a", "name": {"givenName": "x", "givenName": "y"}}"#.to_owned()),
            (Method::PUT, path.clone(), r#"{"userName": "dup", "emails": [{"value": "a@x.io", "Value": "b@x.io"}]}"#.to_owned()),
            (Method::PATCH, path.clone(), format!(r#"{{"schemas": ["{PATCH_OP_URN}"], "Operations": [{{"op": "add", "op": "remove", "path": "title"}}]}}"#)),
        ];
        for (method, path, body) in cases {
            let resp = app.req(method.clone(), &path).header("content-type", "application/scim+json").body(body.clone()).send().await.unwrap();
            let (status, err) = json_of(resp).await;
            assert_scim_error(status, &err, 400, Some("invalidSyntax"));
            assert_eq!(snapshot(&app).await, before, "{body}");
        }
    }

    // RFC 7644 §3.14: a GET whose If-None-Match names the current version
    // is 304 with the ETag and no body.
    async fn if_none_match_answers_304(app) {
        let user = app.create_user(json!({"userName": "cached"})).await;
        let path = format!("/Users/{}", user["id"].as_str().unwrap());
        let version = user["meta"]["version"].as_str().unwrap().to_owned();
        let resp = app.req(Method::GET, &path).header("if-none-match", &version).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(resp.headers()["etag"].to_str().unwrap(), version);
        assert!(resp.bytes().await.unwrap().is_empty());
        let resp = app.req(Method::GET, &path).header("if-none-match", "W/\"999\"").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let group = json_of(app.send_json(Method::POST, "/Groups", &json!({"displayName": "G"})).await).await.1;
        let resp = app.req(Method::GET, &format!("/Groups/{}", group["id"].as_str().unwrap()))
            .header("if-none-match", group["meta"]["version"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    }

    // Without SCIMD_PUBLIC_URL, Location and meta.location come from Host:
    // only a host[:port] is accepted there.
    async fn a_host_header_that_is_not_a_host_is_refused(app) {
        let resp = app.req(Method::POST, "/Users").header("host", "evil.example/phish?x=")
            .header("content-type", "application/scim+json").body(json!({"userName": "phished"}).to_string()).send().await.unwrap();
        let (status, err) = json_of(resp).await;
        assert_scim_error(status, &err, 400, Some("invalidValue"));
        assert!(snapshot(&app).await.as_array().unwrap().is_empty(), "nothing stored");
        let resp = app.req(Method::POST, "/Users").header("host", "scim.example.com:8443")
            .header("content-type", "application/scim+json").body(json!({"userName": "fine"}).to_string()).send().await.unwrap();
        let (status, user) = json_of(resp).await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(user["meta"]["location"].as_str().unwrap().starts_with("http://scim.example.com:8443/scim/v2/Users/"), "{user}");
    }

    // A multi-valued attribute holds a bounded number of values, and adding
    // many values at once is linear work that leaves other requests served.
    async fn multi_valued_attributes_are_bounded(app) {
        let user = app.create_user(json!({"userName": "many"})).await;
        let path = format!("/Users/{}", user["id"].as_str().unwrap());
        let emails: Vec<Value> = (0..30_000).map(|i| json!({"value": format!("u{i}@x.io")})).collect();
        let body = json!({"schemas": [PATCH_OP_URN], "Operations": [{"op": "add", "path": "emails", "value": emails}]});
        let big = tokio::spawn({
            let req = app.req(Method::PATCH, &path).header("content-type", "application/scim+json").body(body.to_string());
            async move { req.send().await.unwrap() }
        });
        let health = app.client.get(format!("{}/healthz", app.origin)).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        let (status, err) = json_of(big.await.unwrap()).await;
        assert_scim_error(status, &err, 400, Some("invalidValue"));
        assert_eq!(app.get_user(user["id"].as_str().unwrap()).await.1, user);
        let emails: Vec<Value> = (0..1000).map(|i| json!({"value": format!("u{i}@x.io")})).collect();
        let body = json!({"schemas": [PATCH_OP_URN], "Operations": [{"op": "add", "path": "emails", "value": emails}]});
        let (status, ok) = json_of(app.send_json(Method::PATCH, &path, &body).await).await;
        assert_eq!(status, StatusCode::OK, "{ok}");
        assert_eq!(ok["emails"].as_array().unwrap().len(), 1000);
    }

    // The statement timeout bounds one statement, not a run of them:
    // writes that keep the database busy for longer than it, each quick,
    // all succeed (on SQLite the writer connection runs them back to back,
    // many in one transaction).
    async fn sustained_writes_outlast_the_statement_timeout(app) {
        let pool = PoolConfig {
            max_connections: 4,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Some(Duration::from_millis(300)),
        };
        let app = app.respawn_custom(HttpSettings::default(), pool, ConnectionLimits::default()).await;
        let started = Instant::now();
        let mut clients = Vec::new();
        for c in 0..16 {
            let (client, base, token) = (app.client.clone(), app.base.clone(), app.token.clone());
            clients.push(tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..2_000 {
                    if started.elapsed() > Duration::from_millis(1500) {
                        break;
                    }
                    let resp = client.post(format!("{base}/Users")).bearer_auth(&token)
                        .header("content-type", "application/scim+json")
                        .body(json!({"userName": format!("busy{c}-{i}")}).to_string())
                        .send().await.unwrap();
                    statuses.push(resp.status());
                }
                statuses
            }));
        }
        let mut written = 0;
        for c in clients {
            let statuses = c.await.unwrap();
            assert!(statuses.iter().all(|s| *s == StatusCode::CREATED), "{statuses:?}");
            written += statuses.len();
        }
        assert!(started.elapsed() > Duration::from_millis(1000) && written > 100, "{written} writes");
    }

    // A filter that would run for long is stopped by the statement timeout
    // within the request timeout: cheap requests on a two-connection pool
    // keep succeeding, and no statement is left running.
    async fn a_slow_filter_is_stopped_and_starves_nobody(app) {
        let settings = HttpSettings { request_timeout: Duration::from_secs(3), ..HttpSettings::default() };
        let pool = PoolConfig {
            max_connections: 2,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Some(Duration::from_millis(2700)),
        };
        let app = app.respawn_custom(settings, pool, ConnectionLimits::default()).await;
        let cheap = app.create_user(json!({"userName": "cheap"})).await;
        let tenant = app.scope().await.tenant_id();
        let seed = match app.backend {
            crate::helpers::Backend::Postgres => format!(
                "INSERT INTO users (tenant_id, id, user_name, user_name_lower, version, created_at, modified_at, doc) \
                 SELECT '{tenant}', gen_random_uuid(), 'slow' || g, 'slow' || g, 1, now(), now(), \
                 jsonb_build_object('userName', 'slow' || g, 'emails', \
                   (SELECT jsonb_agg(jsonb_build_object('value', 'e' || j || '@example.com')) FROM generate_series(1, 1000) j)) \
                 FROM generate_series(1, 400) g"),
            crate::helpers::Backend::Sqlite => format!(
                "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 400), \
                 j(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM j WHERE k < 1000), \
                 emails(doc) AS (SELECT json_group_array(json_object('value', 'e' || k || '@example.com')) FROM j) \
                 INSERT INTO users (tenant_id, id, user_name, user_name_lower, version, created_at, modified_at, doc) \
                 SELECT '{tenant}', printf('%08x-0000-4000-8000-%012x', i, i), 'slow' || i, 'slow' || i, 1, 0, 0, \
                 json_object('userName', 'slow' || i, 'emails', json(emails.doc)) FROM g, emails"),
        };
        app.exec_sql_text(seed).await;
        let terms: Vec<String> = (0..100).map(|i| format!("emails.value co \"zz{i}\"")).collect();
        let slow_filter = terms.join(" or ");
        let started = Instant::now();
        let mut slow = Vec::new();
        for _ in 0..2 {
            let req = app.req(Method::GET, "/Users").query(&[("filter", slow_filter.as_str())]);
            slow.push(tokio::spawn(async move {
                let resp = req.send().await.unwrap();
                (resp.status(), started.elapsed())
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        for _ in 0..5 {
            let (status, body) = app.get_user(cheap["id"].as_str().unwrap()).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let ready = app.client.get(format!("{}/readyz", app.origin)).send().await.unwrap();
            assert_eq!(ready.status(), StatusCode::OK);
        }
        for t in slow {
            let (status, took) = t.await.unwrap();
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "the slow filter was stopped");
            assert!(took < Duration::from_secs(5), "it ended with the request timeout, after {took:?}");
        }
        if app.backend == crate::helpers::Backend::Postgres {
            // A cancelled statement leaves pg_stat_activity a moment after
            // its error reached the client: look again for up to 2 s.
            let mut running = -1;
            for _ in 0..20 {
                running = app.sql_i64("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                    AND state = 'active' AND pid <> pg_backend_pid() AND query ILIKE '%FROM users%'").await;
                if running == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(running, 0, "no statement is left running");
        }
    }
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

const NAMES: &[&str] = &[
    "userName",
    "USERNAME",
    "displayName",
    "emails",
    "value",
    "Operations",
    "op",
    "path",
    "schemas",
    "members",
    "name",
    "givenName",
    "active",
    "id",
    "meta",
    "\u{0}",
    "a\u{1}b",
    "",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
];

/// Random JSON text: deep nesting, duplicate keys, big arrays, control
/// characters, numbers at the edges.
fn random_json(rng: &mut Rng, depth: u32) -> String {
    let scalar = |rng: &mut Rng| -> String {
        match rng.below(8) {
            0 => "null".into(),
            1 => "true".into(),
            2 => format!("{}", rng.next() as i64),
            3 => "1e308".into(),
            4 => format!("{:?}", rng.pick(NAMES)),
            5 => "\"\\u0000\\u001f\\ud800\"".into(),
            6 => format!("\"{}\"", "x".repeat(rng.below(3000) as usize)),
            _ => "\"False\"".into(),
        }
    };
    if depth == 0 {
        return scalar(rng);
    }
    match rng.below(6) {
        0 | 1 => {
            let n = rng.below(6);
            let members: Vec<String> = (0..n)
                .map(|_| format!("{:?}: {}", rng.pick(NAMES), random_json(rng, depth - 1)))
                .collect();
            format!("{{{}}}", members.join(", "))
        }
        2 => {
            let n = if rng.below(10) == 0 {
                2000
            } else {
                rng.below(5)
            };
            let items: Vec<String> = (0..n).map(|_| random_json(rng, depth.min(1) - 1)).collect();
            format!("[{}]", items.join(","))
        }
        3 => "[".repeat(200) + &"]".repeat(200),
        _ => scalar(rng),
    }
}

both_backends! {
    // userName is unique up to case and canonical equivalence.
    async fn user_names_equal_under_nfc_are_one_name(app) {
        app.create_user(json!({"userName": "Ren\u{e9}e"})).await;
        let (status, err) = json_of(app.send_json(Method::POST, "/Users", &json!({"userName": "RENE\u{301}E"})).await).await;
        assert_scim_error(status, &err, 409, Some("uniqueness"));
        let resp = app.req(Method::GET, "/Users").query(&[("filter", "userName eq \"rene\u{301}e\"")]).send().await.unwrap();
        let (_, list) = json_of(resp).await;
        assert_eq!(list["totalResults"], 1, "{list}");
    }

    // Random bytes and hostile JSON at every write and at filters: never a
    // 5xx, the server stays healthy, and stored state changes only on a 2xx.
    async fn random_input_never_reaches_a_5xx_or_changes_state_on_failure(app) {
        let user = app.create_user(json!({"userName": "target", "emails": [{"value": "t@x.io"}]})).await;
        let uid = user["id"].as_str().unwrap().to_owned();
        let group = json_of(app.send_json(Method::POST, "/Groups", &json!({"displayName": "G"})).await).await.1;
        let gid = group["id"].as_str().unwrap().to_owned();
        let mut rng = Rng(0x5eed_1234_abcd_0042 ^ (app.backend as u64 + 1));
        let mut state = (snapshot(&app).await, json_of(app.req(Method::GET, &format!("/Groups/{gid}")).send().await.unwrap()).await.1);
        for round in 0..250 {
            let body = match rng.below(4) {
                0 => (0..rng.below(200)).map(|_| rng.next() as u8).collect::<Vec<u8>>(),
                1 => format!("{{\"schemas\": [\"{PATCH_OP_URN}\"], \"Operations\": [{{\"op\": {:?}, \"path\": {:?}, \"value\": {}}}]}}",
                    rng.pick(&["add", "Replace", "remove", "bogus"]), rng.pick(&["emails", "members", "name.givenName", "emails[value eq \"t@x.io\"]", "x[", ""]),
                    random_json(&mut rng, 3)).into_bytes(),
                _ => random_json(&mut rng, 4).into_bytes(),
            };
            let (method, path) = match rng.below(5) {
                0 => (Method::POST, "/Users".to_owned()),
                1 => (Method::PUT, format!("/Users/{uid}")),
                2 => (Method::PATCH, format!("/Users/{uid}")),
                3 => (Method::PATCH, format!("/Groups/{gid}")),
                _ => (Method::POST, "/Groups".to_owned()),
            };
            let resp = app.req(method.clone(), &path).header("content-type", "application/scim+json").body(body.clone()).send().await.unwrap();
            let status = resp.status();
            assert!(!status.is_server_error(), "round {round}: {method} {path} answered {status} to {}", String::from_utf8_lossy(&body));
            let filter: String = (0..rng.below(60)).map(|_| char::from_u32(rng.below(0x250) as u32).unwrap_or(' ')).collect();
            let resp = app.req(Method::GET, "/Users").query(&[("filter", filter.as_str())]).send().await.unwrap();
            assert!(!resp.status().is_server_error(), "round {round}: filter {filter:?} answered {}", resp.status());
            let now = (snapshot(&app).await, json_of(app.req(Method::GET, &format!("/Groups/{gid}")).send().await.unwrap()).await.1);
            if !status.is_success() {
                assert_eq!(now, state, "round {round}: a {status} changed stored state");
            }
            state = now;
        }
        let health = app.client.get(format!("{}/readyz", app.origin)).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
    }
}
