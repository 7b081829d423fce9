//! Verifying access keys, with a short-lived, bounded cache so that a request
//! costs no database round trip (and never a write) in the common case.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

use super::token::{Credentials, hash_access_key};
use crate::store::{Store, StoreError, TenantPolicy, TenantScope};

/// How often `last_used_at` is written for a key, at most.
const TOUCH_INTERVAL: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// Cached verifications kept at most by default; past the bound, stale
/// entries are dropped, and if that is not enough the cache is emptied.
const MAX_CACHED: usize = 10_000;

/// A verified key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub project_id: String,
    pub scope: TenantScope,
    pub role: String,
    /// The tenant's deprovisioning policy as it was when the key was
    /// verified (at most the cache's lifetime ago).
    pub policy: TenantPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Deliberately one variant for every way a credential can be wrong.
    #[error("authentication failed")]
    Unauthenticated,
    #[error("the access key's role does not allow this operation")]
    Forbidden,
    /// The key's rate limit is spent; a token comes after this long.
    #[error("too many requests with this access key")]
    RateLimited(std::time::Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Cached {
    principal: Principal,
    expires_at: Option<DateTime<Utc>>,
    verified_at: Instant,
}

pub struct KeyVerifier {
    store: Store,
    ttl: Duration,
    capacity: usize,
    cache: Mutex<HashMap<(String, [u8; 32]), Cached>>,
}

impl KeyVerifier {
    /// `ttl` bounds how long a revoked key keeps working in this process.
    pub fn new(store: Store, ttl: Duration) -> Self {
        Self::with_capacity(store, ttl, MAX_CACHED)
    }

    /// A verifier that caches at most `capacity` verifications.
    pub fn with_capacity(store: Store, ttl: Duration, capacity: usize) -> Self {
        KeyVerifier {
            store,
            ttl,
            capacity: capacity.max(1),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// How many verifications are cached now.
    pub fn cached(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub async fn verify(&self, creds: &Credentials) -> Result<Principal, AuthError> {
        let hash = hash_access_key(&creds.access_key);
        let cache_key = (creds.project_id.clone(), hash);
        let now = Utc::now();
        let cached = self.lookup(&cache_key, now);
        if let Some(m) = crate::metrics::get() {
            m.auth_cache(cached.is_some());
        }
        if let Some(p) = cached {
            return Ok(p);
        }

        let candidates = self.store.find_keys(&creds.project_id, &hash[..8]).await?;
        let Some(key) = candidates
            .into_iter()
            .find(|k| bool::from(k.secret_hash.as_slice().ct_eq(&hash)))
        else {
            return Err(AuthError::Unauthenticated);
        };
        if key.revoked_at.is_some() || key.expires_at.is_some_and(|t| t <= now) {
            return Err(AuthError::Unauthenticated);
        }
        if key.last_used_at.is_none_or(|t| now - t >= TOUCH_INTERVAL) {
            let store = self.store.clone();
            let key_id = key.id.clone();
            tokio::spawn(async move {
                if let Err(e) = store.touch_key(&key_id, crate::store::now()).await {
                    tracing::debug!(error = %e, "could not record key use");
                }
            });
        }
        let principal = Principal {
            key_id: key.id,
            project_id: key.project_id,
            scope: TenantScope::new(key.tenant_id),
            role: key.role,
            policy: key.policy,
        };
        self.remember(cache_key, &principal, key.expires_at);
        Ok(principal)
    }

    /// Forgets the verifications of `scope`'s keys, so that the next
    /// request reads the tenant's policy afresh (after this process changed
    /// it).
    pub fn forget_tenant(&self, scope: TenantScope) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, c| c.principal.scope != scope);
    }

    fn lookup(&self, key: &(String, [u8; 32]), now: DateTime<Utc>) -> Option<Principal> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let hit = cache.get(key)?;
        let fresh = hit.verified_at.elapsed() < self.ttl && hit.expires_at.is_none_or(|t| t > now);
        fresh.then(|| hit.principal.clone())
    }

    fn remember(
        &self,
        key: (String, [u8; 32]),
        principal: &Principal,
        expires_at: Option<DateTime<Utc>>,
    ) {
        if self.ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.capacity {
            let ttl = self.ttl;
            cache.retain(|_, c| c.verified_at.elapsed() < ttl);
            if cache.len() >= self.capacity {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                principal: principal.clone(),
                expires_at,
                verified_at: Instant::now(),
            },
        );
    }
}
