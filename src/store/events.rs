//! The change-event outbox: what the store records with every committed
//! write of a User or Group, and how a reader follows it.
//!
//! Order. A reader must see every committed event of its tenant exactly
//! once, and a resource's events in version order, with any number of
//! writers and processes, without a counter row every write would queue on.
//!
//! - SQLite has one writer at a time, so the rowid a transaction's events
//!   get (the table's largest plus one) is its commit order.
//! - PostgreSQL: an event is keyed by its transaction's id (`xid8`) and a
//!   sequence number, and read in that order, but only below the oldest
//!   transaction of this database still running (not the snapshot's
//!   `xmin`, which any database of the cluster holds back; see
//!   `postgres_events.rs`): everything below it has committed or never
//!   will, so nothing can appear behind a reader's position later. Transaction ids follow the start of a transaction's
//!   first write, not its commit; a write that waits for a row lock may hold
//!   an older id than the transaction it waited for. Every write whose event
//!   could land out of a resource's version order that way checks, once it
//!   holds the row, that the row's last writer (`xmin`) is not younger than
//!   itself (`age(xmin) >= 0`), and starts over if it is (see the group
//!   writes and the delete trigger).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{GroupRef, MemberKind};
use crate::events::{Actor, Change, EventType};

/// A place in a tenant's feed: every event at or before it has been read.
/// On SQLite `xid` is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub xid: i64,
    pub seq: i64,
}

impl Position {
    /// Before every event.
    pub const START: Position = Position { xid: 0, seq: 0 };
}

/// The resource as it was at the event (after the change; before it, for
/// deletes): what the events API renders as `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub doc: Map<String, Value>,
    /// A user's groups (empty for groups).
    pub groups: Vec<GroupRef>,
}

/// What an event is about: a User, a Group, or (for its policy) the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventResource {
    User,
    Group,
    Tenant,
}

impl EventResource {
    pub fn as_str(self) -> &'static str {
        match self {
            EventResource::User => "User",
            EventResource::Group => "Group",
            EventResource::Tenant => "Tenant",
        }
    }

    pub(super) fn parse(s: &str) -> EventResource {
        match s {
            "Group" => EventResource::Group,
            "Tenant" => EventResource::Tenant,
            _ => EventResource::User,
        }
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub position: Position,
    pub id: Uuid,
    pub kind: EventType,
    pub occurred_at: DateTime<Utc>,
    pub resource: EventResource,
    pub resource_id: Uuid,
    pub version: i64,
    pub actor: Value,
    pub changed: Vec<String>,
    pub snapshot: Option<Snapshot>,
    pub member: Option<(Uuid, MemberKind)>,
}

/// What a reader asks for.
#[derive(Debug, Clone)]
pub struct EventQuery {
    pub after: Position,
    pub limit: u64,
    /// Only these types (all when empty).
    pub types: Vec<EventType>,
    pub resource_id: Option<Uuid>,
    /// A reader that may have just written: on PostgreSQL, a page that
    /// reaches the end of the feed while transactions were running waits
    /// for them (at most a couple of seconds) and reads again, so that it
    /// sees what committed before it asked. A background consumer that
    /// reads again soon anyway (webhook delivery, a long poll's later
    /// reads) does not wait. `limit = 0` (the head) always waits.
    pub settle: bool,
}

/// A page of events.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// Where the next read starts: after the last event returned, or at the
    /// head when the page holds every settled event after the query's start.
    pub next: Position,
    pub has_more: bool,
}

impl EventPage {
    /// The page from up to `limit + 1` rows read after the query's start,
    /// and the head: the position at or below which every event is settled.
    pub(super) fn from_rows(mut events: Vec<StoredEvent>, q: &EventQuery, head: Position) -> Self {
        if q.limit == 0 {
            // Where a consumer starts before re-listing everything: the head.
            return EventPage {
                events: Vec::new(),
                next: head.max(q.after),
                has_more: false,
            };
        }
        let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
        let has_more = events.len() > limit;
        events.truncate(limit);
        let last = events.last().map_or(q.after, |e| e.position);
        let next = match has_more {
            true => last,
            false => last.max(head).max(q.after),
        };
        EventPage {
            events,
            next,
            has_more,
        }
    }
}

/// An event a write records.
#[derive(Debug, Clone)]
pub(super) struct NewEvent {
    pub kind: EventType,
    pub resource: MemberKind,
    pub resource_id: Uuid,
    pub version: i64,
    pub changed: Vec<String>,
    pub snapshot: Option<Snapshot>,
    pub member: Option<(Uuid, MemberKind)>,
}

impl NewEvent {
    /// A group's event with the group as it now is.
    pub fn group(kind: EventType, group: &super::StoredGroup, changed: Vec<String>) -> NewEvent {
        NewEvent {
            kind,
            resource: MemberKind::Group,
            resource_id: group.id,
            version: group.version,
            changed,
            snapshot: Some(Snapshot {
                created: group.created,
                modified: group.modified,
                doc: group.doc.clone(),
                groups: Vec::new(),
            }),
            member: None,
        }
    }

    /// A user's event with the user as it now is (as it was, for a delete).
    pub fn user<D: std::borrow::Borrow<Map<String, Value>>>(
        kind: EventType,
        user: &super::StoredUser<D>,
        changed: Vec<String>,
    ) -> NewEvent {
        NewEvent {
            kind,
            resource: MemberKind::User,
            resource_id: user.id,
            version: user.version,
            changed,
            snapshot: Some(Snapshot {
                created: user.created,
                modified: user.modified,
                doc: user.doc.borrow().clone(),
                groups: user.groups.clone(),
            }),
            member: None,
        }
    }

    /// A member joining (`added`) or leaving a group at `version`.
    pub fn member(group: Uuid, version: i64, member: &super::Member, added: bool) -> NewEvent {
        NewEvent {
            kind: match added {
                true => EventType::GroupMemberAdded,
                false => EventType::GroupMemberRemoved,
            },
            resource: MemberKind::Group,
            resource_id: group,
            version,
            changed: Vec::new(),
            snapshot: None,
            member: Some((member.id, member.kind)),
        }
    }
}

/// A user write's event: who made it, and what it changed.
#[derive(Debug, Clone, Copy)]
pub struct UserEvent<'a> {
    pub actor: &'a Actor,
    pub change: &'a Change,
}

/// A user's groups as stored with its events: `[[id, display], …]`, what
/// `GroupRef::parse_list` reads.
pub(super) fn groups_json(groups: &[super::GroupRef]) -> Value {
    groups
        .iter()
        .map(|g| Value::Array(vec![g.id.to_string().into(), g.display.clone().into()]))
        .collect()
}

/// Parses a stored type name.
pub(super) fn event_type(text: &str) -> super::Result<EventType> {
    EventType::parse(text).ok_or_else(|| super::StoreError::Corrupt(format!("event type {text}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64) -> StoredEvent {
        StoredEvent {
            position: Position { xid: 0, seq },
            id: Uuid::nil(),
            kind: EventType::UserCreated,
            occurred_at: DateTime::UNIX_EPOCH,
            resource: EventResource::User,
            resource_id: Uuid::nil(),
            version: 1,
            actor: Value::Null,
            changed: Vec::new(),
            snapshot: None,
            member: None,
        }
    }

    #[test]
    fn a_page_ends_at_its_last_event_or_at_the_head() {
        let q = EventQuery {
            after: Position { xid: 0, seq: 1 },
            limit: 2,
            types: Vec::new(),
            resource_id: None,
            settle: true,
        };
        let head = Position { xid: 0, seq: 9 };
        let full = EventPage::from_rows(vec![event(2), event(3), event(4)], &q, head);
        assert!(full.has_more);
        assert_eq!((full.events.len(), full.next.seq), (2, 3));
        let short = EventPage::from_rows(vec![event(2)], &q, head);
        assert!(!short.has_more);
        assert_eq!(short.next, head);
        let empty = EventPage::from_rows(Vec::new(), &q, Position::START);
        assert_eq!(empty.next, q.after, "never behind where the reader was");
        let at_head = EventQuery { limit: 0, ..q };
        let page = EventPage::from_rows(vec![event(2)], &at_head, head);
        assert!(page.events.is_empty() && !page.has_more);
        assert_eq!(page.next, head, "limit=0 answers the head");
    }
}
