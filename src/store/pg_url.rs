//! A PostgreSQL `DATABASE_URL` read the way libpq reads it, where sqlx
//! reads it otherwise. TLS is rustls (no OpenSSL), and sqlx trusts the
//! system's certificate store in every verifying mode, besides
//! `sslrootcert` when given. libpq differs in two places this module
//! closes:
//!
//! - `sslrootcert=system` names that system store (sqlx would look for a
//!   file called `system`); it makes `sslmode` default to `verify-full`, and
//!   libpq refuses a weaker mode with it.
//! - `sslmode=require` with a root certificate file verifies the server's
//!   certificate against it, as `verify-ca` does.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::{Result, StoreError};

/// The options of a PostgreSQL URL, read as libpq documents.
pub(super) fn options(url: &str) -> Result<PgConnectOptions> {
    let bad = |msg: String| StoreError::Unavailable(format!("DATABASE_URL: {msg}"));
    let mut parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    let value = |key: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let mode = value("sslmode");
    let system = value("sslrootcert") == Some("system");
    if system {
        if let Some(m) = mode.filter(|m| *m != "verify-full") {
            return Err(bad(format!(
                "sslmode={m} is not allowed with sslrootcert=system (libpq requires verify-full)"
            )));
        }
        let kept: Vec<&(String, String)> =
            pairs.iter().filter(|(k, _)| k != "sslrootcert").collect();
        match kept.is_empty() {
            true => parsed.set_query(None),
            false => {
                parsed.query_pairs_mut().clear().extend_pairs(kept);
            }
        }
    }
    let options = PgConnectOptions::from_str(parsed.as_str()).map_err(StoreError::from_sqlx)?;
    let root_file =
        !system && (value("sslrootcert").is_some() || std::env::var_os("PGSSLROOTCERT").is_some());
    Ok(match options.get_ssl_mode() {
        _ if system && mode.is_none() => options.ssl_mode(PgSslMode::VerifyFull),
        PgSslMode::Require if root_file => options.ssl_mode(PgSslMode::VerifyCa),
        _ => options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> PgSslMode {
        options(url).expect("valid").get_ssl_mode()
    }

    #[test]
    fn modes_read_as_libpq_documents() {
        let base = "postgres://u@db.example.com:5432/scimd";
        assert!(matches!(mode(base), PgSslMode::Prefer));
        assert!(matches!(
            mode(&format!("{base}?sslmode=disable")),
            PgSslMode::Disable
        ));
        assert!(matches!(
            mode(&format!("{base}?sslmode=require")),
            PgSslMode::Require
        ));
        assert!(matches!(
            mode(&format!("{base}?sslmode=require&sslrootcert=/etc/ca.pem")),
            PgSslMode::VerifyCa
        ));
        assert!(matches!(
            mode(&format!("{base}?sslmode=verify-ca&sslrootcert=/etc/ca.pem")),
            PgSslMode::VerifyCa
        ));
        assert!(matches!(
            mode(&format!("{base}?sslrootcert=system")),
            PgSslMode::VerifyFull
        ));
        assert!(matches!(
            mode(&format!(
                "{base}?sslmode=verify-full&sslrootcert=system&application_name=x"
            )),
            PgSslMode::VerifyFull
        ));
    }

    #[test]
    fn system_store_refuses_a_weaker_mode() {
        let err = options("postgres://u@db/scimd?sslmode=require&sslrootcert=system")
            .expect_err("refused");
        assert!(err.to_string().contains("verify-full"), "{err}");
    }
}
