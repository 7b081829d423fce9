//! The `scimd` binary itself: first start, bootstrap token, admin commands,
//! graceful shutdown. Each runs against a fresh database of each backend.

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::both_backends;
use crate::helpers::TestApp;

const BIN: &str = env!("CARGO_BIN_EXE_scimd");

/// A port nothing listened at a moment ago: for an address that should not
/// answer. Not for a server to bind later (any other test may bind it
/// first); servers bind port 0, as [`Server::start_logging`] has them do.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `scimd ARGS` to completion against the test's database.
pub(crate) fn scimd(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", &app.database_url)
        .env_remove("SCIMD_BOOTSTRAP_TOKEN")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

/// A running `scimd serve` child; killed if the test fails before stopping it.
pub(crate) struct Server {
    child: tokio::process::Child,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pub(crate) url: String,
    /// Where its metrics are served, when `SCIMD_METRICS_BIND` is set.
    pub(crate) metrics_url: Option<String>,
}

/// The address a JSON log line of `scimd serve` says it listens at:
/// `("scimd listening" | "metrics listening", address)`.
fn listening(line: &str) -> Option<(String, String)> {
    let v: Value = serde_json::from_str(line).ok()?;
    let message = v["message"].as_str()?;
    if !message.ends_with(" listening") {
        return None;
    }
    Some((message.to_owned(), v["bind"].as_str()?.to_owned()))
}

impl Server {
    pub(crate) async fn start(database_url: &str, bootstrap: Option<&str>) -> Server {
        Self::start_logging(database_url, bootstrap, None, &[]).await
    }

    /// Like `start`, with the server's log (JSON lines, level info unless
    /// `env` sets `RUST_LOG`) in `log`.
    ///
    /// The server binds port 0 and the test learns the port the system chose
    /// from its "listening" log line. (A port picked free here and handed to
    /// the child can be taken by any other test before the child binds it;
    /// the test then talks to that other server.)
    pub(crate) async fn start_logging(
        database_url: &str,
        bootstrap: Option<&str>,
        log: Option<&std::path::Path>,
        env: &[(&str, &str)],
    ) -> Server {
        // The tests' own HTTP clients need it, whichever test runs first.
        scimd::webhooks::install_tls_provider();
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.arg("serve")
            .env("DATABASE_URL", database_url)
            .env("SCIMD_BIND", "127.0.0.1:0")
            .env("SCIMD_LOG_FORMAT", "json")
            .env_remove("SCIMD_PUBLIC_URL")
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let level = env
            .iter()
            .find(|(k, _)| *k == "RUST_LOG")
            .map_or(if log.is_some() { "info" } else { "warn" }, |(_, v)| *v);
        cmd.env("RUST_LOG", format!("{level},scimd::server=info"));
        match bootstrap {
            Some(t) => cmd.env("SCIMD_BOOTSTRAP_TOKEN", t),
            None => cmd.env_remove("SCIMD_BOOTSTRAP_TOKEN"),
        };
        // The "listening" lines: from the log file, or from stderr, whose
        // every line goes on to the test's stderr.
        let (found, mut listens) = tokio::sync::mpsc::unbounded_channel();
        match log {
            Some(path) => {
                cmd.stderr(std::fs::File::create(path).unwrap());
            }
            None => {
                cmd.stderr(Stdio::piped());
            }
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(l) = listening(&line) {
                        let _ = found.send(l);
                    }
                    use std::io::Write;
                    let _ = writeln!(std::io::stderr(), "{line}");
                }
            });
        }
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut url, mut metrics_url) = (None, None);
        for _ in 0..400 {
            let mut seen = Vec::new();
            match log {
                Some(path) => seen.extend(
                    std::fs::read_to_string(path)
                        .unwrap_or_default()
                        .lines()
                        .filter_map(listening),
                ),
                None => {
                    while let Ok(l) = listens.try_recv() {
                        seen.push(l);
                    }
                }
            }
            for (message, addr) in seen {
                let at = Some(format!("http://{addr}"));
                if message == "metrics listening" {
                    metrics_url = at;
                } else {
                    url = at;
                }
            }
            if let Some(url) = url {
                return Server {
                    child,
                    stdout,
                    url,
                    metrics_url,
                };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("scimd exited before it listened: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("scimd did not start listening within 20 s");
    }

    /// Everything printed to stdout so far, up to a line containing `until`.
    async fn read_until(&mut self, until: &str) -> String {
        let mut text = String::new();
        let read = async {
            while let Ok(Some(line)) = self.stdout.next_line().await {
                text.push_str(&line);
                text.push('\n');
                if line.contains(until) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
        text
    }

    /// The CPU time (user and system) the process has used so far.
    pub(crate) fn cpu_time(&self) -> Duration {
        let pid = self.child.id().unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // After the command's name, in parentheses: fields 3 onwards.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // USER_HZ is 100 on every Linux this runs on.
        Duration::from_millis(ticks * 10)
    }

    /// SIGKILL: the process gets no chance to finish anything.
    pub(crate) async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// Stops the server started with `log` and returns (and removes) what
    /// it logged.
    pub(crate) async fn stop_and_read(&mut self, log: &std::path::Path) -> String {
        assert!(self.terminate().await.success());
        let text = std::fs::read_to_string(log).unwrap();
        let _ = std::fs::remove_file(log);
        text
    }

    /// SIGTERM, then the exit status (bounded wait).
    pub(crate) async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("scimd exits within 10 s of SIGTERM")
            .unwrap()
    }
}

async fn list_users(url: &str, token: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{url}/scim/v2/Users"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap_or(Value::Null))
}

/// The test's database, emptied of projects: first start must find none.
async fn empty_database(app: &TestApp) -> String {
    // The TestApp's own database already has a project; wipe projects (and
    // with them tenants, keys, users) to get the first-start situation.
    app.exec_sql("DELETE FROM projects").await;
    app.database_url.clone()
}

both_backends! {
    async fn first_start_prints_a_working_curl_line_once(app) {
        let url = empty_database(&app).await;
        let mut server = Server::start(&url, None).await;
        let printed = server.read_until("curl").await;
        let curl = printed.lines().find(|l| l.contains("curl ")).unwrap_or_else(|| panic!("no curl line in {printed:?}"));
        let token = curl.split("Bearer ").nth(1).unwrap().split('\'').next().unwrap().to_owned();
        let target = curl.rsplit(' ').next().unwrap();
        assert_eq!(target, format!("{}/scim/v2/Users", server.url));
        let (status, body) = list_users(&server.url, &token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:ListResponse");
        assert!(server.terminate().await.success(), "graceful shutdown exits 0");

        // A second start finds the project and prints no secret.
        let mut again = Server::start(&url, None).await;
        let (status, _) = list_users(&again.url, &token).await;
        assert_eq!(status, StatusCode::OK);
        assert!(again.terminate().await.success());
        let rest = again.read_until("\u{0}").await;
        assert!(!rest.contains("Bearer"), "{rest}");
    }

    async fn bootstrap_token_is_provisioned_without_printing_it(app) {
        let url = empty_database(&app).await;
        let token = "Pbootstrap_01:0123456789abcdefghijklmnopqrstuvwxyz-_.~";
        let mut server = Server::start(&url, Some(token)).await;
        let (status, _) = list_users(&server.url, token).await;
        assert_eq!(status, StatusCode::OK);
        assert!(server.terminate().await.success());
        let printed = server.read_until("\u{0}").await;
        assert!(!printed.contains("0123456789abcdef"), "no secret printed: {printed}");
        // Idempotent across restarts.
        let mut again = Server::start(&url, Some(token)).await;
        assert_eq!(list_users(&again.url, token).await.0, StatusCode::OK);
        assert!(again.terminate().await.success());
    }

    async fn admin_commands_manage_projects_tenants_and_keys(app) {
        let (ok, project, err) = scimd(&app, &["admin", "project", "create", "--name", "acme"]);
        assert!(ok, "{err}");
        assert!(project.starts_with('P') && project.len() == 28, "{project}");
        let (ok, tenant, err) = scimd(&app, &["admin", "tenant", "create", "--project", &project, "--name", "prod"]);
        assert!(ok, "{err}");
        assert!(uuid::Uuid::parse_str(&tenant).is_ok(), "{tenant}");
        let (ok, token, err) = scimd(&app, &["admin", "key", "create", "--project", &project, "--tenant", "prod", "--role", "tenant-admin", "--expires-in", "90d", "--name", "entra"]);
        assert!(ok, "{err}");
        assert!(token.starts_with(&format!("{project}:")), "{token}");
        let created = err.lines().find(|l| l.starts_with("created key ")).unwrap_or_else(|| panic!("{err}"));
        let key_id = created.split_whitespace().nth(2).unwrap().to_owned();

        let resp = reqwest::Client::new().get(format!("{}/Users", app.base)).header("authorization", format!("Bearer {token}")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);

        let (ok, list, _) = scimd(&app, &["admin", "key", "list", "--project", &project]);
        assert!(ok);
        let row = list.lines().find(|l| l.starts_with(&key_id)).unwrap_or_else(|| panic!("{list}"));
        assert!(row.contains("active") && row.contains("entra") && row.contains(&tenant), "{row}");
        assert!(!list.contains(token.split(':').nth(1).unwrap()), "secrets are never listed");

        let (ok, _, err) = scimd(&app, &["admin", "key", "revoke", &key_id]);
        assert!(ok, "{err}");
        let resp = reqwest::Client::new().get(format!("{}/Users", app.base)).header("authorization", format!("Bearer {token}")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let (_, list, _) = scimd(&app, &["admin", "key", "list"]);
        assert!(list.lines().any(|l| l.starts_with(&key_id) && l.contains("revoked")), "{list}");

        // Mistakes are reported, not crashed on.
        let (ok, _, err) = scimd(&app, &["admin", "tenant", "create", "--project", "PnoSuchProject", "--name", "x"]);
        assert!(!ok && err.contains("does not exist"), "{err}");
        let (ok, _, err) = scimd(&app, &["admin", "key", "create", "--project", &project, "--tenant", "nope"]);
        assert!(!ok && err.contains("does not exist"), "{err}");
        let (ok, _, err) = scimd(&app, &["admin", "key", "revoke", "Knothing"]);
        assert!(!ok && err.contains("no access key"), "{err}");
        let (ok, _, err) = scimd(&app, &["admin", "project", "create", "--name", "x", "--id", "bad id!"]);
        assert!(!ok && err.contains("invalid project id"), "{err}");
    }

    async fn events_tail_prints_the_feed_as_json_lines(app) {
        let user = app.create_user(serde_json::json!({"userName": "tailed"})).await;
        app.create_user(serde_json::json!({"userName": "second"})).await;
        // On PostgreSQL events become readable once the transactions that
        // started before them have ended, in any database of the cluster.
        let mut out = String::new();
        for _ in 0..100 {
            let (ok, printed, err) = scimd(&app, &["events", "tail", "--project", &app.project_id, "--tenant", "a"]);
            assert!(ok, "{err}");
            out = printed;
            if out.lines().count() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(lines[0]["type"], "user.created");
        assert_eq!(lines[0]["resourceId"], user["id"]);
        assert_eq!(lines[0]["data"]["userName"], "tailed");
        let cursor = lines[0]["cursor"].as_str().unwrap();
        let (ok, out, err) = scimd(&app, &["events", "tail", "--project", &app.project_id, "--tenant", "a", "--after", cursor]);
        assert!(ok, "{err}");
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("\"second\""), "{out}");
        let (ok, _, err) = scimd(&app, &["events", "tail", "--project", &app.project_id, "--tenant", "a", "--after", "forged"]);
        assert!(!ok && err.contains("not an event cursor"), "{err}");
    }

    async fn requests_tail_prints_the_provisioning_log_as_json_lines(app) {
        for _ in 0..3 {
            let missing = uuid::Uuid::now_v7().to_string();
            assert_eq!(app.get_user(&missing).await.0, StatusCode::NOT_FOUND);
        }
        let bad = app.send_json(reqwest::Method::POST, "/Users", &serde_json::json!({"password": "hunter2"})).await;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let mut out = String::new();
        for _ in 0..50 {
            let (ok, printed, err) = scimd(&app, &["requests", "tail", "--project", &app.project_id, "--tenant", "a", "-n", "3"]);
            assert!(ok, "{err}");
            out = printed;
            if out.lines().count() >= 3 && out.contains("POST") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3, "the last three: {out}");
        assert_eq!(lines[2]["method"], "POST", "oldest first, the newest last: {out}");
        assert_eq!(lines[2]["body"]["password"], "********");
        assert!(!out.contains("hunter2"));
        let (ok, out, err) = scimd(&app, &["requests", "tail", "--project", &app.project_id, "--tenant", "a", "--status", "404"]);
        assert!(ok, "{err}");
        assert_eq!(out.lines().count(), 3, "{out}");
        let (ok, _, err) = scimd(&app, &["requests", "tail", "--project", &app.project_id, "--tenant", "a", "--status", "four"]);
        assert!(!ok && err.contains("not a status"), "{err}");
    }
}

both_backends! {
    async fn the_request_log_line_names_the_compatibility_rules_that_fired(app) {
        let log = std::env::temp_dir().join(format!("scimd-log-{}.jsonl", uuid::Uuid::new_v4()));
        let token = "Plogtest:0123456789abcdefghijklmnopqrstuvwxyz";
        // A line per request is logged at `debug` (README, RUST_LOG).
        let env = [("RUST_LOG", "info,tower_http=debug")];
        let mut server = Server::start_logging(&app.database_url, Some(token), Some(&log), &env).await;
        let client = reqwest::Client::new();
        let created: Value = client
            .post(format!("{}/scim/v2/Users", server.url))
            .header("authorization", format!("Bearer {token}"))
            .json(&serde_json::json!({"userName": "logged", "active": true}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap();
        // Entra ID's deactivation with a string boolean.
        let resp = client
            .patch(format!("{}/scim/v2/Users/{id}", server.url))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/scim+json")
            .body(r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let text = server.stop_and_read(&log).await;
        let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let patch_line = lines
            .iter()
            .find(|l| l["span"]["method"] == "PATCH" && l["status"].is_number())
            .unwrap_or_else(|| panic!("no PATCH response line in:\n{text}"));
        assert_eq!(patch_line["span"]["quirks"], "entra.capitalised_op,entra.bool_string", "{patch_line}");
        let post_line = lines.iter().find(|l| l["span"]["method"] == "POST" && l["status"].is_number()).unwrap();
        assert!(post_line["span"].get("quirks").is_none(), "no rule fired for a plain POST: {post_line}");
        assert!(!text.contains("0123456789abcdef"), "the token never reaches the log");

        // At the default level a request that succeeds writes no line.
        let mut server = Server::start_logging(&app.database_url, None, Some(&log), &[]).await;
        let resp = client
            .get(format!("{}/scim/v2/Users/{id}", server.url))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let text = server.stop_and_read(&log).await;
        assert!(
            !text.lines().any(|l| l.contains("\"status\"")),
            "no line per request at info:\n{text}"
        );
    }
}

both_backends! {
    async fn sigterm_writes_the_provisioning_log_records_still_queued(app) {
        // The log's writer gathers records for up to 200 ms before writing;
        // a SIGTERM right after the requests must not lose them.
        let mut server = Server::start_logging(&app.database_url, None, None,
            &[("SCIMD_REQUEST_LOG", "all")]).await;
        let client = reqwest::Client::new();
        for i in 0..5 {
            let resp = client.post(format!("{}/scim/v2/Users", server.url))
                .bearer_auth(&app.token)
                .json(&serde_json::json!({"userName": format!("last{i}")}))
                .send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::CREATED);
        }
        assert!(server.terminate().await.success());
        assert_eq!(app.sql_i64("SELECT count(*) FROM request_log").await, 5);
    }
}

both_backends! {
    async fn two_processes_on_one_database_lose_no_change(app) {
        let token = "Ptwoprocs:0123456789abcdefghijklmnopqrstuvwxyz";
        let mut a = Server::start(&app.database_url, Some(token)).await;
        let mut b = Server::start(&app.database_url, Some(token)).await;
        let client = reqwest::Client::new();
        let created: Value = client
            .post(format!("{}/scim/v2/Users", a.url))
            .header("authorization", format!("Bearer {token}"))
            .json(&serde_json::json!({"userName": "shared"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let base = if i % 2 == 0 { a.url.clone() } else { b.url.clone() };
            let req = client
                .patch(format!("{base}/scim/v2/Users/{id}"))
                .header("authorization", format!("Bearer {token}"))
                .json(&serde_json::json!({"Operations": [{"op": "add", "path": "emails", "value": [{"value": format!("p{i}@example.com")}]}]}));
            tasks.push(tokio::spawn(async move { req.send().await.unwrap().status() }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), StatusCode::OK);
        }
        let user: Value = client
            .get(format!("{}/scim/v2/Users/{id}", b.url))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(user["emails"].as_array().unwrap().len(), 50, "{user}");
        assert_eq!(user["meta"]["version"], "W/\"51\"");
        assert!(a.terminate().await.success());
        assert!(b.terminate().await.success());
    }
}

/// `synchronous=normal` in a SQLite URL sets what each connection commits
/// with (the default stays `full`); anything else stops the start with a
/// clear message, and the URL's other parameters still reach SQLite.
#[tokio::test]
async fn sqlite_synchronous_comes_from_the_url() {
    scimd::webhooks::install_tls_provider();
    let dir = std::env::temp_dir().join(format!("scimd-sync-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let pool = scimd::store::PoolConfig {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: None,
    };
    for (query, want) in [
        ("", 2i64),
        ("?synchronous=normal", 1),
        ("?mode=rwc&synchronous=FULL", 2),
    ] {
        let url = format!("sqlite://{}{query}", dir.join("a.db").display());
        let store = scimd::store::Store::connect(&url, &pool).await.unwrap();
        let scimd::store::Store::Sqlite(s) = &store else {
            unreachable!()
        };
        let got: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(got, want, "{url}");
        store.close().await;
    }
    let url = format!("sqlite://{}?synchronous=normal", dir.join("b.db").display());
    let mut server = Server::start(&url, Some("Psync:0123456789abcdefghijklmnopqrstuvwxyz")).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/scim/v2/Users", server.url))
        .bearer_auth("Psync:0123456789abcdefghijklmnopqrstuvwxyz")
        .json(&serde_json::json!({"userName": "s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert!(server.terminate().await.success());
    let out = Command::new(BIN)
        .arg("serve")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?synchronous=off", dir.join("c.db").display()),
        )
        .env("SCIMD_BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("synchronous must be full or normal, not 'off'"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
