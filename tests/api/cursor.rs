//! Cursor pagination (RFC 9865) on both backends.

use std::collections::BTreeSet;

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, assert_scim_error, json_of};
use scimd::scim::resource;
use scimd::scim::schema::USER_RESOURCE;
use scimd::store::UserWrite;

async fn seed(app: &TestApp, n: usize, prefix: &str) -> Vec<String> {
    let scope = app.scope().await;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let doc = resource::normalize(
            &USER_RESOURCE,
            json!({"userName": format!("{prefix}{i:05}")}),
        )
        .unwrap();
        ids.push(
            app.store
                .create_user(scope, &UserWrite::from_doc(doc), None)
                .await
                .unwrap()
                .id
                .to_string(),
        );
    }
    ids
}

async fn page(app: &TestApp, query: &[(&str, &str)]) -> Value {
    let (status, body) = json_of(
        app.req(Method::GET, "/Users")
            .query(query)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn ids_of(page: &Value) -> Vec<String> {
    page["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

both_backends! {
    async fn walking_2500_users_by_cursor_sees_each_once_even_with_inserts(app) {
        let seeded = seed(&app, 2500, "c").await;
        let mut seen = Vec::new();
        let mut cursor = String::new();
        let mut pages = 0;
        loop {
            let p = page(&app, &[("cursor", cursor.as_str()), ("count", "100"), ("attributes", "userName")]).await;
            assert!(p.get("startIndex").is_none(), "cursor pages carry no startIndex");
            assert_eq!(p.get("previousCursor").is_some(), pages > 0, "previousCursor on every page but the first");
            seen.extend(ids_of(&p));
            pages += 1;
            // Concurrent writers: new users arrive while the walk goes on.
            if pages == 5 {
                seed(&app, 30, "late").await;
            }
            match p.get("nextCursor").and_then(Value::as_str) {
                Some(next) => {
                    assert!(next.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)), "{next}");
                    cursor = next.to_owned();
                }
                None => break,
            }
            assert!(pages < 100, "the walk ends");
        }
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "no repeats");
        for id in &seeded {
            assert!(unique.contains(id), "no gaps: {id}");
        }
        assert_eq!(seen.len(), 2530, "users created during the walk come at its end");
        assert_eq!(seen[..2500], seeded[..], "creation order");
    }

    async fn previous_cursor_walks_back(app) {
        let seeded = seed(&app, 25, "b").await;
        let first = page(&app, &[("cursor", ""), ("count", "10")]).await;
        let second = page(&app, &[("cursor", first["nextCursor"].as_str().unwrap()), ("count", "10")]).await;
        let third = page(&app, &[("cursor", second["nextCursor"].as_str().unwrap()), ("count", "10")]).await;
        assert_eq!(ids_of(&third), seeded[20..]);
        assert!(third.get("nextCursor").is_none(), "the last page has no nextCursor");
        let back = page(&app, &[("cursor", third["previousCursor"].as_str().unwrap()), ("count", "10")]).await;
        assert_eq!(ids_of(&back), seeded[10..20]);
        let back2 = page(&app, &[("cursor", back["previousCursor"].as_str().unwrap()), ("count", "10")]).await;
        assert_eq!(ids_of(&back2), seeded[..10]);
        assert!(back2.get("previousCursor").is_none(), "nothing before the first page");
        assert_eq!(back2["nextCursor"], first["nextCursor"]);
        // With a filter, and through .search.
        let filtered = page(&app, &[("cursor", ""), ("count", "3"), ("filter", "userName sw \"b0001\"")]).await;
        assert_eq!(ids_of(&filtered), seeded[10..13]);
        let (status, s) = json_of(app.send_json(Method::POST, "/Users/.search", &json!({"cursor": "", "count": 20})).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ids_of(&s), seeded[..20]);
        assert!(s["nextCursor"].is_string());
    }

    async fn bad_cursors_are_refused(app) {
        seed(&app, 3, "x").await;
        for bad in ["nonsense", "bjEyMw", "%%%"] {
            let (status, err) = json_of(app.req(Method::GET, "/Users").query(&[("cursor", bad)]).send().await.unwrap()).await;
            assert_scim_error(status, &err, 400, Some("invalidCursor"));
        }
        // A cursor naming a real id, in the unsigned form scimd once issued:
        // made up, so refused.
        let first = page(&app, &[("cursor", ""), ("count", "1")]).await;
        let id = ids_of(&first)[0].clone();
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("n{id}"));
        let (status, err) = json_of(app.req(Method::GET, "/Users").query(&[("cursor", forged.as_str())]).send().await.unwrap()).await;
        assert_scim_error(status, &err, 400, Some("invalidCursor"));
        // Another server of the same deployment (same database) accepts it.
        let next = first["nextCursor"].as_str().unwrap();
        let other = app.second_server().await;
        let resp = app.client.get(format!("{other}/scim/v2/Users")).bearer_auth(&app.token).query(&[("cursor", next), ("count", "1")]).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        // Another deployment does not.
        let elsewhere = app.respawn(scimd::HttpSettings::default()).await;
        let (status, err) = json_of(elsewhere.req(Method::GET, "/Users").query(&[("cursor", next)]).send().await.unwrap()).await;
        assert_scim_error(status, &err, 400, Some("invalidCursor"));
        let (status, err) = json_of(app.req(Method::GET, "/Users").query(&[("cursor", ""), ("sortBy", "userName")]).send().await.unwrap()).await;
        assert_scim_error(status, &err, 400, Some("invalidValue"));
        let (_, spc) = json_of(app.req(Method::GET, "/ServiceProviderConfig").send().await.unwrap()).await;
        assert_eq!(spc["pagination"]["cursor"], true);
        assert_eq!(spc["pagination"]["index"], true);
        assert_eq!(spc["pagination"]["defaultPaginationMethod"], "index");
    }
}
