//! Cursors (RFC 9865) that scimd issued, and only those. A cursor names where
//! a page starts (after or before an id) and carries an HMAC-SHA-256 tag
//! under a per-deployment secret kept in the database, so a cursor that was
//! made up or edited is `400 invalidCursor`, and every process of a
//! deployment accepts the cursors of the others.
//!
//! Layout before base64url (no padding, so only RFC 3986 unreserved
//! characters): one byte naming the kind (`n` after an id, `p` before one,
//! `e` a place in the change-event feed), the payload (an id's 16 bytes;
//! for events the tenant and the position), and the tag's first 16 bytes.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::scim::{ScimError, ScimType};
use crate::store::TenantScope;
use crate::store::query::Keyset;

/// The name of the cursor secret in the store.
pub const SECRET_NAME: &str = "cursor-hmac";

const TAG_BYTES: usize = 16;
const BODY_BYTES: usize = 1 + 16;

/// Signs and checks cursors.
#[derive(Clone)]
pub struct CursorKey(Hmac<Sha256>);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(…)")
    }
}

impl CursorKey {
    pub fn new(secret: &[u8]) -> CursorKey {
        CursorKey(Hmac::new_from_slice(secret).expect("HMAC takes a key of any length"))
    }

    fn tag(&self, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(body);
        mac
    }

    /// `kind` and `payload`, signed: base64url of both and the tag.
    pub fn seal(&self, kind: u8, payload: &[u8]) -> String {
        let mut raw = Vec::with_capacity(1 + payload.len() + TAG_BYTES);
        raw.push(kind);
        raw.extend_from_slice(payload);
        let tag = self.tag(&raw).finalize().into_bytes();
        raw.extend_from_slice(&tag[..TAG_BYTES]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// The kind and payload of a token [`CursorKey::seal`] made with this
    /// key; `None` for anything else.
    pub fn open(&self, text: &str) -> Option<(u8, Vec<u8>)> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        if raw.len() < 1 + TAG_BYTES {
            return None;
        }
        let (body, tag) = raw.split_at(raw.len() - TAG_BYTES);
        self.tag(body).verify_truncated_left(tag).ok()?;
        Some((body[0], body[1..].to_vec()))
    }

    /// `kind` and `payload` for one tenant only: sealed with its id first.
    pub fn seal_for(&self, kind: u8, scope: TenantScope, payload: &[u8]) -> String {
        let mut body = Vec::with_capacity(16 + payload.len());
        body.extend_from_slice(scope.tenant_id().as_bytes());
        body.extend_from_slice(payload);
        self.seal(kind, &body)
    }

    /// The payload of a token [`CursorKey::seal_for`] made with this key,
    /// this `kind` and this tenant; `None` for anything else.
    pub fn open_for(&self, kind: u8, scope: TenantScope, text: &str) -> Option<Vec<u8>> {
        let (found, body) = self.open(text)?;
        let payload = body.strip_prefix(scope.tenant_id().as_bytes().as_slice())?;
        (found == kind).then(|| payload.to_vec())
    }

    pub fn encode(&self, at: Keyset) -> String {
        let (kind, id) = match at {
            Keyset::After(id) => (b'n', id),
            Keyset::Before(id) => (b'p', id),
        };
        self.seal(kind, id.as_bytes())
    }

    pub fn decode(&self, text: &str) -> Result<Keyset, ScimError> {
        let invalid = || {
            ScimError::bad_request(
                ScimType::InvalidCursor,
                format!("'{text}' is not a cursor this server issued"),
            )
        };
        let (kind, payload) = self.open(text).ok_or_else(invalid)?;
        if payload.len() != BODY_BYTES - 1 {
            return Err(invalid());
        }
        let id = Uuid::from_slice(&payload).map_err(|_| invalid())?;
        match kind {
            b'n' => Ok(Keyset::After(id)),
            b'p' => Ok(Keyset::Before(id)),
            _ => Err(invalid()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let key = CursorKey::new(b"one deployment's secret");
        let id = Uuid::now_v7();
        for at in [Keyset::After(id), Keyset::Before(id)] {
            assert_eq!(key.decode(&key.encode(at)).unwrap(), at);
        }
        let good = key.encode(Keyset::After(id));
        let other = CursorKey::new(b"another deployment");
        assert!(other.decode(&good).is_err(), "another secret's cursor");
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&good)
            .unwrap();
        raw[5] ^= 1;
        let edited = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
        assert!(key.decode(&edited).is_err(), "an edited id");
        let unsigned = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("n{id}"));
        assert!(key.decode(&unsigned).is_err(), "the old unsigned form");
        assert!(key.decode("").is_err() && key.decode("!!").is_err());
    }
}
