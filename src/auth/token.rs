//! Bearer credentials: `Authorization: Bearer <ProjectId>:<AccessKey>`, and
//! the generation and hashing of the secrets behind them.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// What the client presented. `Debug` never shows the access key.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub project_id: String,
    pub access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("project_id", &self.project_id)
            .field("access_key", &"<redacted>")
            .finish()
    }
}

/// A project id: 1–64 characters from `[A-Za-z0-9_-]`.
pub fn is_valid_project_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// An access key as presented: URL-safe characters (RFC 3986 unreserved), no `:`.
pub fn is_well_formed_access_key(s: &str) -> bool {
    (1..=512).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// The shortest access key accepted for provisioning (`SCIMD_BOOTSTRAP_TOKEN`):
/// 32 characters, so that a chosen key is not trivially guessable.
pub const MIN_PROVISIONED_KEY_LEN: usize = 32;

/// Parses `<ProjectId>:<AccessKey>` (the token after `Bearer `).
pub fn parse_token(token: &str) -> Option<Credentials> {
    let (project_id, access_key) = token.split_once(':')?;
    (is_valid_project_id(project_id) && is_well_formed_access_key(access_key)).then(|| {
        Credentials {
            project_id: project_id.to_owned(),
            access_key: access_key.to_owned(),
        }
    })
}

/// Parses an `Authorization` header value. The scheme is case-insensitive
/// (RFC 9110 §11.1); anything but a well-formed Bearer token yields `None`.
pub fn parse_authorization(header: &str) -> Option<Credentials> {
    let (scheme, token) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    parse_token(token.trim())
}

/// SHA-256 of an access key: the only form in which a key is stored.
pub fn hash_access_key(access_key: &str) -> [u8; 32] {
    Sha256::digest(access_key.as_bytes()).into()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system's random number generator failed");
    buf
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` uniformly random base62 characters (rejection sampling, no modulo bias).
fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes::<64>() {
            // 248 = 4 × 62: bytes at or above it would bias the result.
            if b < 248 && out.len() < len {
                out.push(BASE62[usize::from(b % 62)] as char);
            }
        }
    }
    out
}

/// A new project id: `P` followed by 27 random base62 characters.
pub fn generate_project_id() -> String {
    format!("P{}", random_base62(27))
}

/// A new access key id (public; used to list and revoke keys).
pub fn generate_key_id() -> String {
    format!("K{}", random_base62(19))
}

/// A new access key: 256 random bits, base64url without padding (43 chars).
pub fn generate_access_key() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_tokens() {
        let c = parse_authorization("Bearer P1:abc").unwrap();
        assert_eq!(
            (c.project_id.as_str(), c.access_key.as_str()),
            ("P1", "abc")
        );
        assert!(parse_authorization("bearer P1:abc").is_some());
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Basic P1:abc",
            "Bearer P1abc",
            "Bearer :abc",
            "Bearer P1:",
            "Bearer P 1:abc",
            "Bearer P1:a:b",
            "Bearer P1:a/b",
        ] {
            assert!(parse_authorization(bad).is_none(), "{bad:?}");
        }
        let long = format!("Bearer {}:k", "p".repeat(65));
        assert!(parse_authorization(&long).is_none());
    }

    #[test]
    fn generated_ids_and_keys_have_the_documented_shape() {
        let p = generate_project_id();
        assert_eq!(p.len(), 28);
        assert!(p.starts_with('P') && is_valid_project_id(&p));
        let k = generate_access_key();
        assert_eq!(k.len(), 43);
        assert!(is_well_formed_access_key(&k) && !k.contains(':'));
        assert_ne!(generate_access_key(), k);
        assert!(format!("{:?}", parse_token(&format!("{p}:{k}")).unwrap()).contains("redacted"));
    }
}
