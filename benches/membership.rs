//! Membership benchmark: does a group member add, a member remove and
//! Entra ID's membership query cost the same at 100 and at 100,000 members?
//!
//! `cargo bench --bench membership` (PostgreSQL from TEST_DATABASE_URL, else
//! 127.0.0.1:5432; SQLite in a temporary file). `MEMBERS=…` and `ROUNDS=…`
//! change the sizes. Prints, per backend and group size, the median and p95
//! latency of each operation over real HTTP, and the large/small ratio.

use std::time::{Duration, Instant};

use scimd::admin;
use scimd::auth::TENANT_ADMIN;
use scimd::store::{PoolConfig, Store};
use scimd::{AppState, HttpSettings, app};
use serde_json::{Value, json};
use sqlx::Connection;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Bench {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Bench {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> (u16, Duration) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token));
        if let Some(b) = body {
            req = req.header("content-type", "application/scim+json").body(b);
        }
        let start = Instant::now();
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let _ = resp.bytes().await;
        (status, start.elapsed())
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

async fn setup(
    url: &str,
    users: usize,
    sizes: &[usize],
) -> (Bench, Vec<(usize, String)>, Vec<String>) {
    let store = Store::connect(
        url,
        &PoolConfig {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(30),
            statement_timeout: None,
        },
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let project = admin::create_project(&store, None, "bench").await.unwrap();
    let tenant = admin::create_tenant(&store, &project.id, "bench")
        .await
        .unwrap();
    let key = admin::create_key(&store, &project.id, "bench", TENANT_ADMIN, None, None)
        .await
        .unwrap();
    let t = tenant.id;
    // Users in bulk, straight into the table (the HTTP path is not what is measured).
    match &store {
        Store::Postgres(pg) => {
            sqlx::query(
                "INSERT INTO users (tenant_id, id, user_name, user_name_lower, version, created_at, modified_at, doc, display_name, display_name_lower) \
                 SELECT $1, gen_random_uuid(), 'u' || g, 'u' || g, 1, now(), now(), jsonb_build_object('userName', 'u' || g, 'schemas', jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:User')), 'U ' || g, 'u ' || g \
                 FROM generate_series(1, $2) g",
            )
            .bind(t)
            .bind(users as i64)
            .execute(&mut *pg.lease().await.unwrap())
            .await
            .unwrap();
        }
        Store::Sqlite(lite) => {
            sqlx::query(
                "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $2) \
                 INSERT INTO users (tenant_id, id, user_name, user_name_lower, version, created_at, modified_at, doc, display_name, display_name_lower) \
                 SELECT $1, printf('%08x-0000-4000-8000-%012x', n, n), 'u' || n, 'u' || n, 1, 0, 0, \
                        json_object('userName', 'u' || n, 'schemas', json_array('urn:ietf:params:scim:schemas:core:2.0:User')), 'U ' || n, 'u ' || n \
                 FROM seq",
            )
            .bind(t.to_string())
            .bind(users as i64)
            .execute(lite.pool())
            .await
            .unwrap();
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = HttpSettings {
        max_results: 1000,
        ..HttpSettings::default()
    };
    let state = AppState::open(store.clone(), settings, Duration::from_secs(5))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });
    let bench = Bench {
        client: reqwest::Client::new(),
        base: format!("http://{addr}/scim/v2"),
        token: key.token,
    };
    let mut groups = Vec::new();
    for &size in sizes {
        let (status, _) = bench
            .send(
                reqwest::Method::POST,
                "/Groups",
                Some(json!({"displayName": format!("g{size}")}).to_string()),
            )
            .await;
        assert_eq!(status, 201);
        let (_, body) = {
            let resp = bench
                .client
                .get(format!(
                    "{}/Groups?filter=displayName%20eq%20%22g{size}%22&excludedAttributes=members",
                    bench.base
                ))
                .header("authorization", format!("Bearer {}", bench.token))
                .send()
                .await
                .unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        };
        let gid = body["Resources"][0]["id"].as_str().unwrap().to_owned();
        // Members in bulk: the first `size` users.
        match &store {
            Store::Postgres(pg) => {
                sqlx::query("INSERT INTO group_members SELECT $1, $2::uuid, id, 'User' FROM users WHERE tenant_id = $1 ORDER BY user_name LIMIT $3")
                    .bind(t).bind(&gid).bind(size as i64).execute(&mut *pg.lease().await.unwrap()).await.unwrap();
                sqlx::query("ANALYZE")
                    .execute(&mut *pg.lease().await.unwrap())
                    .await
                    .unwrap();
            }
            Store::Sqlite(lite) => {
                sqlx::query("INSERT INTO group_members SELECT $1, $2, id, 'User' FROM users WHERE tenant_id = $1 ORDER BY user_name LIMIT $3")
                    .bind(t.to_string()).bind(&gid).bind(size as i64).execute(lite.pool()).await.unwrap();
                sqlx::query("ANALYZE").execute(lite.pool()).await.unwrap();
            }
        }
        groups.push((size, gid));
    }
    // Users that are in no group yet: the ones added and removed.
    let (_, newest) = {
        let resp = bench
            .client
            .get(format!(
                "{}/Users?sortBy=userName&sortOrder=descending&count=50&attributes=id",
                bench.base
            ))
            .header("authorization", format!("Bearer {}", bench.token))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap())
    };
    let spare: Vec<String> = newest["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    (bench, groups, spare)
}

async fn run(label: &str, url: &str, users: usize, sizes: &[usize], rounds: usize) {
    let (bench, groups, spare) = setup(url, users, sizes).await;
    println!(
        "\n{label}: {users} users; {rounds} rounds per operation; latency over HTTP on loopback"
    );
    println!(
        "{:<28} {:>10} {:>12} {:>12}",
        "operation", "members", "median µs", "p95 µs"
    );
    let mut medians: Vec<(String, usize, Duration)> = Vec::new();
    for (size, gid) in &groups {
        let mut add = Vec::new();
        let mut remove = Vec::new();
        let mut query = Vec::new();
        for i in 0..rounds {
            let uid = &spare[i % spare.len()];
            let body = format!(
                r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{{"op":"Add","path":"members","value":[{{"$ref":null,"value":"{uid}"}}]}}]}}"#
            );
            let (s, d) = bench
                .send(
                    reqwest::Method::PATCH,
                    &format!("/Groups/{gid}"),
                    Some(body),
                )
                .await;
            assert_eq!(s, 204);
            add.push(d);
            let q = format!(
                "/Groups?filter=id%20eq%20%22{gid}%22%20and%20members%5Bvalue%20eq%20%22{uid}%22%5D&excludedAttributes=members"
            );
            let (s, d) = bench.send(reqwest::Method::GET, &q, None).await;
            assert_eq!(s, 200);
            query.push(d);
            let body = format!(
                r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{{"op":"Remove","path":"members","value":[{{"$ref":null,"value":"{uid}"}}]}}]}}"#
            );
            let (s, d) = bench
                .send(
                    reqwest::Method::PATCH,
                    &format!("/Groups/{gid}"),
                    Some(body),
                )
                .await;
            assert_eq!(s, 204);
            remove.push(d);
        }
        for (name, samples) in [
            ("PATCH add member", &mut add),
            ("PATCH remove member", &mut remove),
            ("GET membership query", &mut query),
        ] {
            let median = percentile(samples, 0.5);
            let p95 = percentile(samples, 0.95);
            println!(
                "{name:<28} {size:>10} {:>12} {:>12}",
                median.as_micros(),
                p95.as_micros()
            );
            medians.push((name.to_owned(), *size, median));
        }
    }
    let (small, large) = (sizes[0], sizes[sizes.len() - 1]);
    for name in [
        "PATCH add member",
        "PATCH remove member",
        "GET membership query",
    ] {
        let at = |n: usize| {
            medians
                .iter()
                .find(|(o, s, _)| o == name && *s == n)
                .unwrap()
                .2
                .as_secs_f64()
        };
        println!(
            "{name:<28} median at {large} / at {small} members: {:.2}",
            at(large) / at(small)
        );
    }
}

#[tokio::main]
async fn main() {
    let members = env_usize("MEMBERS", 100_000);
    let rounds = env_usize("ROUNDS", 200);
    let users = members + 100;
    let sizes = [100, members];

    let dir = std::env::temp_dir().join(format!("scimd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    run(
        "SQLite",
        &format!("sqlite://{}/bench.db", dir.display()),
        users,
        &sizes,
        rounds,
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);

    let admin_url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    match sqlx::PgConnection::connect(&admin_url).await {
        Ok(mut conn) => {
            let db = format!("scimd_bench_{}", std::process::id());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let url = format!("{}/{db}", admin_url.rsplit_once('/').unwrap().0);
            run("PostgreSQL", &url, users, &sizes, rounds).await;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE {db} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
        Err(e) => println!("\nPostgreSQL: skipped ({e})"),
    }
}
