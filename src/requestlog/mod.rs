//! The provisioning log: per tenant, one record per SCIM request ("what did
//! Entra send, and what did we do with it?"). Records are made by the
//! request observer (`http::observe`) once a response is final and handed
//! to a writer task through a bounded queue: a full queue drops the record
//! (counted in `scimd_request_log_dropped_total`), a request never waits.
//! The writer inserts them in batches. Bodies are kept for failed requests
//! only, with passwords and secrets masked ([`mask`]).

use std::time::Duration;

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::store::Store;

/// Which requests the log keeps (`SCIMD_REQUEST_LOG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Off,
    /// Requests answered 4xx or 5xx (the default).
    Errors,
    All,
}

impl Mode {
    /// Whether a request answered `status` is kept.
    pub fn keeps(self, status: u16) -> bool {
        match self {
            Mode::Off => false,
            Mode::Errors => status >= 400,
            Mode::All => true,
        }
    }
}

/// One request, as the log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub tenant_id: Uuid,
    pub at: DateTime<Utc>,
    pub key_id: String,
    pub user_agent: Option<String>,
    /// The client family (`compat::client_family`).
    pub client: &'static str,
    pub method: String,
    /// The route template (`/scim/v2/Users/{id}`), or the path as sent when
    /// no route matched.
    pub path: String,
    pub resource_id: Option<String>,
    pub status: u16,
    pub scim_type: Option<String>,
    pub duration_ms: f64,
    pub request_id: Option<String>,
    pub quirks: Vec<String>,
    /// The request body, masked; failed requests only.
    pub body: Option<Value>,
}

/// Every SCIM request of a tenant's key, counted for the client report
/// whether the log keeps it or not.
#[derive(Debug, Clone, PartialEq)]
pub struct Count {
    pub tenant_id: Uuid,
    pub day: NaiveDate,
    pub client: &'static str,
    pub failed: bool,
    pub quirks: Vec<&'static str>,
}

/// Counts added up per tenant, day, client family and rule (`""`: the
/// requests themselves), as the store adds them to `client_stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCount {
    pub tenant_id: Uuid,
    pub day: NaiveDate,
    pub client: String,
    pub rule: String,
    pub requests: i64,
    pub errors: i64,
}

/// `counts` added up (see [`ClientCount`]).
pub fn add_up(counts: &[Count]) -> Vec<ClientCount> {
    let mut sums: HashMap<(Uuid, NaiveDate, &'static str, &'static str), (i64, i64)> =
        HashMap::new();
    for c in counts {
        let failed = i64::from(c.failed);
        for rule in std::iter::once("").chain(c.quirks.iter().copied()) {
            let sum = sums
                .entry((c.tenant_id, c.day, c.client, rule))
                .or_default();
            sum.0 += 1;
            sum.1 += failed;
        }
    }
    let mut out: Vec<ClientCount> = sums
        .into_iter()
        .map(
            |((tenant_id, day, client, rule), (requests, errors))| ClientCount {
                tenant_id,
                day,
                client: client.to_owned(),
                rule: rule.to_owned(),
                requests,
                errors,
            },
        )
        .collect();
    // One order for every writer: concurrent upserts never deadlock.
    out.sort_by(|a, b| {
        (a.tenant_id, a.day, &a.client, &a.rule).cmp(&(b.tenant_id, b.day, &b.client, &b.rule))
    });
    out
}

/// A kept record, with its place in the tenant's log.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub id: i64,
    pub record: Record,
}

/// Which records a reader asks for: newest first.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub status: Option<StatusFilter>,
    pub since: Option<DateTime<Utc>>,
    /// Records older than this one (a cursor's position).
    pub before: Option<i64>,
    /// Records newer than this one (what `requests tail --follow` has not
    /// printed yet).
    pub newer_than: Option<i64>,
    pub limit: u32,
}

/// `status=404` or a class, `status=4xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Exactly(u16),
    Class(u16),
}

impl StatusFilter {
    pub fn parse(text: &str) -> Option<StatusFilter> {
        let text = text.trim();
        match text.as_bytes() {
            [c @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => {
                Some(StatusFilter::Class(u16::from(c - b'0')))
            }
            _ => text
                .parse::<u16>()
                .ok()
                .filter(|s| (100..=599).contains(s))
                .map(StatusFilter::Exactly),
        }
    }

    /// The statuses it names, as an inclusive range.
    pub fn range(self) -> (u16, u16) {
        match self {
            StatusFilter::Exactly(s) => (s, s),
            StatusFilter::Class(c) => (c * 100, c * 100 + 99),
        }
    }
}

/// What replaces a masked value.
pub const MASK: &str = "********";

/// Whether a member name holds a secret (case-insensitively): `password`,
/// and anything named like a secret or token.
fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    // `urn:…:User:password` and `password` alike.
    let last = lower.rsplit([':', '.']).next().unwrap_or(&lower);
    last == "password"
        || last.contains("secret")
        || last.contains("token")
        || last.contains("accesskey")
        || last.contains("apikey")
}

/// `body` with every secret masked: values of members whose names hold a
/// secret, at any depth, and the `value` of a PATCH operation whose `path`
/// names one.
pub fn mask(body: &Value) -> Value {
    match body {
        Value::Object(map) => {
            let path_is_secret = map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("path"))
                .and_then(|(_, v)| v.as_str())
                .is_some_and(|p| is_secret_name(p.split('[').next().unwrap_or(p)));
            let masked: Map<String, Value> = map
                .iter()
                .map(|(k, v)| {
                    let secret =
                        is_secret_name(k) || (path_is_secret && k.eq_ignore_ascii_case("value"));
                    let v = match secret {
                        true => Value::String(MASK.to_owned()),
                        false => mask(v),
                    };
                    (k.clone(), v)
                })
                .collect();
            Value::Object(masked)
        }
        Value::Array(items) => Value::Array(items.iter().map(mask).collect()),
        other => other.clone(),
    }
}

/// Records waiting to be written, at most.
const QUEUE: usize = 10_000;
/// Records per insert, at most.
const BATCH: usize = 500;
/// How long a record may wait for more to make a batch.
const LINGER: Duration = Duration::from_millis(200);

/// The log's entrance: hands records to its writer task.
#[derive(Debug, Clone)]
pub struct RequestLog {
    mode: Mode,
    queue: Option<mpsc::Sender<Entry>>,
    writer: Option<std::sync::Arc<Writer>>,
}

/// The writer task, and how to ask it to finish.
#[derive(Debug)]
struct Writer {
    closing: std::sync::Arc<tokio::sync::Notify>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// One request for the writer: counted always, and kept when the mode says.
#[derive(Debug)]
pub struct Entry {
    pub count: Count,
    pub record: Option<Record>,
}

impl RequestLog {
    /// The log in `mode`; unless off, starts its writer (inside the runtime).
    pub fn start(store: Store, mode: Mode) -> RequestLog {
        if mode == Mode::Off {
            return RequestLog {
                mode,
                queue: None,
                writer: None,
            };
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let closing = std::sync::Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(write_batches(store, rx, closing.clone()));
        RequestLog {
            mode,
            queue: Some(tx),
            writer: Some(std::sync::Arc::new(Writer {
                closing,
                task: std::sync::Mutex::new(Some(task)),
            })),
        }
    }

    /// Stops taking records and waits (up to `within`) until the writer has
    /// written those already queued: what a shutdown does, so that the
    /// last requests before it are not lost.
    pub async fn close(&self, within: Duration) {
        let Some(writer) = &self.writer else { return };
        writer.closing.notify_one();
        let task = writer.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task
            && tokio::time::timeout(within, task).await.is_err()
        {
            tracing::warn!("the request log's last records were not all written in time");
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Counts a request and keeps its record, unless the queue is full
    /// (then it is counted as dropped). Never waits.
    pub fn keep(&self, entry: Entry) {
        let Some(queue) = &self.queue else { return };
        if queue.try_send(entry).is_err() {
            if let Some(m) = crate::metrics::get() {
                m.request_log_dropped();
            }
            tracing::debug!("request log queue full: a record was dropped");
        }
    }
}

/// The next record, waiting for one until `deadline` (`None`: until every
/// sender is gone). Once `closing` is notified the channel is closed: it
/// takes no new records and hands out those it holds without waiting.
async fn next_record(
    rx: &mut mpsc::Receiver<Entry>,
    closing: &tokio::sync::Notify,
    deadline: Option<tokio::time::Instant>,
) -> Option<Entry> {
    tokio::select! {
        r = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, rx.recv()).await.ok().flatten(),
                None => rx.recv().await,
            }
        } => r,
        () = closing.notified() => {
            rx.close();
            rx.recv().await
        }
    }
}

/// The writer: waits for a record, gathers more for up to [`LINGER`] (at
/// most [`BATCH`]), inserts them in one statement; until every sender is
/// gone, or `closing` is notified, and the queue is empty. Once closing,
/// it takes no new records and lingers no more.
async fn write_batches(
    store: Store,
    mut rx: mpsc::Receiver<Entry>,
    closing: std::sync::Arc<tokio::sync::Notify>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = next_record(&mut rx, &closing, None).await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match next_record(&mut rx, &closing, Some(deadline)).await {
                Some(r) => batch.push(r),
                None => break,
            }
        }
        let mut counts = Vec::with_capacity(batch.len());
        let mut records = Vec::new();
        for entry in batch.drain(..) {
            counts.push(entry.count);
            records.extend(entry.record);
        }
        if !records.is_empty()
            && let Err(e) = store.insert_requests(&records).await
        {
            tracing::warn!(error = %e, records = records.len(), "could not write the request log");
        }
        if let Err(e) = store.add_client_counts(&add_up(&counts)).await {
            tracing::warn!(error = %e, "could not count requests per client");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn passwords_and_secrets_are_masked_wherever_they_are() {
        let body = json!({
            "userName": "ann",
            "password": "hunter2",
            "urn:ietf:params:scim:schemas:extension:custom:2.0:User": {"apiToken": "t0k", "team": "a"},
            "Operations": [
                {"op": "replace", "path": "password", "value": "s3cret"},
                {"op": "Replace", "value": {"PASSWORD": "x", "displayName": "Ann"}},
                {"op": "add", "path": "emails", "value": [{"value": "a@example.com"}]}
            ]
        });
        let masked = mask(&body);
        assert_eq!(masked["userName"], "ann");
        assert_eq!(masked["password"], MASK);
        assert_eq!(
            masked["urn:ietf:params:scim:schemas:extension:custom:2.0:User"]["apiToken"],
            MASK
        );
        assert_eq!(
            masked["urn:ietf:params:scim:schemas:extension:custom:2.0:User"]["team"],
            "a"
        );
        assert_eq!(masked["Operations"][0]["value"], MASK);
        assert_eq!(masked["Operations"][1]["value"]["PASSWORD"], MASK);
        assert_eq!(masked["Operations"][1]["value"]["displayName"], "Ann");
        assert_eq!(
            masked["Operations"][2]["value"][0]["value"],
            "a@example.com"
        );
        assert!(!masked.to_string().contains("hunter2") && !masked.to_string().contains("s3cret"));
    }

    #[test]
    fn status_filters() {
        assert_eq!(StatusFilter::parse("404"), Some(StatusFilter::Exactly(404)));
        assert_eq!(
            StatusFilter::parse("4xx").map(StatusFilter::range),
            Some((400, 499))
        );
        assert_eq!(
            StatusFilter::parse("5XX").map(StatusFilter::range),
            Some((500, 599))
        );
        assert_eq!(StatusFilter::parse("6xx"), None);
        assert_eq!(StatusFilter::parse("abc"), None);
        assert_eq!(StatusFilter::parse("99"), None);
    }

    #[test]
    fn counts_add_up_per_client_and_rule() {
        let (t, day) = (Uuid::nil(), NaiveDate::from_ymd_opt(2026, 12, 2).unwrap());
        let count = |client, failed, quirks: &[&'static str]| Count {
            tenant_id: t,
            day,
            client,
            failed,
            quirks: quirks.to_vec(),
        };
        let sums = add_up(&[
            count("entra", false, &["entra.bool_string"]),
            count(
                "entra",
                true,
                &["entra.bool_string", "entra.capitalised_op"],
            ),
            count("okta", false, &[]),
        ]);
        let get = |client: &str, rule: &str| {
            sums.iter()
                .find(|c| c.client == client && c.rule == rule)
                .map(|c| (c.requests, c.errors))
        };
        assert_eq!(get("entra", ""), Some((2, 1)));
        assert_eq!(get("entra", "entra.bool_string"), Some((2, 1)));
        assert_eq!(get("entra", "entra.capitalised_op"), Some((1, 1)));
        assert_eq!(get("okta", ""), Some((1, 0)));
        assert_eq!(sums.len(), 4);
    }

    #[test]
    fn modes_keep_what_they_say() {
        assert!(!Mode::Off.keeps(500));
        assert!(Mode::Errors.keeps(400) && !Mode::Errors.keeps(201));
        assert!(Mode::All.keeps(200));
    }
}
