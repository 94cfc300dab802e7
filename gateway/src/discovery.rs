//! Finding the verifiers: static URLs, or DNS names re-resolved
//! periodically so that endpoints follow pods as they come and go.
//!
//! * `http://HOST:PORT`, `https://HOST:PORT`: one endpoint each.
//! * `dns:///NAME:PORT` (plain TCP) and `dns+https:///NAME:PORT` (TLS): every
//!   address NAME resolves to is an endpoint. Point it at a *headless*
//!   Service: a ClusterIP Service resolves to one virtual IP, and HTTP/2
//!   keeps one connection to one pod behind it, so the other pods would get
//!   no calls. With TLS, certificates are checked against NAME.
//!
//! Names resolve through the system resolver (`/etc/resolv.conf`,
//! `/etc/hosts`), or through `--dns-server IP:PORT` when given. A failed
//! resolution keeps the last known endpoints; an empty answer empties them
//! (every image is then denied with `VERIFIER_UNAVAILABLE`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use crate::pool::VerifierPool;

/// One `--verifier` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A fixed URL.
    Static(String),
    /// A DNS name to resolve to many endpoints.
    Dns {
        /// The name.
        name: String,
        /// The port.
        port: u16,
        /// TLS (`dns+https`) or plain TCP (`dns`).
        tls: bool,
    },
}

/// A malformed `--verifier` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "verifier {0:?}: expected http://HOST:PORT, https://HOST:PORT, dns:///NAME:PORT or dns+https:///NAME:PORT"
)]
pub struct TargetError(pub String);

impl Target {
    /// Parses one entry.
    pub(crate) fn parse(s: &str) -> Result<Self, TargetError> {
        let err = || TargetError(s.to_string());
        let (tls, rest) = if let Some(r) = s.strip_prefix("dns+https:///") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("dns:///") {
            (false, r)
        } else if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(Target::Static(s.to_string()));
        } else {
            return Err(err());
        };
        let (name, port) = rest.rsplit_once(':').ok_or_else(err)?;
        let port: u16 = port.parse().map_err(|_| err())?;
        if name.is_empty() || name.contains('/') {
            return Err(err());
        }
        Ok(Target::Dns {
            name: name.to_string(),
            port,
            tls,
        })
    }

    /// The host name certificates are checked against, for DNS targets with
    /// TLS.
    pub(crate) fn tls_name(&self) -> Option<&str> {
        match self {
            Target::Dns {
                name, tls: true, ..
            } => Some(name),
            _ => None,
        }
    }
}

/// Why a name could not be resolved, or the resolver set up.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// `--dns-server` cannot be used.
    #[error("cannot set up a resolver for {server}: {message}")]
    Setup {
        /// The server given.
        server: SocketAddr,
        /// What failed.
        message: String,
    },
    /// A lookup failed (not an empty answer: that is no addresses).
    #[error("{name}: {message}")]
    Lookup {
        /// The name looked up.
        name: String,
        /// What failed.
        message: String,
    },
}

/// Resolves names to addresses.
#[derive(Debug, Clone)]
pub(crate) enum NameResolver {
    /// The system resolver (getaddrinfo).
    System,
    /// A given DNS server.
    Server(Arc<Resolver<TokioRuntimeProvider>>),
}

impl NameResolver {
    /// A resolver asking `server` (UDP), without caching.
    pub(crate) fn server(server: SocketAddr) -> Result<Self, DnsError> {
        let mut connection = ConnectionConfig::udp();
        connection.port = server.port();
        let ns = NameServerConfig::new(server.ip(), true, vec![connection]);
        let mut builder = Resolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            TokioRuntimeProvider::default(),
        );
        builder.options_mut().cache_size = 0;
        builder.options_mut().attempts = 1;
        builder.options_mut().timeout = Duration::from_secs(1);
        Ok(NameResolver::Server(Arc::new(builder.build().map_err(
            |e| DnsError::Setup {
                server,
                message: e.to_string(),
            },
        )?)))
    }

    /// The addresses of `name`, sorted.
    pub(crate) async fn resolve(&self, name: &str, port: u16) -> Result<Vec<IpAddr>, DnsError> {
        let failed = |message: String| DnsError::Lookup {
            name: name.to_string(),
            message,
        };
        let mut ips: Vec<IpAddr> = match self {
            NameResolver::System => tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| failed(e.to_string()))?
                .map(|a| a.ip())
                .collect(),
            NameResolver::Server(r) => match r.lookup_ip(name).await {
                Ok(lookup) => lookup.iter().collect(),
                Err(e) if e.is_no_records_found() => Vec::new(),
                Err(e) => return Err(failed(e.to_string())),
            },
        };
        ips.sort();
        ips.dedup();
        Ok(ips)
    }
}

/// The endpoint URLs of `targets` now. `Err` when a DNS lookup failed (the
/// caller keeps what it had).
pub(crate) async fn resolve_all(
    targets: &[Target],
    resolver: &NameResolver,
) -> Result<Vec<String>, DnsError> {
    let mut urls = Vec::new();
    for target in targets {
        match target {
            Target::Static(url) => urls.push(url.clone()),
            Target::Dns { name, port, tls } => {
                let scheme = if *tls { "https" } else { "http" };
                for ip in resolver.resolve(name, *port).await? {
                    let host = match ip {
                        IpAddr::V4(v4) => v4.to_string(),
                        IpAddr::V6(v6) => format!("[{v6}]"),
                    };
                    urls.push(format!("{scheme}://{host}:{port}"));
                }
            }
        }
    }
    Ok(urls)
}

/// Re-resolves DNS targets every `interval` and updates the pool.
pub(crate) fn spawn_refresher(
    pool: Arc<VerifierPool>,
    targets: Vec<Target>,
    resolver: NameResolver,
    interval: Duration,
) {
    if targets.iter().all(|t| matches!(t, Target::Static(_))) {
        return;
    }
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match resolve_all(&targets, &resolver).await {
                Ok(urls) => {
                    if let Err(e) = pool.set_urls(&urls) {
                        tracing::warn!(error = %e, "cannot use resolved verifier endpoints");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "verifier discovery failed; keeping the last endpoints")
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(
            Target::parse("http://a:1"),
            Ok(Target::Static("http://a:1".into()))
        );
        assert_eq!(
            Target::parse("dns:///verifier-headless.portcullis.svc:50051"),
            Ok(Target::Dns {
                name: "verifier-headless.portcullis.svc".into(),
                port: 50051,
                tls: false
            })
        );
        assert_eq!(
            Target::parse("dns+https:///v.svc:443").unwrap().tls_name(),
            Some("v.svc")
        );
        assert!(Target::parse("grpc://a:1").is_err());
        assert!(Target::parse("dns:///noport").is_err());
        assert!(Target::parse("dns:///a/b:1").is_err());
    }
}
