//! Tombstones: what soft delete keeps (see the migration
//! `…_tombstones.sql`: a database trigger writes one, in the deleting
//! statement, whenever a user or group of a tenant in soft mode goes), how
//! a create revives one, and their purge after retention.
//!
//! Reviving takes the tombstone and re-inserts the resource under its id
//! in one transaction (with its `*.revived` event); the memberships it had
//! then come back one group write each, through the ordinary group write
//! path (with its `group.member_added` events), for the groups that still
//! exist.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{
    GroupWrite, GroupWritten, ModifyError, Result, Store, StoreError, StoredUser, TenantScope,
    UserWrite, retrying,
};
use crate::events::Actor;
use crate::scim::membership::{MemberChange, NewMember};

/// Who the purge's events name.
pub fn retention_actor() -> Value {
    serde_json::json!({"userAgent": "scimd retention"})
}

/// A revived resource's memberships as its tombstone kept them:
/// `[[group id, display], …]`.
pub(super) fn parse_memberships(text: &str) -> Result<Vec<NewMember>> {
    let pairs: Vec<(String, Option<String>)> = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("tombstone memberships: {e}")))?;
    pairs
        .into_iter()
        .map(|(id, display)| {
            Ok(NewMember {
                id: Uuid::parse_str(&id)
                    .map_err(|e| StoreError::Corrupt(format!("tombstone group id: {e}")))?,
                display,
            })
        })
        .collect()
}

/// A revived group's members as its tombstone kept them:
/// `[[member id, type, display], …]`.
pub(super) fn parse_members(text: &str) -> Result<Vec<NewMember>> {
    let rows: Vec<(String, String, Option<String>)> = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("tombstone members: {e}")))?;
    rows.into_iter()
        .map(|(id, _, display)| {
            Ok(NewMember {
                id: Uuid::parse_str(&id)
                    .map_err(|e| StoreError::Corrupt(format!("tombstone member id: {e}")))?,
                display,
            })
        })
        .collect()
}

/// A resource taken back from its tombstone: what was re-inserted, and the
/// memberships (and, for groups, members) it had.
pub struct Revived<T> {
    pub resource: T,
    pub memberships: Vec<NewMember>,
    pub members: Vec<NewMember>,
}

impl Store {
    /// Revives the newest tombstone, deleted after `since`, of a user whose
    /// externalId (when `write` has one; else userName) matches `write`:
    /// the same id, `write`'s document, the version after the deleted one,
    /// a `user.revived` event (with `actor`), and then its memberships of
    /// groups that still exist. `None` when no tombstone matches.
    pub async fn revive_user(
        &self,
        scope: TenantScope,
        write: &UserWrite,
        actor: Option<&Actor>,
        since: DateTime<Utc>,
    ) -> Result<Option<StoredUser>> {
        let revived = retrying(|| async move {
            match self {
                Store::Postgres(s) => s.revive_user(scope, write, actor, since).await,
                Store::Sqlite(s) => s.revive_user(scope, write, actor, since).await,
            }
        })
        .await?;
        let Some(revived) = revived else {
            return Ok(None);
        };
        let id = revived.resource.id;
        self.rejoin(scope, id, revived.memberships, actor).await?;
        Ok(Some(
            self.get_user(scope, id).await?.unwrap_or(revived.resource),
        ))
    }

    /// Like [`Store::revive_user`] for a group (matched by externalId, else
    /// displayName): its members that still exist come back with it,
    /// beside `members` (the create's), and its memberships of other groups.
    pub async fn revive_group(
        &self,
        scope: TenantScope,
        write: &GroupWrite,
        members: Vec<NewMember>,
        actor: Option<&Actor>,
        since: DateTime<Utc>,
    ) -> Result<Option<GroupWritten>> {
        // The create's members must exist before anything is revived (as
        // a create checks them before it writes).
        for m in &members {
            if !self.exists(scope, m.id).await? {
                return Err(StoreError::UnknownMember(m.id.to_string()));
            }
        }
        let revived = retrying(|| async move {
            match self {
                Store::Postgres(s) => s.revive_group(scope, write, actor, since).await,
                Store::Sqlite(s) => s.revive_group(scope, write, actor, since).await,
            }
        })
        .await?;
        let Some(revived) = revived else {
            return Ok(None);
        };
        let id = revived.resource.id;
        let mut joining = members;
        for old in revived.members {
            if !joining.iter().any(|m| m.id == old.id) && self.exists(scope, old.id).await? {
                joining.push(old);
            }
        }
        let written = self.add_members(scope, id, joining, actor).await?;
        self.rejoin(scope, id, revived.memberships, actor).await?;
        Ok(Some(written))
    }

    /// Adds `members` to the group (those already in it stay), its
    /// document unchanged: one ordinary group write, with its events.
    async fn add_members(
        &self,
        scope: TenantScope,
        group: Uuid,
        members: Vec<NewMember>,
        actor: Option<&Actor>,
    ) -> Result<GroupWritten> {
        match self
            .modify_group(
                scope,
                group,
                None,
                |doc| Ok::<_, std::convert::Infallible>((doc.clone(), ())),
                vec![MemberChange::Add(members)],
                actor.cloned(),
            )
            .await
        {
            Ok((written, ())) => Ok(written),
            Err(ModifyError::Store(e)) => Err(e),
            Err(ModifyError::Change(never)) => match never {},
        }
    }

    /// Whether a user or group of the tenant has this id.
    async fn exists(&self, scope: TenantScope, id: Uuid) -> Result<bool> {
        Ok(self.get_user(scope, id).await?.is_some() || self.get_group(scope, id).await?.is_some())
    }

    /// Puts a revived resource back into the groups it was in, those that
    /// still exist, one group write each.
    async fn rejoin(
        &self,
        scope: TenantScope,
        member: Uuid,
        memberships: Vec<NewMember>,
        actor: Option<&Actor>,
    ) -> Result<()> {
        for group in memberships {
            let joining = NewMember {
                id: member,
                display: group.display,
            };
            match self
                .add_members(scope, group.id, vec![joining], actor)
                .await
            {
                // The group is gone: nothing to rejoin.
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Removes tombstones deleted before `cutoff`, recording a
    /// `user.purged` / `group.purged` event for each when `events`.
    /// Returns how many went.
    pub async fn purge_tombstones(&self, cutoff: DateTime<Utc>, events: bool) -> Result<u64> {
        let actor = events.then(retention_actor);
        match self {
            Store::Postgres(s) => s.purge_tombstones(cutoff, actor.as_ref()).await,
            Store::Sqlite(s) => s.purge_tombstones(cutoff, actor.as_ref()).await,
        }
    }
}
