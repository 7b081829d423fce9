//! PostgreSQL connections leased for a request's statements, without the
//! round trips sqlx's pool adds around every use.
//!
//! sqlx's pool pings a connection each time it is returned (to clean up
//! after a future dropped mid-query), and by default each time it is handed
//! out: two extra round trips per statement, each one more wakeup of
//! PostgreSQL and of scimd (bench/notes.md has the measurements). A [`Lease`] whose statements finished is released to
//! a short list of ready connections instead; a lease dropped without
//! [`Lease::release`] — a database error, a cancelled request, a panic —
//! goes back through sqlx, whose ping drains or discards it, so a half-used
//! connection is never reused as it is. A ready connection that sat idle
//! for a second or more is pinged before it is leased again.
//!
//! Connections do not stay out of sqlx's hands for long: one that sat ready
//! for [`RETURN_IDLE_AFTER`] goes back to the pool (whose idle timeout then
//! closes it), and so does one [`CYCLE_AFTER`] after it was taken from the
//! pool (whose maximum lifetime then applies).
//!
//! Leases are bounded by a semaphore of the pool's size, waited for at most
//! the pool's acquire timeout (then `PoolTimedOut`, a 503 to the client).
//! Connections in the ready list stay checked out of the sqlx pool; the
//! semaphore is what keeps a lease from waiting on the pool for one of them.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Connection, Postgres};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How long a connection may sit unused before it is pinged on its next
/// lease (a database restart or a network cut may have broken it).
pub(super) const IDLE_CHECK_AFTER: Duration = Duration::from_secs(1);
/// How long a connection may sit ready before it goes back to the pool.
const RETURN_IDLE_AFTER: Duration = Duration::from_secs(10);
/// How long after leaving the pool a connection goes back to it.
const CYCLE_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub(super) struct Conns {
    pool: PgPool,
    permits: Arc<Semaphore>,
    /// `None` once closing: releases then go straight back to the pool.
    ready: Mutex<Option<Vec<Ready>>>,
    acquire_timeout: Duration,
    /// How many leases there may be at once (the pool's size).
    size: u32,
}

#[derive(Debug)]
struct Ready {
    conn: PoolConnection<Postgres>,
    /// When it was released.
    since: Instant,
    /// When it was taken from the sqlx pool.
    taken: Instant,
}

/// One connection for one caller's statements; see the module docs.
#[derive(Debug)]
pub struct Lease {
    // Field order is drop order: the connection goes back before the permit.
    conn: Option<PoolConnection<Postgres>>,
    taken: Instant,
    conns: Arc<Conns>,
    _permit: OwnedSemaphorePermit,
}

impl Conns {
    /// The leases over `pool`; starts the task that returns idle ready
    /// connections to it (must run inside the runtime).
    pub(super) fn new(pool: PgPool, size: u32, acquire_timeout: Duration) -> Arc<Conns> {
        let conns = Arc::new(Conns {
            pool,
            permits: Arc::new(Semaphore::new(size as usize)),
            ready: Mutex::new(Some(Vec::new())),
            acquire_timeout,
            size,
        });
        let weak = Arc::downgrade(&conns);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RETURN_IDLE_AFTER);
            loop {
                tick.tick().await;
                let Some(conns) = weak.upgrade() else { return };
                conns.return_idle();
            }
        });
        conns
    }

    /// Connections leased, open but not leased, and the most there may be.
    pub(super) fn stats(&self) -> super::PoolStats {
        let ready = self.ready().as_ref().map_or(0, Vec::len);
        let leased = (self.size as usize).saturating_sub(self.permits.available_permits());
        super::PoolStats {
            in_use: u32::try_from(leased).unwrap_or(u32::MAX),
            idle: self.pool.num_idle() as u32 + u32::try_from(ready).unwrap_or(u32::MAX),
            max: self.size,
        }
    }

    /// Hands connections that sat ready too long back to the sqlx pool.
    fn return_idle(&self) {
        let idle: Vec<Ready> = match self.ready().as_mut() {
            Some(ready) => {
                let (idle, busy) = ready
                    .drain(..)
                    .partition(|r| r.since.elapsed() >= RETURN_IDLE_AFTER);
                *ready = busy;
                idle
            }
            None => Vec::new(),
        };
        drop(idle);
    }

    fn ready(&self) -> std::sync::MutexGuard<'_, Option<Vec<Ready>>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pop_ready(&self) -> Option<Ready> {
        self.ready().as_mut()?.pop()
    }

    /// A connection for the caller, waiting at most the acquire timeout.
    pub(super) async fn lease(self: &Arc<Self>) -> Result<Lease, sqlx::Error> {
        let start = Instant::now();
        let deadline = start + self.acquire_timeout;
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let (conn, taken) = tokio::time::timeout_at(deadline, self.connection())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        if let Some(m) = crate::metrics::get() {
            m.db_acquired(start.elapsed());
        }
        Ok(Lease {
            conn: Some(conn),
            taken,
            conns: self.clone(),
            _permit: permit,
        })
    }

    /// A ready connection, else one from the sqlx pool. The pool always
    /// has one for a lease holder: leases are as many as the pool's
    /// connections, so every connection that is not ready is idle in the
    /// pool, held by another lease or on its way back to the pool.
    async fn connection(&self) -> Result<(PoolConnection<Postgres>, Instant), sqlx::Error> {
        while let Some(mut ready) = self.pop_ready() {
            if ready.since.elapsed() < IDLE_CHECK_AFTER || ready.conn.ping().await.is_ok() {
                return Ok((ready.conn, ready.taken));
            }
            // Broken: dropping hands it to sqlx, which discards it.
        }
        Ok((self.pool.acquire().await?, Instant::now()))
    }

    fn put_ready(&self, conn: PoolConnection<Postgres>, taken: Instant) {
        let mut ready = self.ready();
        match ready.as_mut() {
            Some(list) => list.push(Ready {
                conn,
                since: Instant::now(),
                taken,
            }),
            // Closing: the pool waits for every connection to come back.
            None => drop((ready, conn)),
        }
    }

    /// Returns every ready connection to the sqlx pool, and every one
    /// released from now on (before closing the pool, which waits for
    /// them).
    pub(super) fn close(&self) {
        let ready = self.ready().take();
        drop(ready);
    }
}

impl Lease {
    /// Puts the connection back for the next lease: call it once the
    /// statements finished; dropping the lease instead returns the
    /// connection through sqlx's cleanup.
    pub fn release(mut self) {
        if self.taken.elapsed() >= CYCLE_AFTER {
            return; // dropped: back to the sqlx pool
        }
        if let Some(conn) = self.conn.take() {
            self.conns.put_ready(conn, self.taken);
        }
    }
}

impl Deref for Lease {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until released")
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until released")
    }
}
