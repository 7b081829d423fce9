//! Group writes, decided once for both backends: what a create or a change
//! of a group does, in which order, and what it returns. A backend supplies
//! only the statements ([`GroupTx`]) and the transaction around them.
//!
//! Lock order: the members a write adds are locked (against deletion) before
//! the group row (against other writers). Deleting a user or a group locks
//! that row first and then, through its trigger, the groups it leaves: the
//! same order, so an add racing a delete never deadlocks, and either the add
//! commits first and the delete removes the new membership with the member,
//! or the delete commits first and the add finds no such member.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::events::NewEvent;
use super::{ModifyError, Result, StoreError, now};
use crate::events::{self, EventType};
use crate::scim::membership::{MemberChange, NewMember};

/// A group as stored: its members live in their own table.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredGroup {
    pub id: Uuid,
    pub version: i64,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub doc: Map<String, Value>,
}

/// What a group create or replace writes besides its members.
#[derive(Debug, Clone)]
pub struct GroupWrite {
    pub display_name: String,
    pub display_name_lower: String,
    pub external_id: Option<String>,
    pub doc: Map<String, Value>,
}

impl GroupWrite {
    /// Derives the indexed columns from a validated Group document (without members).
    pub fn from_doc(doc: Map<String, Value>) -> GroupWrite {
        let display_name = doc
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        GroupWrite {
            display_name_lower: crate::scim::resource::caseless(&display_name),
            display_name,
            external_id: doc
                .get("externalId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            doc,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    User,
    Group,
}

impl MemberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::User => "User",
            MemberKind::Group => "Group",
        }
    }
    pub(super) fn parse(s: &str) -> MemberKind {
        if s == "Group" {
            MemberKind::Group
        } else {
            MemberKind::User
        }
    }
}

/// One member of a group, with the name to show for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: Uuid,
    pub kind: MemberKind,
    pub display: Option<String>,
}

/// A group after a write.
#[derive(Debug)]
pub struct GroupWritten {
    pub group: StoredGroup,
    /// All of its members (ordered by id), when the write set them all
    /// (a create, a replace of the whole set); else ask the store.
    pub members: Option<Vec<Member>>,
}

/// How many members a group has, and the first of them (ordered by id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberPage {
    pub total: u64,
    pub members: Vec<Member>,
}

/// Member pages from rows of (group, the group's member count, a member),
/// in member order, as both backends' `members_of` statements return them.
pub(super) fn member_pages(
    rows: impl IntoIterator<Item = (Uuid, i64, Member)>,
) -> HashMap<Uuid, MemberPage> {
    let mut pages: HashMap<Uuid, MemberPage> = HashMap::new();
    for (group, total, member) in rows {
        let page = pages.entry(group).or_default();
        page.total = u64::try_from(total).unwrap_or_default();
        page.members.push(member);
    }
    pages
}

/// The statements of one group write, inside a transaction the backend
/// opened and will end. Every statement is confined to the tenant the
/// transaction was opened for.
pub(super) trait GroupTx: Send {
    /// The users and groups among `ids`, with their kinds, locked against
    /// deletion until the transaction ends.
    fn lock_members(
        &mut self,
        ids: &[Uuid],
    ) -> impl Future<Output = Result<HashMap<Uuid, MemberKind>>> + Send;
    /// What a change of group `id` locks, in one round trip where the
    /// backend can: the users and groups among `members` as
    /// [`GroupTx::lock_members`] does, then the group against other writers
    /// until the transaction ends. `StoreError::Contention` if the group's
    /// last writer's events would read after this transaction's (see
    /// `events.rs`).
    fn lock_change(
        &mut self,
        members: &[Uuid],
        id: Uuid,
    ) -> impl Future<Output = Result<(HashMap<Uuid, MemberKind>, Option<StoredGroup>)>> + Send;
    /// Inserts a group at version 1.
    fn insert_group(
        &mut self,
        id: Uuid,
        at: DateTime<Utc>,
        w: &GroupWrite,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Writes the group's columns and document and moves its version;
    /// records `events` (when [`GroupTx::records_events`]) in the same
    /// statement, each at the group's new version.
    fn update_group(
        &mut self,
        id: Uuid,
        w: &GroupWrite,
        at: DateTime<Utc>,
        events: &[NewEvent],
    ) -> impl Future<Output = Result<StoredGroup>> + Send;
    /// Inserts the members not yet present; with `set_display`, also sets
    /// the display of present ones whose display differs. The rows written,
    /// and the members that joined.
    fn put_members(
        &mut self,
        group: Uuid,
        members: &[Member],
        set_display: bool,
    ) -> impl Future<Output = Result<(u64, Vec<Member>)>> + Send;
    /// Deletes these members where present: those that left.
    fn delete_members(
        &mut self,
        group: Uuid,
        ids: &[Uuid],
    ) -> impl Future<Output = Result<Vec<Member>>> + Send;
    /// Deletes every member but `keep` (every member, if `keep` is empty):
    /// those that left.
    fn delete_members_except(
        &mut self,
        group: Uuid,
        keep: &[Uuid],
    ) -> impl Future<Output = Result<Vec<Member>>> + Send;
    /// Whether this write records change events.
    fn records_events(&self) -> bool;
    /// Records change events (when [`GroupTx::records_events`]).
    fn insert_events(&mut self, events: &[NewEvent]) -> impl Future<Output = Result<()>> + Send;
}

/// The members that `changes` add or keep, by id, sorted.
fn joining(changes: &[MemberChange]) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = changes
        .iter()
        .flat_map(MemberChange::joining)
        .map(|m| m.id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// `kinds`, once every one of `ids` is among them: each a user or group of
/// the tenant.
fn all_found(ids: &[Uuid], kinds: HashMap<Uuid, MemberKind>) -> Result<HashMap<Uuid, MemberKind>> {
    match ids.iter().find(|id| !kinds.contains_key(id)) {
        Some(missing) => Err(StoreError::UnknownMember(missing.to_string())),
        None => Ok(kinds),
    }
}

/// `members` with their kinds, ordered by id.
fn resolved(members: &[NewMember], kinds: &HashMap<Uuid, MemberKind>) -> Vec<Member> {
    let mut out: Vec<Member> = members
        .iter()
        .map(|m| Member {
            id: m.id,
            kind: kinds[&m.id],
            display: m.display.clone(),
        })
        .collect();
    out.sort_unstable_by_key(|m| m.id);
    out
}

/// Creates a group with its members.
pub(super) async fn create(
    tx: &mut impl GroupTx,
    w: GroupWrite,
    members: Vec<NewMember>,
) -> Result<GroupWritten> {
    let add = [MemberChange::Add(members)];
    let ids = joining(&add);
    let kinds = match ids.is_empty() {
        true => HashMap::new(),
        false => all_found(&ids, tx.lock_members(&ids).await?)?,
    };
    let members = resolved(add[0].joining(), &kinds);
    let (id, at) = (Uuid::now_v7(), now());
    tx.insert_group(id, at, &w).await?;
    if !members.is_empty() {
        tx.put_members(id, &members, false).await?;
    }
    let group = StoredGroup {
        id,
        version: 1,
        created: at,
        modified: at,
        doc: w.doc,
    };
    if tx.records_events() {
        let mut events = vec![NewEvent::group(EventType::GroupCreated, &group, Vec::new())];
        events.extend(members.iter().map(|m| NewEvent::member(id, 1, m, true)));
        tx.insert_events(&events).await?;
    }
    Ok(GroupWritten {
        group,
        members: Some(members),
    })
}

/// Members that joined (+1) and left (-1) over a write's changes, so that a
/// member removed and added back in one request makes no event.
#[derive(Default)]
struct Movement(HashMap<Uuid, (Member, i32)>);

impl Movement {
    fn record(&mut self, members: Vec<Member>, step: i32) {
        for m in members {
            self.0.entry(m.id).or_insert((m, 0)).1 += step;
        }
    }

    /// The net joins (`true`) and departures, ordered by member id.
    fn net(self) -> Vec<(Member, bool)> {
        let mut out: Vec<(Member, bool)> = self
            .0
            .into_values()
            .filter(|(_, n)| *n != 0)
            .map(|(m, n)| (m, n > 0))
            .collect();
        out.sort_unstable_by_key(|(m, _)| m.id);
        out
    }
}

/// Applies one membership change; `true` when a row changed.
async fn apply(
    tx: &mut impl GroupTx,
    group: Uuid,
    change: &MemberChange,
    kinds: &HashMap<Uuid, MemberKind>,
    moved: &mut Movement,
) -> Result<bool> {
    Ok(match change {
        MemberChange::Add(m) => {
            let (written, joined) = tx.put_members(group, &resolved(m, kinds), false).await?;
            moved.record(joined, 1);
            written > 0
        }
        MemberChange::Remove(ids) if ids.is_empty() => false,
        MemberChange::Remove(ids) => {
            let left = tx.delete_members(group, ids).await?;
            let changed = !left.is_empty();
            moved.record(left, -1);
            changed
        }
        MemberChange::RemoveMatching(values) => {
            let ids: Vec<Uuid> = values
                .iter()
                .filter_map(|v| Uuid::parse_str(v).ok())
                .collect();
            let left = match ids.is_empty() {
                true => Vec::new(),
                false => tx.delete_members(group, &ids).await?,
            };
            if left.is_empty() {
                return Err(StoreError::NoTarget(format!(
                    "no member matches value {}",
                    values.join(", ")
                )));
            }
            moved.record(left, -1);
            true
        }
        MemberChange::RemoveAll => {
            let left = tx.delete_members_except(group, &[]).await?;
            let changed = !left.is_empty();
            moved.record(left, -1);
            changed
        }
        MemberChange::ReplaceAll(m) => {
            let keep: Vec<Uuid> = m.iter().map(|m| m.id).collect();
            let left = tx.delete_members_except(group, &keep).await?;
            let (written, joined) = tx.put_members(group, &resolved(m, kinds), true).await?;
            let changed = !left.is_empty() || written > 0;
            moved.record(left, -1);
            moved.record(joined, 1);
            changed
        }
    })
}

/// Changes a group: its document through `change`, its members through
/// `changes`, and records the events of what changed. Returns the group,
/// what `change` returned besides the document, and whether anything
/// changed (if not, the caller rolls back and the version stays).
pub(super) async fn modify<T, E>(
    tx: &mut impl GroupTx,
    id: Uuid,
    if_version: Option<i64>,
    change: impl FnOnce(&Map<String, Value>) -> std::result::Result<(Map<String, Value>, T), E>,
    changes: &[MemberChange],
) -> std::result::Result<(GroupWritten, T, bool), ModifyError<E>> {
    let ids = joining(changes);
    let (kinds, current) = tx.lock_change(&ids, id).await?;
    let current = current.ok_or(StoreError::NotFound)?;
    let kinds = all_found(&ids, kinds)?;
    if if_version.is_some_and(|v| v != current.version) {
        return Err(StoreError::VersionMismatch.into());
    }
    let (doc, out) = change(&current.doc).map_err(ModifyError::Change)?;
    let doc_change = match tx.records_events() {
        true => events::group_update(&current.doc, &doc),
        false => None,
    };
    let mut changed = doc != current.doc;
    let mut moved = Movement::default();
    for c in changes {
        changed |= apply(tx, id, c, &kinds, &mut moved).await?;
    }
    let members = match changes {
        [MemberChange::ReplaceAll(m)] => Some(resolved(m, &kinds)),
        [MemberChange::RemoveAll] => Some(Vec::new()),
        _ => None,
    };
    if !changed {
        return Ok((
            GroupWritten {
                group: current,
                members,
            },
            out,
            false,
        ));
    }
    let at = now();
    // The events' version is the one the update gives the group.
    let mut events = Vec::new();
    if tx.records_events() {
        let after = StoredGroup {
            id,
            version: 0,
            created: current.created,
            modified: at,
            doc: doc.clone(),
        };
        events.extend(doc_change.map(|c| NewEvent::group(c.kind, &after, c.changed)));
        events.extend(
            moved
                .net()
                .iter()
                .map(|(m, joined)| NewEvent::member(id, 0, m, *joined)),
        );
    }
    let group = tx
        .update_group(id, &GroupWrite::from_doc(doc), at, &events)
        .await?;
    Ok((GroupWritten { group, members }, out, true))
}
