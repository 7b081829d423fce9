//! A tenant's deprovisioning policy over HTTP: how SCIM writes meet it
//! (the pause switch, the deletion circuit breaker) and `/api/v1/tenant`,
//! where a tenant-admin key reads and changes it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use super::AppState;
use super::error::ApiError;
use super::problem::{AdminActor, Problem, json_response, object};
use crate::events::Actor;
use crate::scim::ScimError;
use crate::store::{
    DeleteMode, Deletion, DeletionThreshold, PolicyChange, TenantPolicy, TenantScope, TenantState,
};

/// When a paused tenant's client should try again (seconds).
const PAUSED_RETRY_AFTER: u64 = 60;
/// When a client whose deletion is held should try again (seconds): an
/// admin has to act first, so not soon.
const HELD_RETRY_AFTER: u64 = 300;

/// The answer to a write of a paused tenant.
pub(super) fn paused() -> ApiError {
    ApiError(
        ScimError::new(
            503,
            None,
            "Provisioning for this tenant is paused by its administrator; writes are refused \
             until it is resumed (reads keep working)",
        ),
        Some(PAUSED_RETRY_AFTER),
    )
}

fn held() -> ApiError {
    ApiError(
        ScimError::new(
            503,
            None,
            "This tenant's deletion threshold tripped: deletes and deactivations are held until \
             an administrator releases them (scimd admin tenant release, or POST \
             /api/v1/tenant/release); other changes keep working",
        ),
        Some(HELD_RETRY_AFTER),
    )
}

/// Whether deletes and deactivations must pass the breaker: a threshold is
/// set or it tripped.
pub(super) fn guards_deletions(policy: &TenantPolicy) -> bool {
    policy.deletion_threshold.is_some() || policy.held_since.is_some()
}

/// Lets one delete or deactivation through the tenant's breaker, or
/// answers `503` when it is held (tripping it if this one is past the
/// threshold).
pub(super) async fn allow_deletion(
    state: &AppState,
    policy: &TenantPolicy,
    scope: TenantScope,
    actor: Option<&Actor>,
) -> Result<(), ApiError> {
    if !guards_deletions(policy) {
        return Ok(());
    }
    let actor = actor.map(Actor::to_json);
    match state
        .store()
        .count_deletion(scope.tenant_id(), actor.as_ref())
        .await?
    {
        Deletion::Allowed => Ok(()),
        Deletion::Held { tripped } => {
            if tripped {
                tracing::warn!(tenant = %scope.tenant_id(), "deletion threshold tripped: deletes and deactivations held");
                // The next request of this process sees the breaker held.
                state.verifier().forget_tenant(scope);
            }
            Err(held())
        }
    }
}

/// Since when a tombstone may be revived: within the retention, when the
/// tenant deletes softly (`None` otherwise: creates create).
pub(super) fn revivable_since(
    state: &AppState,
    policy: &TenantPolicy,
) -> Option<chrono::DateTime<chrono::Utc>> {
    if policy.delete_mode != DeleteMode::Soft {
        return None;
    }
    let retention = chrono::TimeDelta::from_std(state.settings().tombstone_retention).ok()?;
    crate::store::now().checked_sub_signed(retention)
}

/// Reads `PATCH /api/v1/tenant`'s body.
fn change_of(body: &Map<String, Value>) -> Result<PolicyChange, Problem> {
    let mut change = PolicyChange::default();
    for (name, value) in body {
        match (name.as_str(), value) {
            ("deleteMode", Value::String(mode)) => {
                change.delete_mode = Some(DeleteMode::parse(mode).map_err(Problem::bad_request)?);
            }
            ("deletionThreshold", Value::Null) => change.deletion_threshold = Some(None),
            ("deletionThreshold", Value::String(text)) if text == "off" => {
                change.deletion_threshold = Some(None)
            }
            ("deletionThreshold", Value::String(text)) => {
                change.deletion_threshold = Some(Some(
                    DeletionThreshold::parse(text).map_err(Problem::bad_request)?,
                ));
            }
            ("paused", Value::Bool(paused)) => change.paused = Some(*paused),
            ("deleteMode" | "deletionThreshold" | "paused", other) => {
                return Err(Problem::bad_request(format!(
                    "{name} cannot be {other}: deleteMode is \"hard\" or \"soft\", \
                     deletionThreshold \"N/WINDOW\" (\"50/1h\") or null, paused true or false"
                )));
            }
            (other, _) => {
                return Err(Problem::bad_request(format!(
                    "{other} is not a setting: deleteMode, deletionThreshold and paused are"
                )));
            }
        }
    }
    Ok(change)
}

fn answer(state: Option<TenantState>) -> Result<Response, Problem> {
    let state = state.ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "No such tenant"))?;
    Ok(json_response(StatusCode::OK, &state.to_json()))
}

/// Who the change's event names, when events are recorded.
fn event_actor(state: &AppState, actor: &Actor) -> Option<Value> {
    state.settings().events.then(|| actor.to_json())
}

/// `GET /api/v1/tenant`: the key's tenant and its policy.
pub async fn get(
    State(state): State<AppState>,
    AdminActor(scope, _): AdminActor,
) -> Result<Response, Problem> {
    answer(state.store().tenant_state(scope.tenant_id()).await?)
}

/// `PATCH /api/v1/tenant {"deleteMode", "deletionThreshold", "paused"}`.
pub async fn patch(
    State(state): State<AppState>,
    AdminActor(scope, actor): AdminActor,
    body: Bytes,
) -> Result<Response, Problem> {
    let change = change_of(&object(&body)?)?;
    let changed = state
        .store()
        .change_policy(
            scope.tenant_id(),
            &change,
            event_actor(&state, &actor).as_ref(),
        )
        .await?;
    state.verifier().forget_tenant(scope);
    answer(changed)
}

/// `POST /api/v1/tenant/release`: lets held deletions through again.
pub async fn release(
    State(state): State<AppState>,
    AdminActor(scope, actor): AdminActor,
) -> Result<Response, Problem> {
    let released = state
        .store()
        .release_deletions(scope.tenant_id(), event_actor(&state, &actor).as_ref())
        .await?;
    state.verifier().forget_tenant(scope);
    answer(released)
}
