//! TLS to PostgreSQL, as managed services require it: a throwaway cluster
//! with `ssl=on`, a certificate authority and server certificate this test
//! generates, and `hostssl` as the only way in over TCP. scimd connects with
//! `sslmode=require` and `verify-full`, refuses a server its CA did not
//! sign, and serves SCIM over such a connection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use reqwest::StatusCode;
use serde_json::json;

use crate::cli::Server;
use crate::helpers::{Cluster, in_ci};
use scimd::store::{PoolConfig, Store};

/// A certificate authority: its certificate (PEM) and what signs with it.
fn authority(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("self-signed");
    (cert.pem(), Issuer::new(params, key))
}

/// Writes `text` to `dir/name` (mode 0600, the server's user's) and
/// returns its path.
fn write(cluster: &Cluster, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = cluster.dir().join(name);
    std::fs::write(&path, text).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    cluster.give(&path).expect("chown");
    path
}

/// A cluster that takes TCP connections over TLS only, with a server
/// certificate for `localhost` and `127.0.0.1` signed by the CA whose
/// certificate is the returned path; and a CA that signed nothing.
fn tls_cluster() -> Option<(Cluster, PathBuf, PathBuf)> {
    let mut cluster = match Cluster::init(&format!("scimd-pg-tls-{}", std::process::id())) {
        Ok(c) => c,
        Err(e) if in_ci() => panic!("CI is set and no PostgreSQL server binaries: {e}"),
        Err(e) => {
            eprintln!("warning: no PostgreSQL server binaries ({e}): the TLS test is SKIPPED");
            return None;
        }
    };
    let (ca_pem, ca) = authority("scimd test CA");
    let (wrong_pem, _) = authority("a CA that signed nothing");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca).expect("signed");
    let crt = write(&cluster, "server.crt", &cert.pem());
    let key = write(&cluster, "server.key", &key.serialize_pem());
    let ca_path = write(&cluster, "ca.pem", &ca_pem);
    let wrong_path = write(&cluster, "wrong-ca.pem", &wrong_pem);
    // The client reads the CA files too (as whoever runs the tests).
    for p in [&ca_path, &wrong_path] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    std::fs::write(
        cluster.data().join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
    )
    .expect("pg_hba.conf");
    cluster.add_options(&format!(
        "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
        crt.display(),
        key.display()
    ));
    cluster.up().expect("cluster with TLS starts");
    Some((cluster, ca_path, wrong_path))
}

fn pool() -> PoolConfig {
    PoolConfig {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: None,
    }
}

/// Connects as scimd does; whether the session is encrypted.
async fn connect(url: &str) -> Result<bool, String> {
    let store = Store::connect(url, &pool())
        .await
        .map_err(|e| e.to_string())?;
    let Store::Postgres(pg) = &store else {
        panic!("a PostgreSQL URL makes a PostgreSQL store")
    };
    let mut lease = pg.lease().await.map_err(|e| e.to_string())?;
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut *lease)
        .await
        .map_err(|e| e.to_string())?;
    drop(lease);
    store.close().await;
    Ok(ssl)
}

fn url(cluster: &Cluster, host: &str, query: &str) -> String {
    let port = cluster
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .unwrap();
    format!("postgres://postgres@{host}:{port}/postgres?{query}")
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test]
async fn postgres_over_tls_as_libpq_documents_it() {
    let Some((cluster, ca, wrong)) = tokio::task::spawn_blocking(tls_cluster).await.unwrap() else {
        return;
    };
    // hostssl only: a connection without TLS is turned away.
    let plain = connect(&url(&cluster, "127.0.0.1", "sslmode=disable")).await;
    assert!(plain.is_err(), "the cluster takes TLS only: {plain:?}");

    // require: encrypted, the certificate not checked.
    assert_eq!(
        connect(&url(&cluster, "127.0.0.1", "sslmode=require")).await,
        Ok(true)
    );

    // verify-full: the CA signed it and it names the host (DNS name and IP).
    for host in ["localhost", "127.0.0.1"] {
        let verified = connect(&url(
            &cluster,
            host,
            &format!("sslmode=verify-full&sslrootcert={}", path(&ca)),
        ))
        .await;
        assert_eq!(verified, Ok(true), "verify-full to {host}");
    }
    // verify-ca checks the CA, not the name.
    let by_ca = connect(&url(
        &cluster,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={}", path(&ca)),
    ))
    .await;
    assert_eq!(by_ca, Ok(true));

    // Another CA: refused, in every verifying mode, and by `require` with a
    // root certificate (libpq then verifies as verify-ca does).
    for mode in ["verify-full", "verify-ca", "require"] {
        let refused = connect(&url(
            &cluster,
            "127.0.0.1",
            &format!("sslmode={mode}&sslrootcert={}", path(&wrong)),
        ))
        .await;
        let err = refused.expect_err(mode);
        assert!(err.to_lowercase().contains("certificate"), "{mode}: {err}");
    }
    // The system's store does not know the test CA.
    let system = connect(&url(&cluster, "127.0.0.1", "sslrootcert=system")).await;
    assert!(system.is_err(), "{system:?}");

    // The server itself over a verified TLS connection: a SCIM write and
    // its read.
    let token = "Ptls:0123456789abcdefghijklmnopqrstuvwxyz";
    let db_url = url(
        &cluster,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", path(&ca)),
    );
    let mut server = Server::start(&db_url, Some(token)).await;
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/scim/v2/Users", server.url))
        .bearer_auth(token)
        .json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "tls.user"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let read = client
        .get(format!("{}/scim/v2/Users/{id}", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert!(server.terminate().await.success());
}
