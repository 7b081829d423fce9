//! Group commit for SQLite's writes.
//!
//! SQLite has one writer at a time, and every committed transaction waits
//! for its fsync (`synchronous=full`). Written one transaction each, a
//! process's writes took turns through that fsync: under 32 concurrent
//! PATCHes the machine sat half idle (perf: 43–48 % of samples in the idle
//! task) while every write waited for the one before it to reach the disk.
//!
//! A process's SCIM writes now share transactions. The first writer of a
//! batch opens one (`BEGIN IMMEDIATE`) on the writer connection; the
//! writers queued behind it write into the same transaction: a user's
//! create or update as one statement. SQLite keeps or undoes each
//! statement as a whole; a statement a constraint refused leaves the
//! transaction and the other writes as they were (and records no event).
//! A write of several statements (a group write, a
//! recorded delete, a tombstone or deletion-policy write) goes in a
//! savepoint of its own (`SqliteStore::batched`, `SqliteStore::savepoint`).
//! The writer that leaves no one queued behind it, or fills the batch,
//! commits it. No writer answers before the
//! transaction holding its write has committed, and if it does not commit,
//! every writer in it answers with an error: the durability of one
//! transaction per write, one fsync for many.
//!
//! A write gives its events to the batch ([`Turn::join`]), which inserts
//! the events of all its writes in one statement just before it commits,
//! in the order of the writes (which `seq` follows, `sqlite_events.rs`).
//! A statement of its own for each write's events cost a PATCH 0.84–0.875
//! of its rate without events; a group's member add or remove that
//! recorded its event in its `UPDATE`'s call (a second statement reading
//! the events from a JSON array) ran at 0.86–0.92 of its rate without
//! events, and at 0.92–0.955 with its event given to the batch: the
//! writer's turn, which every write waits for, is what bounds SQLite's
//! writes (see `bench/notes.md`). If the events cannot be inserted, the
//! batch rolls back: no write commits without its events.
//!
//! The checkpoint that copies the WAL back into the database file ran on
//! the writer connection, in the commit that crossed `wal_autocheckpoint`,
//! while every other writer waited (in Python on the bench's data, batches
//! of 32 updates ran 1.7 × as fast without it). After a batch commits, a
//! passive checkpoint now runs on a connection of the read pool, one at a
//! time, beside the writes that go on; the writer checkpoints itself only
//! if the WAL outgrows [`WRITER_CHECKPOINT_PAGES`] (the checkpoints fell
//! behind).
//!
//! A write that fails in a way that may have ended the transaction (not a
//! constraint, an I/O error, an interrupted statement) ends the batch: it
//! is rolled back and the writers in it answer that the database is
//! unavailable. Every other writer ([`SqliteStore::writer`]: keys,
//! webhooks' delivery state, retention, the provisioning log) first
//! commits any batch still open and then writes alone, as before.
//!
//! [`SqliteStore::writer`]: super::sqlite::SqliteStore::writer

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, watch};

use super::sqlite::WriteClock;
use super::sqlite_events::{PendingEvent, insert_pending};
use super::{Result, StoreError};

/// The most writes one transaction carries: a bound on how long the first
/// of them waits for its answer.
pub(super) const MOST_WRITES: usize = 64;

/// The writer connection's `wal_autocheckpoint`: far above what the
/// checkpoints after each batch leave in the WAL.
pub(super) const WRITER_CHECKPOINT_PAGES: &str = "10000";

/// This process's turns to write on its writer connection.
#[derive(Clone)]
pub(super) struct Writers {
    batch: Arc<Mutex<Batch>>,
    /// Writers waiting for their turn: while there are any, the holder of
    /// the turn leaves its batch open for them.
    queued: Arc<AtomicUsize>,
    /// Woken after a commit that carried events (readers that wait).
    pub(super) notify: Arc<Notify>,
    /// Where the checkpoints after a batch run, and whether one is running.
    readers: SqlitePool,
    checkpointing: Arc<AtomicBool>,
    /// Told when each write begins (the statement timeout's clock).
    clock: WriteClock,
}

impl std::fmt::Debug for Writers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writers")
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
pub(super) struct Batch {
    open: Option<Open>,
}

/// A transaction shared by the writes in it.
struct Open {
    tx: Transaction<'static, Sqlite>,
    writes: usize,
    events: bool,
    /// The events of its writes not inserted yet, in the order of the writes.
    pending: Vec<PendingEvent>,
    /// `Some(true)` once committed, `Some(false)` if it never will be.
    outcome: watch::Sender<Option<bool>>,
}

/// What a write that joined a batch waits for before it answers.
pub(super) struct Outcome(watch::Receiver<Option<bool>>);

impl Outcome {
    pub(super) async fn committed(mut self) -> Result<()> {
        match self.0.wait_for(Option::is_some).await.map(|o| *o) {
            Ok(Some(true)) => Ok(()),
            _ => Err(StoreError::Unavailable(
                "the transaction holding this write did not commit".into(),
            )),
        }
    }
}

impl Open {
    /// Commits in a task of its own, so that a writer that goes away
    /// (its client hung up) cannot leave the others waiting; then
    /// checkpoints, unless a checkpoint is running already.
    fn commit(self, writers: &Writers) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // dropped: the transaction rolls back, the writers hear so
        };
        let writers = writers.clone();
        runtime.spawn(async move {
            let Open {
                mut tx,
                writes,
                events,
                pending,
                outcome,
            } = self;
            let done = match insert_pending(&mut tx, pending).await {
                Ok(()) => tx.commit().await.map_err(StoreError::from_sqlx),
                Err(e) => Err(e), // the transaction rolls back as it drops
            };
            let committed = match done {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, writes, "a batch of writes did not commit");
                    false
                }
            };
            if committed && events {
                writers.notify.notify_waiters();
            }
            let _ = outcome.send(Some(committed));
            if committed && !writers.checkpointing.swap(true, Ordering::SeqCst) {
                let done = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&writers.readers)
                    .await;
                writers.checkpointing.store(false, Ordering::SeqCst);
                match done {
                    Ok(_) | Err(sqlx::Error::PoolClosed) => {}
                    Err(e) => tracing::warn!(error = %e, "a checkpoint of the WAL failed"),
                }
            }
        });
    }

    fn roll_back(self) {
        let _ = self.outcome.send(Some(false));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = self.tx.rollback().await {
                    tracing::warn!(error = %e, "could not roll back a failed batch of writes");
                }
            });
        }
    }
}

/// A turn to write; while it is held no other writer of this process
/// writes. Given back, it commits the open batch unless a writer waits to
/// add to it.
pub(super) struct Turn {
    batch: OwnedMutexGuard<Batch>,
    writers: Writers,
}

/// Counts a writer as queued until it has its turn (or gave up waiting).
struct Queued<'a> {
    writers: &'a Writers,
    served: bool,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let left = self.writers.queued.fetch_sub(1, Ordering::SeqCst) - 1;
        // The holder may have left the batch open for this writer, which
        // went away while it waited: if no one else will, commit it.
        if !self.served
            && left == 0
            && let Ok(mut batch) = self.writers.batch.clone().try_lock_owned()
            && let Some(open) = batch.open.take()
        {
            open.commit(self.writers);
        }
    }
}

impl Writers {
    /// `readers`: the pool the checkpoints run on; `clock`: the writer
    /// connection's statement clock.
    pub(super) fn new(readers: SqlitePool, clock: WriteClock) -> Writers {
        Writers {
            batch: Default::default(),
            queued: Default::default(),
            notify: Default::default(),
            readers,
            checkpointing: Default::default(),
            clock,
        }
    }

    /// A turn to write one statement in the open batch (see
    /// [`Turn::connection`]).
    pub(super) async fn in_batch(&self) -> Turn {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut queued = Queued {
            writers: self,
            served: false,
        };
        let batch = self.batch.clone().lock_owned().await;
        queued.served = true;
        drop(queued);
        self.clock.start();
        Turn {
            batch,
            writers: self.clone(),
        }
    }

    /// A turn to write alone, on `pool`'s connection outside any batch
    /// (a batch still open is committed first; the connection comes back
    /// to the pool when it has).
    pub(super) async fn alone(&self) -> Turn {
        let mut turn = self.in_batch().await;
        if let Some(open) = turn.batch.open.take() {
            open.commit(self);
        }
        turn
    }
}

impl Turn {
    /// The open batch's connection, opening a batch if there is none.
    pub(super) async fn connection(
        &mut self,
        pool: &SqlitePool,
    ) -> Result<&mut sqlx::SqliteConnection> {
        let open = match self.batch.open.take() {
            Some(open) => open,
            None => Open {
                tx: pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(StoreError::from_sqlx)?,
                writes: 0,
                events: false,
                pending: Vec::new(),
                outcome: watch::channel(None).0,
            },
        };
        Ok(&mut *self.batch.open.insert(open).tx)
    }

    /// Adds the write just made on [`Self::connection`] to the batch, with
    /// the events it records (for the batch to insert); its answer waits
    /// for the returned outcome. A write that `failed` in a way that may
    /// have ended the transaction ends the batch instead, which rolls
    /// back, and gets `None`.
    pub(super) fn join(
        &mut self,
        failed: Option<&StoreError>,
        events: Vec<PendingEvent>,
    ) -> Option<Outcome> {
        let open = self.batch.open.as_mut()?;
        if let Some(e) = failed
            && !e.leaves_transaction()
        {
            self.batch.open.take()?.roll_back();
            return None;
        }
        open.writes += 1;
        if !events.is_empty() {
            open.events = true;
            open.pending.extend(events);
        }
        Some(Outcome(open.outcome.subscribe()))
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let full = self
            .batch
            .open
            .as_ref()
            .is_some_and(|o| o.writes >= MOST_WRITES);
        if (full || self.writers.queued.load(Ordering::SeqCst) == 0)
            && let Some(open) = self.batch.open.take()
        {
            open.commit(&self.writers);
        }
    }
}

/// A batched write's error: a store error, which may end the batch (see
/// [`Turn::join`]), or an error of the write's own, which wrote nothing.
pub(super) trait BatchError: From<StoreError> {
    fn store_error(&self) -> Option<&StoreError>;
}

impl BatchError for StoreError {
    fn store_error(&self) -> Option<&StoreError> {
        Some(self)
    }
}

impl<E> BatchError for super::ModifyError<E> {
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            super::ModifyError::Store(e) => Some(e),
            super::ModifyError::Change(_) => None,
        }
    }
}

impl StoreError {
    /// Whether a write that failed with this error left its transaction
    /// open and as it was before the write: SQLite undoes a statement a
    /// constraint refused, and the rest never wrote.
    fn leaves_transaction(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => matches!(
                db.kind(),
                sqlx::error::ErrorKind::UniqueViolation
                    | sqlx::error::ErrorKind::ForeignKeyViolation
                    | sqlx::error::ErrorKind::NotNullViolation
                    | sqlx::error::ErrorKind::CheckViolation
            ),
            StoreError::Database(_)
            | StoreError::Unavailable(_)
            | StoreError::TimedOut
            | StoreError::Contention
            | StoreError::Corrupt(_)
            | StoreError::Migrate(_) => false,
            StoreError::NotFound
            | StoreError::Conflict(_)
            | StoreError::VersionMismatch
            | StoreError::UnknownMember(_)
            | StoreError::NoTarget(_)
            | StoreError::InvalidQuery(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite_events::PendingSnapshot;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    use std::time::Duration;

    /// A database with a table `t` of unique names: the writer's pool (one
    /// connection) and a readers' pool.
    async fn database() -> (SqlitePool, SqlitePool) {
        let path = std::env::temp_dir().join(format!("scimd-commit-{}.db", uuid::Uuid::now_v7()));
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let writes = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .unwrap();
        let reads = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (name TEXT PRIMARY KEY)")
            .execute(&writes)
            .await
            .unwrap();
        // The columns a batch inserts its events into; an event of
        // resource "refused" breaks the insert.
        sqlx::query(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, tenant_id TEXT, id TEXT, type TEXT, \
             occurred_at INTEGER, resource_type TEXT, resource_id TEXT CHECK (resource_id <> 'refused'), \
             version INTEGER, actor TEXT, changed TEXT, created_at INTEGER, modified_at INTEGER, \
             data TEXT, groups TEXT, member_id TEXT, member_type TEXT)",
        )
        .execute(&writes)
        .await
        .unwrap();
        (writes, reads)
    }

    fn event(resource: &str) -> PendingEvent {
        PendingEvent {
            tenant_id: "t".into(),
            id: uuid::Uuid::now_v7().to_string(),
            kind: "user.updated",
            occurred_at: 2,
            resource_type: "User",
            resource_id: resource.into(),
            version: 2,
            actor: "{}".into(),
            changed: None,
            snapshot: Some(PendingSnapshot {
                created_at: 1,
                modified_at: 2,
                data: "{}".into(),
                groups: "[]".into(),
            }),
            member: None,
        }
    }

    /// The resources of the events kept, in `seq` order.
    async fn events_kept(reads: &SqlitePool) -> Vec<String> {
        sqlx::query_scalar("SELECT resource_id FROM events ORDER BY seq")
            .fetch_all(reads)
            .await
            .unwrap()
    }

    async fn insert(turn: &mut Turn, writes: &SqlitePool, name: &str) -> Result<()> {
        sqlx::query("INSERT INTO t VALUES ($1)")
            .bind(name)
            .execute(turn.connection(writes).await?)
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    /// What the second writer of [`two_writers`] does: inserts this name,
    /// then fails with the error if given, else records an event of the
    /// resource if given.
    struct Second(&'static str, Option<StoreError>, Option<&'static str>);

    /// Writer `a` inserts "a", records `a_events`, and leaves the batch
    /// open for `b`, which waits behind it and does `second`. Both
    /// answers, and the readers' pool.
    async fn two_writers(
        a_events: Vec<PendingEvent>,
        second: Second,
    ) -> (Result<()>, Result<()>, SqlitePool) {
        let (writes, reads) = database().await;
        let writers = Writers::new(reads.clone(), WriteClock::default());
        let mut a = writers.in_batch().await;
        let a_wrote = insert(&mut a, &writes, "a").await;
        let b = {
            let (writers, writes) = (writers.clone(), writes.clone());
            tokio::spawn(async move {
                let mut b = writers.in_batch().await;
                let Second(name, fails, records) = second;
                let wrote = insert(&mut b, &writes, name).await;
                let wrote = fails.map_or(wrote, Err);
                let events = match &wrote {
                    Ok(()) => records.into_iter().map(event).collect(),
                    Err(_) => Vec::new(),
                };
                let outcome = b.join(wrote.as_ref().err(), events);
                drop(b);
                match outcome {
                    Some(outcome) => outcome.committed().await.and(wrote),
                    None => wrote,
                }
            })
        };
        for _ in 0..2_000 {
            if writers.queued.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(writers.queued.load(Ordering::SeqCst), 1, "b waits behind a");
        let outcome = a.join(a_wrote.as_ref().err(), a_events).unwrap();
        drop(a); // b is waiting: the batch stays open for it
        let b_answer = b.await.unwrap();
        let a_answer = outcome.committed().await.and(a_wrote);
        (a_answer, b_answer, reads)
    }

    /// Writer `a` inserts "a" and leaves the batch open for `b`, which waits
    /// behind it and inserts `b_name`, failing with `b_fails` if given
    /// (after writing). Both answers, and the names committed.
    async fn two_writers_one_batch(
        b_name: &'static str,
        b_fails: Option<StoreError>,
    ) -> (Result<()>, Result<()>, Vec<String>) {
        let (a, b, reads) = two_writers(Vec::new(), Second(b_name, b_fails, None)).await;
        let names = sqlx::query_scalar("SELECT name FROM t ORDER BY name")
            .fetch_all(&reads)
            .await
            .unwrap();
        (a, b, names)
    }

    #[tokio::test]
    async fn writes_queued_together_commit_together() {
        let (a, b, names) = two_writers_one_batch("b", None).await;
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
        assert_eq!(names, ["a", "b"]);
    }

    #[tokio::test]
    async fn a_write_a_constraint_refused_leaves_the_others() {
        let (a, b, names) = two_writers_one_batch("a", None).await;
        assert!(a.is_ok(), "{a:?}");
        assert!(
            matches!(&b, Err(e) if e.leaves_transaction() && !matches!(e, StoreError::Unavailable(_))),
            "{b:?}"
        );
        assert_eq!(names, ["a"]);
    }

    #[tokio::test]
    async fn a_write_that_may_have_ended_the_transaction_fails_the_batch() {
        let (a, b, names) = two_writers_one_batch("b", Some(StoreError::TimedOut)).await;
        assert!(matches!(b, Err(StoreError::TimedOut)), "{b:?}");
        assert!(
            matches!(a, Err(StoreError::Unavailable(_))),
            "a is told, not left to think it was kept: {a:?}"
        );
        assert_eq!(names, Vec::<String>::new(), "nothing of the batch is kept");
    }

    /// Writer `a` writes and gives its batch an event of `a_event`; `b`,
    /// queued behind it, writes and gives one of `b_event`. Both answers,
    /// and the events kept in `seq` order.
    async fn two_events(
        a_event: &str,
        b_event: &'static str,
    ) -> (Result<()>, Result<()>, Vec<String>) {
        let second = Second("b", None, Some(b_event));
        let (a, b, reads) = two_writers(vec![event(a_event)], second).await;
        (a, b, events_kept(&reads).await)
    }

    #[tokio::test]
    async fn a_batch_records_its_writes_events_in_the_order_of_the_writes() {
        let (a, b, events) = two_events("a", "b").await;
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
        assert_eq!(
            events,
            ["a", "b"],
            "a's event, held by the batch, comes first"
        );
    }

    #[tokio::test]
    async fn a_batch_whose_events_cannot_be_recorded_keeps_no_write() {
        for (a_event, b_event) in [("refused", "b"), ("a", "refused")] {
            let (a, b, events) = two_events(a_event, b_event).await;
            assert!(matches!(a, Err(StoreError::Unavailable(_))), "{a:?}");
            assert!(matches!(b, Err(StoreError::Unavailable(_))), "{b:?}");
            assert!(events.is_empty(), "{events:?}");
        }
    }

    #[tokio::test]
    async fn a_write_may_record_more_events_than_one_statement_holds() {
        let (a, b, events) = {
            let many: Vec<PendingEvent> = (0..150).map(|i| event(&format!("a{i:03}"))).collect();
            let (a, b, reads) = two_writers(many, Second("b", None, Some("b"))).await;
            (a, b, events_kept(&reads).await)
        };
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
        let mut expected: Vec<String> = (0..150).map(|i| format!("a{i:03}")).collect();
        expected.push("b".into());
        assert_eq!(events, expected);
    }

    #[tokio::test]
    async fn a_batch_inserts_its_events_before_it_commits() {
        let (writes, reads) = database().await;
        let writers = Writers::new(reads.clone(), WriteClock::default());
        // Two batches (of 40 writes and 31), with 27 and 20 events.
        let mut answers = Vec::new();
        for i in 0..70 {
            let mut turn = writers.in_batch().await;
            let wrote = insert(&mut turn, &writes, &format!("n{i:02}")).await;
            let events = match i % 3 {
                2 => Vec::new(),
                _ => vec![event(&format!("n{i:02}"))],
            };
            answers.push(turn.join(wrote.as_ref().err(), events).unwrap());
            if i % 40 != 39 {
                // Another writer queued: the batch stays open.
                writers.queued.fetch_add(1, Ordering::SeqCst);
                drop(turn);
                writers.queued.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let mut last = writers.in_batch().await;
        last.join(None, Vec::new());
        drop(last);
        for answer in answers {
            answer.committed().await.unwrap();
        }
        let expected: Vec<String> = (0..70)
            .filter(|i| i % 3 != 2)
            .map(|i| format!("n{i:02}"))
            .collect();
        assert_eq!(events_kept(&reads).await, expected);
    }
}
