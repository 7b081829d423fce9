//! Queries: the filter parser corpus, SQL-vs-evaluator agreement on both
//! backends, filters/sorting/paging/projection/.search over HTTP, and the
//! PostgreSQL index check.

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, assert_scim_error, json_of};
use scimd::scim::filter::{self, Filter, Scope, parse_filter};
use scimd::scim::resource::{self, Meta};
use scimd::scim::schema::USER_RESOURCE;
use scimd::store::UserWrite;
use scimd::store::query::ListQuery;

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[derive(Deserialize)]
struct ParserCase {
    filter: String,
    #[serde(default)]
    ast: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[test]
fn parser_corpus() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filter_corpus/parser.json");
    let cases: Vec<ParserCase> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(cases.len() >= 80, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        match (parse_filter(&c.filter), &c.ast, &c.error) {
            (Ok(f), Some(want), None) => {
                let got = f.to_string();
                if &got != want {
                    failures.push(format!("{:?}: rendered {got:?}, want {want:?}", c.filter));
                } else if parse_filter(&got).ok().as_ref() != Some(&f) {
                    failures.push(format!("{:?}: the rendering does not parse back", c.filter));
                }
            }
            (Err(e), None, Some(want)) => {
                if !e.to_string().contains(want.as_str()) {
                    failures.push(format!(
                        "{:?}: error {e:?}, want one mentioning {want:?}",
                        c.filter
                    ));
                }
            }
            (Ok(f), None, Some(_)) => {
                failures.push(format!("{:?}: parsed as {f}, want an error", c.filter))
            }
            (Err(e), Some(_), None) => failures.push(format!("{:?}: {e}", c.filter)),
            _ => failures.push(format!(
                "{:?}: needs exactly one of ast and error",
                c.filter
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A small, seeded PRNG (xorshift64*): reproducible cases without a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const WORDS: &[&str] = &[
    "ann", "Ann", "bob", "BOB", "carol", "dave", "Eve", "x", "ab", "Abc", "zed", "",
];
const DOMAINS: &[&str] = &["example.com", "Example.org", "corp.io"];

fn random_user(rng: &mut Rng, i: usize) -> Value {
    let mut u = serde_json::Map::new();
    u.insert("userName".into(), json!(format!("{}{i}", rng.pick(WORDS))));
    for (attr, percent) in [
        ("displayName", 60),
        ("title", 50),
        ("nickName", 30),
        ("userType", 40),
    ] {
        if rng.chance(percent) {
            u.insert(attr.into(), json!(rng.pick(WORDS)));
        }
    }
    if rng.chance(70) {
        u.insert("active".into(), json!(rng.chance(50)));
    }
    if rng.chance(60) {
        u.insert(
            "externalId".into(),
            json!(format!("{}-{}", rng.pick(WORDS), rng.below(5))),
        );
    }
    if rng.chance(70) {
        let mut name = serde_json::Map::new();
        if rng.chance(80) {
            name.insert("givenName".into(), json!(rng.pick(WORDS)));
        }
        if rng.chance(80) {
            name.insert("familyName".into(), json!(rng.pick(WORDS)));
        }
        u.insert("name".into(), Value::Object(name));
    }
    if rng.chance(75) {
        let n = 1 + rng.below(3);
        let mut emails = Vec::new();
        let primary = rng.below(n + 1);
        for k in 0..n {
            let mut e = serde_json::Map::new();
            if rng.chance(90) {
                e.insert(
                    "value".into(),
                    json!(format!("{}{k}@{}", rng.pick(WORDS), rng.pick(DOMAINS))),
                );
            }
            if rng.chance(70) {
                e.insert(
                    "type".into(),
                    json!(*rng.pick(&["work", "home", "Work", "other"])),
                );
            }
            if k == primary {
                e.insert("primary".into(), json!(true));
            } else if rng.chance(30) {
                e.insert("primary".into(), json!(false));
            }
            emails.push(Value::Object(e));
        }
        u.insert("emails".into(), Value::Array(emails));
    }
    if rng.chance(40) {
        let mut ext = serde_json::Map::new();
        ext.insert("department".into(), json!(rng.pick(WORDS)));
        if rng.chance(50) {
            ext.insert("manager".into(), json!({"value": rng.pick(WORDS)}));
        }
        u.insert(ENT.into(), Value::Object(ext));
    }
    Value::Object(u)
}

const STRING_PATHS: &[&str] = &[
    "userName",
    "displayName",
    "title",
    "nickName",
    "userType",
    "externalId",
    "name.givenName",
    "name.familyName",
    "emails",
    "emails.value",
    "emails.type",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "schemas",
    "id",
    "meta.resourceType",
];
const PRESENT_PATHS: &[&str] = &[
    "title",
    "name",
    "name.givenName",
    "emails",
    "emails.value",
    "emails.primary",
    "active",
    "externalId",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "displayName",
    "nickName",
    "meta.created",
];

fn random_literal(rng: &mut Rng) -> String {
    let base = match rng.below(6) {
        0 => rng.pick(DOMAINS).to_string(),
        1 => "@".to_owned(),
        2 => "work".to_owned(),
        3 => ENT.to_owned(),
        4 => "User".to_owned(),
        _ => rng.pick(WORDS).to_string(),
    };
    json!(base).to_string()
}

fn random_filter(rng: &mut Rng, depth: usize, created: &[String]) -> String {
    let leaf = |rng: &mut Rng| -> String {
        match rng.below(9) {
            0 => format!("{} pr", rng.pick(PRESENT_PATHS)),
            1 => format!(
                "active {} {}",
                rng.pick(&["eq", "ne"]),
                rng.pick(&["true", "false", "null"])
            ),
            2 => format!("emails.primary eq {}", rng.pick(&["true", "false"])),
            3 => {
                let ts = rng.pick(created).clone();
                format!(
                    "meta.{} {} \"{ts}\"",
                    rng.pick(&["created", "lastModified"]),
                    rng.pick(&["eq", "ne", "gt", "ge", "lt", "le"])
                )
            }
            4 => format!(
                "emails[{} {} {}{}]",
                rng.pick(&["type", "value"]),
                rng.pick(&["eq", "co", "sw", "ew", "ne"]),
                random_literal(rng),
                if rng.chance(40) {
                    " and primary eq true"
                } else {
                    ""
                }
            ),
            5 => format!("{} eq null", rng.pick(PRESENT_PATHS)),
            _ => format!(
                "{} {} {}",
                rng.pick(STRING_PATHS),
                rng.pick(&["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]),
                random_literal(rng)
            ),
        }
    };
    if depth == 0 || rng.chance(35) {
        return leaf(rng);
    }
    match rng.below(3) {
        0 => format!(
            "({} and {})",
            random_filter(rng, depth - 1, created),
            random_filter(rng, depth - 1, created)
        ),
        1 => format!(
            "({} or {})",
            random_filter(rng, depth - 1, created),
            random_filter(rng, depth - 1, created)
        ),
        _ => format!("not ({})", random_filter(rng, depth - 1, created)),
    }
}

both_backends! {
    async fn sql_agrees_with_the_evaluator_on_random_filters(app) {
        let scope = app.scope().await;
        let mut rng = Rng(0x5eed_cafe_f00d_0001);
        let mut users = Vec::new();
        for i in 0..60 {
            let doc = resource::normalize(&USER_RESOURCE, random_user(&mut rng, i)).unwrap();
            users.push(app.store.create_user(scope, &UserWrite::from_doc(doc), None).await.unwrap());
        }
        let rendered: Vec<(String, serde_json::Map<String, Value>)> = users
            .iter()
            .map(|u| {
                let meta = Meta { resource_type: "User", created: u.created, last_modified: u.modified, location: String::new(), version: u.version };
                let Value::Object(m) = resource::render(&USER_RESOURCE, u.doc.clone(), &u.id.to_string(), &meta) else { unreachable!() };
                (u.id.to_string(), m)
            })
            .collect();
        let created: Vec<String> = rendered.iter().map(|(_, r)| r["meta"]["created"].as_str().unwrap().to_owned()).collect();
        let mut checked = 0;
        let mut nonempty = 0;
        for round in 0..400 {
            let mut text = random_filter(&mut rng, 3, &created);
            if round % 7 == 0 {
                text = format!("userName eq {}", json!(rendered[round % rendered.len()].1["userName"].as_str().unwrap().to_uppercase()));
            }
            let f: Filter = parse_filter(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            if filter::validate(&f, Scope::Resource(&USER_RESOURCE)).is_err() {
                continue;
            }
            let want: BTreeSet<String> = rendered
                .iter()
                .filter(|(_, r)| filter::matches(&f, r, Scope::Resource(&USER_RESOURCE)).unwrap())
                .map(|(id, _)| id.clone())
                .collect();
            let q = ListQuery { filter: Some(f), sort: None, offset: 0, limit: 1000, keyset: None };
            let (total, got) = app.store.query_users(scope, &q).await.unwrap_or_else(|e| panic!("{text}: {e}"));
            let got: BTreeSet<String> = got.iter().map(|u| u.id.to_string()).collect();
            assert_eq!(got, want, "filter {text}");
            assert_eq!(total, Some(want.len() as u64), "count for {text}");
            checked += 1;
            if !want.is_empty() && want.len() < rendered.len() {
                nonempty += 1;
            }
        }
        assert!(checked > 300 && nonempty > 100, "checked {checked}, selective {nonempty}");
    }
}

/// `GET /Users?filter=…` → the userNames found, in response order.
async fn find(app: &TestApp, query: &str) -> Vec<String> {
    let resp = app
        .req(Method::GET, "/Users")
        .query(&[("filter", query), ("count", "1000")])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    let names: Vec<String> = body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        body["totalResults"].as_u64(),
        Some(names.len() as u64),
        "{query}"
    );
    names
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn three_users(app: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    for body in [
        json!({"userName": "Alice", "name": {"givenName": "Alice", "familyName": "Zephyr"}, "title": "Engineer", "active": true,
               "externalId": "EXT-1", "displayName": "Alice Z", "emails": [{"value": "Alice@Example.com", "type": "work", "primary": true}]}),
        json!({"userName": "bob", "name": {"familyName": "Young"}, "active": false, "externalId": "ext-2", "displayName": "Bob Y",
               "emails": [{"value": "bob@corp.io", "type": "home"}], ENT: {"department": "Sales"}}),
        json!({"userName": "carol", "name": {"familyName": "Xavier"}}),
    ] {
        out.push(app.create_user(body).await);
        // Distinct millisecond timestamps, for the dateTime comparisons.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    out
}

both_backends! {
    async fn filters_over_http(app) {
        let users = three_users(&app).await;
        let alice_id = users[0]["id"].as_str().unwrap();
        let cases: Vec<(String, &[&str])> = vec![
            ("userName eq \"ALICE\"".into(), &["Alice"]),
            ("userName ne \"alice\"".into(), &["bob", "carol"]),
            ("userName co \"LI\"".into(), &["Alice"]),
            ("userName sw \"B\"".into(), &["bob"]),
            ("userName ew \"OL\"".into(), &["carol"]),
            ("userName gt \"bob\"".into(), &["carol"]),
            ("userName ge \"bob\"".into(), &["bob", "carol"]),
            ("userName lt \"bob\"".into(), &["Alice"]),
            ("userName le \"BOB\"".into(), &["Alice", "bob"]),
            ("emails.value eq \"alice@example.COM\"".into(), &["Alice"]),
            ("emails[value eq \"ALICE@example.com\"]".into(), &["Alice"]),
            ("emails co \"corp\"".into(), &["bob"]),
            ("emails[type eq \"work\" and value co \"example\"]".into(), &["Alice"]),
            ("emails[type eq \"home\"] or title pr".into(), &["Alice", "bob"]),
            (format!("id eq \"{alice_id}\""), &["Alice"]),
            (format!("id eq \"{}\"", alice_id.to_uppercase()), &[]),
            ("externalId eq \"ext-1\"".into(), &[]),
            ("externalId eq \"EXT-1\"".into(), &["Alice"]),
            ("displayName eq \"bob y\"".into(), &["bob"]),
            ("not (active eq true)".into(), &["bob", "carol"]),
            ("active eq false".into(), &["bob"]),
            ("title pr".into(), &["Alice"]),
            ("name pr".into(), &["Alice", "bob", "carol"]),
            ("name.givenName pr".into(), &["Alice"]),
            ("emails pr".into(), &["Alice", "bob"]),
            ("not (emails pr)".into(), &["carol"]),
            (format!("{ENT}:department eq \"sales\""), &["bob"]),
            (format!("schemas eq \"{ENT}\""), &["bob"]),
            ("meta.resourceType eq \"User\"".into(), &["Alice", "bob", "carol"]),
            ("name.familyName sw \"x\" or name.familyName sw \"y\"".into(), &["bob", "carol"]),
            (format!("meta.lastModified gt \"{}\"", users[0]["meta"]["lastModified"].as_str().unwrap()), &["bob", "carol"]),
            (format!("meta.lastModified le \"{}\"", users[1]["meta"]["lastModified"].as_str().unwrap()), &["Alice", "bob"]),
            (format!("meta.created lt \"{}\"", users[2]["meta"]["created"].as_str().unwrap().replace('Z', "+00:00")), &["Alice", "bob"]),
            // Entra's Test Connection: a random GUID finds nobody, and that is a 200.
            (format!("userName eq \"{}\"", uuid::Uuid::new_v4()), &[]),
        ];
        for (q, want) in cases {
            let got: BTreeSet<String> = find(&app, &q).await.into_iter().collect();
            assert_eq!(got, set(want), "{q}");
        }
        for (bad, why) in [("userName eq", "invalid filter"), ("favouriteColour eq \"blue\"", "not an attribute"), ("active gt true", "booleans"), ("meta.lastModified gt \"yesterday\"", "dateTime")] {
            let resp = app.req(Method::GET, "/Users").query(&[("filter", bad)]).send().await.unwrap();
            let (status, err) = json_of(resp).await;
            assert_scim_error(status, &err, 400, Some("invalidFilter"));
            assert!(err["detail"].as_str().unwrap().contains(why), "{bad}: {err}");
        }
    }

    async fn sorting_over_http(app) {
        three_users(&app).await;
        let sorted = |by: &'static str, order: &'static str| {
            let app = &app;
            async move {
                let resp = app.req(Method::GET, "/Users").query(&[("sortBy", by), ("sortOrder", order)]).send().await.unwrap();
                let (status, body) = json_of(resp).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                body["Resources"].as_array().unwrap().iter().map(|r| r["userName"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
            }
        };
        assert_eq!(sorted("userName", "ascending").await, ["Alice", "bob", "carol"]);
        assert_eq!(sorted("userName", "descending").await, ["carol", "bob", "Alice"]);
        assert_eq!(sorted("name.familyName", "ascending").await, ["carol", "bob", "Alice"]);
        assert_eq!(sorted("name.familyName", "DESCENDING").await, ["Alice", "bob", "carol"]);
        assert_eq!(sorted("meta.created", "descending").await, ["carol", "bob", "Alice"]);
        assert_eq!(sorted("meta.created", "").await, ["Alice", "bob", "carol"]);
        // Missing values sort last, either way.
        assert_eq!(sorted("title", "descending").await[0], "Alice");
        assert_eq!(sorted("emails", "ascending").await, ["Alice", "bob", "carol"]);
        let resp = app.req(Method::GET, "/Users").query(&[("sortBy", "nosuch")]).send().await.unwrap();
        let (status, err) = json_of(resp).await;
        assert_scim_error(status, &err, 400, Some("invalidValue"));
        let resp = app.req(Method::GET, "/Users").query(&[("sortBy", "userName"), ("sortOrder", "sideways")]).send().await.unwrap();
        let (status, err) = json_of(resp).await;
        assert_scim_error(status, &err, 400, Some("invalidValue"));
    }

    async fn paging_250_users_never_repeats_or_skips(app) {
        let mut tasks = Vec::new();
        for i in 0..250 {
            let req = app.req(Method::POST, "/Users").json(&json!({"userName": format!("u{:03}", (i * 7919) % 1000)}));
            tasks.push(tokio::spawn(async move { req.send().await.unwrap().status() }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), StatusCode::CREATED);
        }
        for sort in [None, Some("userName")] {
            let mut seen = Vec::new();
            for (start, want_items) in [(1, 100), (101, 100), (201, 50)] {
                let mut q = vec![("startIndex", start.to_string()), ("count", "100".to_owned())];
                if let Some(s) = sort {
                    q.push(("sortBy", s.to_owned()));
                }
                let (status, page) = json_of(app.req(Method::GET, "/Users").query(&q).send().await.unwrap()).await;
                assert_eq!(status, StatusCode::OK);
                assert_eq!(page["totalResults"], 250);
                assert_eq!(page["startIndex"], start);
                assert_eq!(page["itemsPerPage"], want_items);
                seen.extend(page["Resources"].as_array().unwrap().iter().map(|r| r["userName"].as_str().unwrap().to_owned()));
            }
            let unique: BTreeSet<&String> = seen.iter().collect();
            assert_eq!((seen.len(), unique.len()), (250, 250), "no repeats, no gaps ({sort:?})");
            if sort.is_some() {
                let mut sorted = seen.clone();
                sorted.sort();
                assert_eq!(seen, sorted);
            }
        }
        let (_, over) = json_of(app.req(Method::GET, "/Users?count=100000").send().await.unwrap()).await;
        assert_eq!(over["itemsPerPage"], 250, "count is clamped to maxResults (1000), not an error");
    }

    async fn search_endpoint(app) {
        three_users(&app).await;
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "attributes": ["userName", "name.familyName"],
            "filter": "name.familyName pr and not (userName eq \"carol\")",
            "sortBy": "name.familyName", "sortOrder": "descending",
            "startIndex": 1, "count": 10
        });
        let (status, list) = json_of(app.send_json(Method::POST, "/Users/.search", &body).await).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list["totalResults"], 2);
        let r = &list["Resources"];
        assert_eq!(r[0]["userName"], "Alice");
        assert_eq!(r[0]["name"], json!({"familyName": "Zephyr"}));
        assert!(r[0].get("emails").is_none() && r[0].get("meta").is_none());
        assert_eq!(r[1]["userName"], "bob");
        let (status, err) = json_of(app.send_json(Method::POST, "/Users/.search", &json!({"filter": "userName xx \"a\""})).await).await;
        assert_scim_error(status, &err, 400, Some("invalidFilter"));
        let (status, all) = json_of(app.send_json(Method::POST, "/Users/.search", &json!({})).await).await;
        assert_eq!((status, all["totalResults"].as_u64()), (StatusCode::OK, Some(3)));
    }
}

/// On a 100k-user tenant, the lookups clients send on every sync use
/// indexes: no sequential scan of users.
#[tokio::test]
async fn postgres_serves_sync_lookups_from_indexes() {
    let Some(app) = TestApp::spawn_postgres().await else {
        return;
    };
    assert_eq!(app.backend, Backend::Postgres);
    let scope = app.scope().await;
    let scimd::store::Store::Postgres(pg) = &app.store else {
        unreachable!()
    };
    sqlx::query(
        "INSERT INTO users (tenant_id, id, user_name, user_name_lower, external_id, active, display_name, display_name_lower, \
         version, created_at, modified_at, doc, email_keys) \
         SELECT $1, gen_random_uuid(), 'user' || g, 'user' || g, 'ext' || g, true, 'User ' || g, 'user ' || g, 1, \
                now() - interval '1 day', now() - interval '1 day' + g * interval '1 ms', \
                jsonb_build_object('userName', 'user' || g, 'emails', jsonb_build_array(jsonb_build_object('value', 'user' || g || '@example.com', 'type', 'work'))), \
                ARRAY[$1::text || ':user' || g || '@example.com'] \
         FROM generate_series(1, 100000) g",
    )
    .bind(scope.tenant_id())
    .execute(&mut *pg.lease().await.unwrap())
    .await
    .unwrap();
    sqlx::query("ANALYZE users")
        .execute(&mut *pg.lease().await.unwrap())
        .await
        .unwrap();
    let recent = (chrono::Utc::now() - chrono::TimeDelta::minutes(1)).to_rfc3339();
    let some_id = sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM users LIMIT 1")
        .fetch_one(&mut *pg.lease().await.unwrap())
        .await
        .unwrap();
    for (shape, index) in [
        (
            "userName eq \"user4242\"".to_owned(),
            "users_user_name_lower_key",
        ),
        ("externalId eq \"ext4242\"".to_owned(), "users_external_id"),
        (format!("id eq \"{some_id}\""), "users_pkey"),
        (
            "emails.value eq \"user4242@example.com\"".to_owned(),
            "users_email_keys",
        ),
        (
            "emails[value eq \"USER4242@example.com\"]".to_owned(),
            "users_email_keys",
        ),
        (
            "emails[type eq \"work\" and value eq \"user4242@example.com\"]".to_owned(),
            "users_email_keys",
        ),
        (
            "displayName eq \"User 4242\"".to_owned(),
            "users_display_name_lower",
        ),
        (
            format!("meta.lastModified gt \"{recent}\""),
            "users_modified_at",
        ),
        (
            "userName eq \"user4242\" and active eq true".to_owned(),
            "users_user_name_lower_key",
        ),
    ] {
        let q = ListQuery {
            filter: Some(parse_filter(&shape).unwrap()),
            sort: None,
            offset: 0,
            limit: 100,
            keyset: None,
        };
        for plan in pg.explain_users(scope, &q).await.unwrap() {
            assert!(!plan.contains("Seq Scan on users"), "{shape}:\n{plan}");
            assert!(plan.contains(index), "{shape} uses {index}:\n{plan}");
            eprintln!("{shape}:\n{plan}\n");
        }
    }
    // A cursor page reads its rows in key order from the cursor on and stops
    // after one page: no count of the rest, no sort, so the first page of
    // 100,000 users costs what the last does.
    for keyset in [
        scimd::store::query::Keyset::After(uuid::Uuid::nil()),
        scimd::store::query::Keyset::Before(uuid::Uuid::max()),
    ] {
        let q = ListQuery {
            filter: None,
            sort: None,
            offset: 0,
            limit: 101,
            keyset: Some(keyset),
        };
        let plans = pg.explain_users(scope, &q).await.unwrap();
        let page = &plans[1];
        assert!(
            page.contains("Index Scan") && page.contains("users_pkey"),
            "{keyset:?}:\n{page}"
        );
        for slow in ["WindowAgg", "Sort", "Seq Scan"] {
            assert!(!page.contains(slow), "{keyset:?} has no {slow}:\n{page}");
        }
    }
}
