//! Where webhooks may go. A bearer key lives in an identity provider's
//! configuration; a webhook must not turn it into a way into the operator's
//! network, so by default a URL whose host is, or resolves to, a loopback,
//! private, link-local or otherwise non-public address is refused, when the
//! subscription is made and again at every connection (DNS may change).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // 100.64.0.0/10: carrier-grade NAT, often the cloud's own network.
        || (a == 100 && (64..128).contains(&b))
        // 198.18.0.0/15: benchmarking; 240.0.0.0/4: reserved.
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, 2001:db8::/32 documentation.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

/// Why a webhook URL is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("'{0}' is not an absolute http(s) URL")]
    NotHttp(String),
    #[error(
        "{0} is a loopback, private or link-local address; webhooks go to public addresses \
         (SCIMD_WEBHOOK_ALLOW_PRIVATE=true allows others)"
    )]
    Private(String),
    #[error("{0} does not resolve to an address")]
    Unresolved(String),
}

/// Checks a webhook URL: http or https, and (unless `allow_private`) a
/// host that is, or resolves only to, public addresses.
pub async fn check_url(text: &str, allow_private: bool) -> Result<Url, UrlError> {
    let url = Url::parse(text).map_err(|_| UrlError::NotHttp(text.to_owned()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(UrlError::NotHttp(text.to_owned()));
    }
    if allow_private {
        return Ok(url);
    }
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(443);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|_| UrlError::Unresolved(host.to_owned()))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(UrlError::Unresolved(host.to_owned()));
    }
    match addrs.iter().find(|a| !is_public(a.ip())) {
        Some(private) => Err(UrlError::Private(format!("{host} ({})", private.ip()))),
        None => Ok(url),
    }
}

/// Refuses a URL whose host is a non-public IP address (names are left to
/// the resolver, which connects only to their public addresses).
pub fn check_literal(text: &str) -> Result<(), UrlError> {
    let url = Url::parse(text).map_err(|_| UrlError::NotHttp(text.to_owned()))?;
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    match is_public(ip) {
        true => Ok(()),
        false => Err(UrlError::Private(ip.to_string())),
    }
}

/// A resolver that drops non-public addresses, for the delivery client: a
/// name that resolves only to such addresses does not connect.
#[derive(Debug, Clone, Copy)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> =
                    format!("{} resolves to no public address", name.as_str()).into();
                return Err(err);
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// The resolver for delivery.
pub fn resolver() -> Arc<PublicOnly> {
    Arc::new(PublicOnly)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_to_private_hosts_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/hook",
            "http://[::1]/hook",
            "https://169.254.169.254/latest/meta-data",
            "http://localhost:8080/x",
        ] {
            assert!(
                matches!(check_url(url, false).await, Err(UrlError::Private(_))),
                "{url}"
            );
            assert!(check_url(url, true).await.is_ok(), "{url}");
        }
        for url in ["ftp://example.com/x", "not a url", "/relative"] {
            assert!(
                matches!(check_url(url, true).await, Err(UrlError::NotHttp(_))),
                "{url}"
            );
        }
        assert!(check_url("https://93.184.216.34/hook", false).await.is_ok());
    }
}
