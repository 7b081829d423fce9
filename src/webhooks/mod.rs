//! Webhooks: a delivery worker on top of the change-event outbox, never a
//! second source of truth. Each subscription is delivered in event order,
//! at least once, by whichever process holds its lease; a delivery is one
//! event's JSON (as `GET /api/v1/events` shows it) signed by Standard
//! Webhooks 1.0 (`sign.rs`), to a public address (`address.rs`).

pub mod address;
pub mod sign;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use reqwest::header::CONTENT_TYPE;
use uuid::Uuid;

use crate::http::cursor::CursorKey;
use crate::http::events::render_event;
use crate::http::extract::BaseUrl;
use crate::store::webhooks::{Delivery, Webhook, new_owner};
use crate::store::{EventQuery, Position, Store, StoredEvent};

/// How often an idle worker looks for due subscriptions (its own process's
/// writes wake it at once).
const IDLE_POLL: Duration = Duration::from_millis(250);
/// The shortest time between two rounds of leasing.
const MIN_ROUND: Duration = Duration::from_millis(50);
/// Events read per page of a delivery run; the position is stored after
/// each page, so a crash redelivers at most this many.
const PAGE: u64 = 100;
/// Subscriptions leased at once.
const CLAIM: i64 = 16;
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Deliver to loopback, private and link-local addresses too.
    pub allow_private: bool,
    /// A subscription failing for this long is disabled.
    pub disable_after: Duration,
    /// How long one delivery may take.
    pub timeout: Duration,
    /// How long a process holds a subscription without reporting progress
    /// (then another may take it over).
    pub lease: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            allow_private: false,
            disable_after: Duration::from_secs(3 * 86_400),
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(30),
        }
    }
}

/// Delivers every tenant's subscriptions; one per process.
#[derive(Clone)]
pub struct Deliverer {
    store: Store,
    client: reqwest::Client,
    owner: Uuid,
    cursor_key: CursorKey,
    base: std::sync::Arc<BaseUrl>,
    settings: WebhookSettings,
}

/// Installs the TLS crypto provider (ring) for outgoing HTTPS, once.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Deliverer {
    /// `public_url` is the origin clients reach scimd at (for the `data`
    /// of events); `cursor_key` signs event cursors.
    pub fn new(
        store: Store,
        cursor_key: CursorKey,
        public_url: &str,
        settings: WebhookSettings,
    ) -> Result<Deliverer, reqwest::Error> {
        install_tls_provider();
        // A delivery ends well within the lease, which is renewed between
        // deliveries: no other process takes a subscription over mid-run.
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout.min(settings.lease / 3))
            .user_agent(concat!("scimd-webhooks/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_private {
            client = client.dns_resolver(address::resolver());
        }
        Ok(Deliverer {
            store,
            client: client.build()?,
            owner: new_owner(),
            cursor_key,
            base: std::sync::Arc::new(BaseUrl(format!(
                "{}{}",
                public_url.trim_end_matches('/'),
                crate::http::SCIM_PREFIX
            ))),
            settings,
        })
    }

    /// Delivers until the task is dropped. A round leases the due
    /// subscriptions and delivers each until it is caught up; the next
    /// round starts when this process records events (or after
    /// `IDLE_POLL`, for other processes' events and retries), and never
    /// sooner than `MIN_ROUND` after the last one began, so that a busy
    /// tenant's writes are delivered in batches rather than each starting
    /// a round of its own.
    pub async fn run(self) {
        loop {
            let woken = self.store.events_notify().notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let began = tokio::time::Instant::now();
            let until = Utc::now() + TimeDelta::from_std(self.settings.lease).unwrap_or_default();
            match self.store.claim_webhooks(self.owner, until, CLAIM).await {
                Ok(claimed) => {
                    let mut runs = tokio::task::JoinSet::new();
                    for hook in claimed {
                        runs.spawn(self.clone().deliver(hook));
                    }
                    while runs.join_next().await.is_some() {}
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot lease webhook subscriptions");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            let _ = tokio::time::timeout(IDLE_POLL, woken).await;
            tokio::time::sleep_until(began + MIN_ROUND).await;
        }
    }

    /// Delivers one subscription's pending events in order until there are
    /// none, a delivery fails, or the lease is lost.
    async fn deliver(self, hook: Webhook) {
        if let Err(e) = self.deliver_run(&hook).await {
            tracing::warn!(webhook = %hook.id, error = %e, "webhook delivery run failed");
            // The lease stays this owner's, who claims it again next (a
            // store error, such as the other process holding SQLite's
            // write lock, must not stall the subscription until the lease
            // runs out): not at once.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn deliver_run(&self, hook: &Webhook) -> crate::store::Result<()> {
        let Some(key) = sign::decode_secret(&hook.secret) else {
            let outcome = self.failure(
                hook,
                "the subscription's secret is unreadable".into(),
                false,
            );
            self.store
                .record_delivery(hook, self.owner, &outcome)
                .await?;
            return Ok(());
        };
        let mut query = EventQuery {
            after: hook.position,
            limit: PAGE,
            types: hook.types.clone(),
            resource_id: None,
            // Delivery reads again within `IDLE_POLL`: waiting here for
            // other transactions of a busy cluster would only hold the run.
            settle: false,
        };
        // Where the subscription stands as stored, and when that was
        // recorded (which renewed the lease).
        let mut stored = hook.position;
        let mut recorded = tokio::time::Instant::now();
        loop {
            let page = self.store.read_events(hook.tenant, &query).await?;
            for event in &page.events {
                if let Err(error) = self.post(hook, &key, event).await {
                    if query.after != stored && !self.progress(hook, stored, query.after).await? {
                        return Ok(());
                    }
                    // A run that delivered something ended the failing streak.
                    let outcome = self.failure(hook, error, stored != hook.position);
                    self.store
                        .record_delivery(hook, self.owner, &outcome)
                        .await?;
                    return Ok(());
                }
                query.after = event.position;
                if recorded.elapsed() >= self.settings.lease / 3 {
                    if !self.progress(hook, stored, query.after).await? {
                        return Ok(());
                    }
                    (stored, recorded) = (query.after, tokio::time::Instant::now());
                }
            }
            if !page.has_more {
                // Past what the filter skipped, too.
                query.after = page.next;
            }
            if query.after != stored {
                if !self.progress(hook, stored, query.after).await? {
                    // The lease went elsewhere, or an admin moved the subscription.
                    return Ok(());
                }
                (stored, recorded) = (query.after, tokio::time::Instant::now());
            }
            if page.events.is_empty() || !page.has_more {
                self.store
                    .record_delivery(hook, self.owner, &Delivery::Idle)
                    .await?;
                return Ok(());
            }
        }
    }

    /// Records delivery from `from` up to `position`; `false` when the
    /// lease is gone or the subscription was moved meanwhile.
    async fn progress(
        &self,
        hook: &Webhook,
        from: Position,
        position: Position,
    ) -> crate::store::Result<bool> {
        let lease_until = Utc::now() + TimeDelta::from_std(self.settings.lease).unwrap_or_default();
        let outcome = Delivery::Progress {
            from,
            position,
            lease_until,
        };
        self.store.record_delivery(hook, self.owner, &outcome).await
    }

    /// The next attempt after a failure: exponential (1 s, 2 s, 4 s, …, at
    /// most an hour) with up to half again of jitter; disabled once the
    /// subscription has failed for `disable_after`. `fresh`: this run
    /// delivered before it failed, so the earlier streak is over.
    fn failure(&self, hook: &Webhook, error: String, fresh: bool) -> Delivery {
        let now = Utc::now();
        let (attempts, failing_since) = match fresh {
            true => (0, None),
            false => (hook.attempts, hook.failing_since),
        };
        let base = Duration::from_secs(1)
            .saturating_mul(1u32 << attempts.clamp(0, 12))
            .min(MAX_BACKOFF);
        let mut noise = [0u8; 2];
        let _ = getrandom::fill(&mut noise);
        let jitter = base.mul_f64(f64::from(u16::from_le_bytes(noise)) / f64::from(u16::MAX) / 2.0);
        let retry_at = now + TimeDelta::from_std(base + jitter).unwrap_or_default();
        let disable = failing_since.is_some_and(|since| {
            now.signed_duration_since(since)
                .to_std()
                .unwrap_or_default()
                >= self.settings.disable_after
        });
        if disable {
            tracing::warn!(webhook = %hook.id, "webhook subscription disabled after failing too long");
        }
        Delivery::Failed {
            error,
            retry_at,
            disable,
        }
    }

    /// POSTs one event; `Err` with what went wrong unless the receiver
    /// answered 2xx.
    async fn post(&self, hook: &Webhook, key: &[u8], event: &StoredEvent) -> Result<(), String> {
        if !self.settings.allow_private {
            // The resolver guards names; an address in the URL is checked here.
            address::check_literal(&hook.url).map_err(|e| e.to_string())?;
        }
        let body = render_event(&self.cursor_key, hook.tenant, &self.base, event).to_string();
        let id = event.id.to_string();
        let timestamp = Utc::now().timestamp();
        let signature = sign::sign(key, &id, timestamp, &body);
        let resp = self
            .client
            .post(&hook.url)
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            s => Err(format!("the receiver answered {s}")),
        }
    }
}
