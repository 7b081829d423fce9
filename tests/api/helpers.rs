//! Test harness: every test gets its own database (a fresh SQLite file, or a
//! fresh PostgreSQL database) and its own scimd on a random loopback port.
//!
//! PostgreSQL is found through `TEST_DATABASE_URL`, else 127.0.0.1:5432
//! (user postgres), else a throwaway cluster started with the local `initdb`.
//! Outside CI a missing PostgreSQL skips the PostgreSQL half of each test,
//! and each skip prints `test … SKIPPED` among the test results (written
//! past the harness's output capture, so it shows on a passing run); in CI
//! ([`in_ci`]) it is a failure.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use sqlx::Connection;
use tokio::sync::OnceCell;
use uuid::Uuid;

use scimd::admin;
use scimd::auth::TENANT_ADMIN;
use scimd::store::{PoolConfig, Store};
use scimd::webhooks::{Deliverer, WebhookSettings};
use scimd::{AppState, ConnectionLimits, HttpSettings, app};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed test on SQLite, on PostgreSQL, and on PostgreSQL with
/// `default_transaction_isolation = 'serializable'`: `users::create::sqlite`,
/// `users::create::postgres`, `users::create::postgres_serializable`.
#[macro_export]
macro_rules! both_backends {
    ($(async fn $name:ident($app:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn run($app: $crate::helpers::TestApp) $body
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    run($crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = $crate::helpers::TestApp::spawn_postgres().await {
                        run(app).await
                    }
                }
                /// On a database whose default isolation is serializable,
                /// as distributed PostgreSQL-compatible engines have it.
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_serializable() {
                    if let Some(app) = $crate::helpers::TestApp::spawn_postgres_serializable().await {
                        run(app).await
                    }
                }
            }
        )*
    };
}

static PG_ADMIN_URL: OnceCell<Option<String>> = OnceCell::const_new();

/// Whether this is a CI run: `CI` set to anything but empty, `0` or
/// `false` (the one meaning every test file and script uses).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Records that the running test skipped its PostgreSQL part: a line among
/// the test results, written to the terminal past the harness's capture.
/// In CI a skip is a failure instead.
pub fn skip_postgres(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a PostgreSQL test")
        .to_owned();
    if in_ci() {
        panic!("CI is set and {test} cannot run on PostgreSQL: {why}");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "test {test} ... SKIPPED ({why})");
}

async fn can_connect(url: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(3), sqlx::PgConnection::connect(url)).await,
        Ok(Ok(_))
    )
}

/// The URL of a PostgreSQL server this test run may create databases on.
pub async fn pg_admin_url() -> Option<String> {
    PG_ADMIN_URL
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
                if can_connect(&url).await {
                    return Some(url);
                }
                panic!("TEST_DATABASE_URL is set but PostgreSQL does not answer there");
            }
            let local = "postgres://postgres@127.0.0.1:5432/postgres".to_owned();
            if std::env::var("SCIMD_TEST_PG").as_deref() != Ok("initdb")
                && can_connect(&local).await
            {
                return Some(local);
            }
            match tokio::task::spawn_blocking(start_throwaway_cluster)
                .await
                .expect("cluster start panicked")
            {
                Ok(url) => Some(url),
                Err(e) if in_ci() => panic!("CI is set and no PostgreSQL is available: {e}"),
                Err(e) => {
                    use std::io::Write;
                    let _ = writeln!(
                        std::io::stderr(),
                        "warning: no PostgreSQL server and no throwaway cluster ({e}): \
                         the PostgreSQL half of every storage test is SKIPPED"
                    );
                    None
                }
            }
        })
        .await
        .clone()
}

/// `Some(())` when PostgreSQL is available; else records the skip.
pub async fn postgres_available() -> Option<()> {
    match pg_admin_url().await {
        Some(_) => Some(()),
        None => {
            skip_postgres("no PostgreSQL server");
            None
        }
    }
}

fn run_ok(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn start_throwaway_cluster() -> Result<String, String> {
    Cluster::start(&format!("scimd-pg-{}", std::process::id())).map(|c| c.url)
}

/// A private PostgreSQL cluster started with the server binaries that
/// `pg_config --bindir` names, on a free loopback port. A watchdog stops and
/// removes it once this process has exited (or after two hours at most).
pub struct Cluster {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub url: String,
    bindir: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    opts: String,
    as_root: bool,
}

impl Cluster {
    fn command(&self, program: &str) -> Command {
        let path = self.bindir.join(program);
        if self.as_root {
            // PostgreSQL refuses to run as root: run it as the postgres user then.
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    pub fn start(name: &str) -> Result<Cluster, String> {
        let cluster = Self::init(name)?;
        cluster.up()?;
        eprintln!("started a throwaway PostgreSQL cluster at {}", cluster.url);
        Ok(cluster)
    }

    /// The cluster's directory (owned by the server's user).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The data directory (`pg_hba.conf` is there).
    pub fn data(&self) -> &std::path::Path {
        &self.data
    }

    /// More server options (`-c name=value …`) for the next [`Cluster::up`].
    pub fn add_options(&mut self, opts: &str) {
        self.opts.push(' ');
        self.opts.push_str(opts);
    }

    /// Gives `path` to the server's user (when the tests run as root).
    pub fn give(&self, path: &std::path::Path) -> Result<(), String> {
        if self.as_root {
            run_ok(Command::new("chown").arg("postgres:postgres").arg(path))?;
        }
        Ok(())
    }

    /// A new, stopped cluster (see [`Cluster::up`]).
    pub fn init(name: &str) -> Result<Cluster, String> {
        let bindir = PathBuf::from(run_ok(Command::new("pg_config").arg("--bindir"))?);
        let dir = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let as_root = run_ok(Command::new("id").arg("-u"))? == "0";
        if as_root {
            run_ok(Command::new("chown").args(["postgres:postgres"]).arg(&dir))?;
        }
        let mut cluster = Cluster {
            url: String::new(),
            data: dir.join("data"),
            opts: String::new(),
            bindir,
            dir,
            as_root,
        };
        run_ok(
            cluster
                .command("initdb")
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "-D",
                ])
                .arg(&cluster.data),
        )?;
        // Chosen after initdb's seconds, not before: until the server binds
        // it, any other test may bind the port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        cluster.url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        cluster.opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
            cluster.dir.display()
        );
        let stop = format!(
            "{:?}",
            cluster
                .command("pg_ctl")
                .args(["-D"])
                .arg(&cluster.data)
                .args(["-m", "immediate", "stop"])
        )
        .replace('"', "");
        let watchdog = format!(
            "i=0; while kill -0 {pid} 2>/dev/null && [ $i -lt 7200 ]; do sleep 1; i=$((i+1)); done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = cluster.dir.display()
        );
        Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        Ok(cluster)
    }

    /// Starts the (stopped) cluster and waits until it accepts connections.
    pub fn up(&self) -> Result<(), String> {
        run_ok(
            self.command("pg_ctl")
                .args(["-w", "-t", "60", "-D"])
                .arg(&self.data)
                .args(["-l"])
                .arg(self.dir.join("log"))
                .args(["-o", &self.opts, "start"]),
        )
        .map(drop)
    }

    /// Stops the cluster at once (`-m fast`: connections are cut).
    pub fn down(&self) -> Result<(), String> {
        run_ok(
            self.command("pg_ctl")
                .args(["-w", "-D"])
                .arg(&self.data)
                .args(["-m", "fast", "stop"]),
        )
        .map(drop)
    }
}

/// Replaces the database name of a PostgreSQL URL.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let prefix = match base.rfind('/') {
        Some(i) if base[..i].contains("://") && i > base.find("://").unwrap() + 2 => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

/// What a test may clean up after itself.
enum Scratch {
    SqliteFile(PathBuf),
    PostgresDb { admin_url: String, name: String },
}

impl Drop for Scratch {
    fn drop(&mut self) {
        match self {
            Scratch::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Scratch::PostgresDb { admin_url, name } => {
                let (url, sql) = (
                    admin_url.clone(),
                    format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                );
                // Drop may run inside a runtime: do the blocking work on a thread of its own.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    rt.block_on(async {
                        let mut conn = sqlx::PgConnection::connect(&url).await.ok()?;
                        sqlx::query(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await
                            .ok()
                    })
                })
                .join();
            }
        }
    }
}

/// The pool tests run with.
fn default_pool() -> PoolConfig {
    PoolConfig {
        max_connections: 10,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: None,
    }
}

pub struct TestApp {
    pub backend: Backend,
    /// PostgreSQL with `default_transaction_isolation = 'serializable'`.
    pub serializable: bool,
    /// `http://127.0.0.1:PORT/scim/v2`
    pub base: String,
    /// `http://127.0.0.1:PORT`
    pub origin: String,
    pub database_url: String,
    pub store: Store,
    pub project_id: String,
    /// A tenant-admin token of the default tenant.
    pub token: String,
    pub client: reqwest::Client,
    /// This process's webhook worker (see [`TestApp::stop_webhooks`]).
    webhooks: tokio::task::AbortHandle,
    _scratch: Scratch,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, HttpSettings::default()).await
    }

    /// `None` (recorded with [`skip_postgres`]) when no PostgreSQL is
    /// available outside CI.
    pub async fn spawn_postgres() -> Option<TestApp> {
        postgres_available().await?;
        Some(Self::spawn_with(Backend::Postgres, HttpSettings::default()).await)
    }

    /// Like [`TestApp::spawn_postgres`], on a database whose default
    /// transaction isolation is serializable.
    pub async fn spawn_postgres_serializable() -> Option<TestApp> {
        postgres_available().await?;
        let pool = default_pool();
        let settings = HttpSettings::default();
        let limits = ConnectionLimits::default();
        Some(
            Self::spawn_full(
                Backend::Postgres,
                true,
                settings,
                pool,
                Duration::ZERO,
                limits,
            )
            .await,
        )
    }

    /// Another app on the same backend (and a database of its own), with
    /// other settings.
    pub async fn respawn(&self, settings: HttpSettings) -> TestApp {
        let limits = ConnectionLimits::default();
        Self::spawn_full(
            self.backend,
            self.serializable,
            settings,
            default_pool(),
            Duration::ZERO,
            limits,
        )
        .await
    }

    pub async fn spawn_with(backend: Backend, settings: HttpSettings) -> TestApp {
        let pool = default_pool();
        Self::spawn_with_pool(backend, settings, pool).await
    }

    pub async fn spawn_with_pool(
        backend: Backend,
        settings: HttpSettings,
        pool: PoolConfig,
    ) -> TestApp {
        // No verification cache: revocation and expiry show at once in tests.
        Self::spawn_full(
            backend,
            false,
            settings,
            pool,
            Duration::ZERO,
            ConnectionLimits::default(),
        )
        .await
    }

    /// Another app on the same backend with these settings, pool and
    /// connection limits (no verification cache).
    pub async fn respawn_custom(
        &self,
        settings: HttpSettings,
        pool: PoolConfig,
        limits: ConnectionLimits,
    ) -> TestApp {
        Self::spawn_full(
            self.backend,
            self.serializable,
            settings,
            pool,
            Duration::ZERO,
            limits,
        )
        .await
    }

    /// Another app on the same backend, serving connections with `limits`.
    pub async fn respawn_with_limits(&self, limits: ConnectionLimits) -> TestApp {
        let pool = default_pool();
        Self::spawn_full(
            self.backend,
            self.serializable,
            HttpSettings::default(),
            pool,
            Duration::ZERO,
            limits,
        )
        .await
    }

    /// Another app on the same backend whose verified keys are cached for
    /// `ttl`, as in production.
    pub async fn respawn_with_auth_cache(&self, ttl: Duration) -> TestApp {
        let pool = default_pool();
        let limits = ConnectionLimits::default();
        Self::spawn_full(
            self.backend,
            self.serializable,
            HttpSettings::default(),
            pool,
            ttl,
            limits,
        )
        .await
    }

    async fn spawn_full(
        backend: Backend,
        serializable: bool,
        settings: HttpSettings,
        pool: PoolConfig,
        auth_cache_ttl: Duration,
        limits: ConnectionLimits,
    ) -> TestApp {
        // The tests' own HTTP clients need it, whichever test runs first.
        scimd::webhooks::install_tls_provider();
        let (database_url, scratch) = Self::fresh_database(backend, serializable).await;
        let store = Store::connect(&database_url, &pool).await.expect("connect");
        store.migrate().await.expect("migrate");

        let project = admin::create_project(&store, None, "test").await.unwrap();
        admin::create_tenant(&store, &project.id, "a")
            .await
            .unwrap();
        let key = admin::create_key(&store, &project.id, "a", TENANT_ADMIN, None, None)
            .await
            .unwrap();

        let webhooks = WebhookSettings {
            allow_private: settings.webhook_allow_private,
            ..WebhookSettings::default()
        };
        let state = AppState::open(store.clone(), settings, auth_cache_ttl)
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let deliverer = Deliverer::new(
            store.clone(),
            state.cursor_key().clone(),
            &format!("http://{addr}"),
            webhooks,
        )
        .unwrap();
        let webhooks = tokio::spawn(deliverer.run()).abort_handle();
        tokio::spawn(scimd::serve(
            listener,
            app(state),
            limits,
            std::future::pending(),
        ));
        let origin = format!("http://{addr}");
        TestApp {
            backend,
            serializable,
            base: format!("{origin}/scim/v2"),
            origin,
            database_url,
            store,
            project_id: project.id,
            token: key.token,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            webhooks,
            _scratch: scratch,
        }
    }

    /// Stops this process's webhook worker, for a test whose deliveries
    /// are made by `scimd` processes of its own on this database: this
    /// worker (which does not deliver to loopback addresses unless
    /// `webhook_allow_private`) would lease their subscriptions too, fail
    /// them, and put them back by a backoff of seconds.
    pub fn stop_webhooks(&self) {
        self.webhooks.abort();
    }

    async fn fresh_database(backend: Backend, serializable: bool) -> (String, Scratch) {
        let name = format!("scimd_test_{}", Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                (
                    format!("sqlite://{}", path.display()),
                    Scratch::SqliteFile(path),
                )
            }
            Backend::Postgres => {
                let admin_url = pg_admin_url().await.expect("PostgreSQL is available");
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("connect admin");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                if serializable {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "ALTER DATABASE \"{name}\" SET default_transaction_isolation = 'serializable'"
                    )))
                    .execute(&mut conn)
                    .await
                    .expect("serializable by default");
                }
                let url = with_database(&admin_url, &name);
                (url, Scratch::PostgresDb { admin_url, name })
            }
        }
    }

    /// Starts another scimd server over the same database (as a second
    /// process of one deployment would be); its origin.
    pub async fn second_server(&self) -> String {
        let state = AppState::open(self.store.clone(), HttpSettings::default(), Duration::ZERO)
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(scimd::serve(
            listener,
            app(state),
            ConnectionLimits::default(),
            std::future::pending(),
        ));
        origin
    }

    /// A tenant-admin token for a new tenant of the same project.
    pub async fn token_for_new_tenant(&self, tenant: &str) -> String {
        admin::create_tenant(&self.store, &self.project_id, tenant)
            .await
            .unwrap();
        admin::create_key(
            &self.store,
            &self.project_id,
            tenant,
            TENANT_ADMIN,
            None,
            None,
        )
        .await
        .unwrap()
        .token
    }

    /// The scope of the default tenant ("a"), for calling the store directly.
    pub async fn scope(&self) -> scimd::store::TenantScope {
        let tenant = self
            .store
            .find_tenant(&self.project_id, "a")
            .await
            .unwrap()
            .unwrap();
        scimd::store::TenantScope::new(tenant.id)
    }

    /// Runs raw SQL (several statements allowed) on the test's database.
    pub async fn exec_sql(&self, sql: &'static str) {
        match &self.store {
            Store::Postgres(pg) => sqlx::raw_sql(sql)
                .execute(&mut *pg.lease().await.unwrap())
                .await
                .map(drop),
            Store::Sqlite(lite) => sqlx::raw_sql(sql).execute(lite.pool()).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs raw SQL built at run time (several statements allowed).
    pub async fn exec_sql_text(&self, sql: String) {
        let result = match &self.store {
            Store::Postgres(pg) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut *pg.lease().await.unwrap())
                .await
                .map(drop),
            Store::Sqlite(lite) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(lite.pool())
                .await
                .map(drop),
        };
        result.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The single integer a query on the test's database returns.
    pub async fn sql_i64(&self, sql: &'static str) -> i64 {
        match &self.store {
            Store::Postgres(pg) => {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&mut *pg.lease().await.unwrap())
                    .await
            }
            Store::Sqlite(lite) => {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(lite.pool())
                    .await
            }
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A request with the default tenant's token.
    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.req_as(&self.token, method, path)
    }

    pub fn req_as(&self, token: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        self.client
            .request(method, format!("{}{path}", self.base))
            .headers(headers)
    }

    /// Sends a SCIM JSON body.
    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        self.req(method, path)
            .header(CONTENT_TYPE, "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Creates a user and returns its representation.
    pub async fn create_user(&self, body: Value) -> Value {
        let resp = self.send_json(Method::POST, "/Users", &body).await;
        let status = resp.status();
        let json: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{json}");
        json
    }

    pub async fn get_user(&self, id: &str) -> (StatusCode, Value) {
        json_of(
            self.req(Method::GET, &format!("/Users/{id}"))
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

/// Reads from `stream` until `done` says what arrived is complete or the
/// server closes the connection (`Some` of what it sent), or `within`
/// passes first (`None`).
pub async fn read_until(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    within: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&got) {
        match tokio::time::timeout(
            deadline.saturating_duration_since(tokio::time::Instant::now()),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    Some(got)
}

/// Whether `raw` holds a whole HTTP/1.1 response: its head, and a body of
/// its Content-Length.
pub fn whole_response(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let length = text[..end]
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    raw.len() >= end + 4 + length
}

/// The status line and the body of a raw HTTP/1.1 response.
pub fn status_and_body(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    let json = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
    (status, json)
}

/// Status and JSON body of a response; asserts the SCIM media type.
pub async fn json_of(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    if text.is_empty() {
        return (status, Value::Null);
    }
    assert!(
        ct.starts_with("application/scim+json"),
        "content-type {ct:?} for {text}"
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

/// Asserts a SCIM error body with the given status and scimType.
pub fn assert_scim_error(status: StatusCode, body: &Value, want: u16, scim_type: Option<&str>) {
    assert_eq!(status.as_u16(), want, "{body}");
    assert_eq!(
        body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{body}"
    );
    assert_eq!(body["status"], want.to_string(), "{body}");
    assert_eq!(
        body.get("scimType").and_then(Value::as_str),
        scim_type,
        "{body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

#[test]
fn with_database_replaces_the_path() {
    assert_eq!(
        with_database("postgres://u@h:1/postgres", "x"),
        "postgres://u@h:1/x"
    );
    assert_eq!(
        with_database("postgres://u@h:1/postgres?sslmode=disable", "x"),
        "postgres://u@h:1/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
}
