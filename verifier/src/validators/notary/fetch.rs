//! Fetching a GUN's trust data from the Notary server, through the caches.
//!
//! `root`, `timestamp`, `snapshot` and `targets` are fetched in parallel;
//! then the delegations the lookup needs (those the rule lists, else
//! `targets/releases` when targets declares it); then, when the served root
//! is newer than the trusted one, the intermediate `N.root.json` files.
//! Bodies are capped (timestamp 100 KiB, others 10 MiB, as Notary caps
//! them). The result is cached per (server, GUN, delegations) in both tiers
//! for the trust TTL, never past the (unverified) timestamp expiry: the
//! bytes are re-verified on every use, so the cache saves requests, not
//! checks.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::tuf::{self, NotaryError, RoleBytes};
use crate::cache::ByteStore;
use crate::config::notary::NotarySpec;
use crate::error::VerifyError;
use crate::registry::{RegistryClient, RegistryError};

const MAX_TIMESTAMP_BYTES: usize = 100 * 1024;
const MAX_ROLE_BYTES: usize = 10 * 1024 * 1024;

/// A GUN's trust data, ready to verify.
#[derive(Debug, Clone, Default)]
pub(super) struct TrustData {
    /// The role files.
    pub(crate) bytes: RoleBytes,
    /// `N.root.json` by version, for root rotation.
    pub(crate) intermediate_roots: BTreeMap<u64, Vec<u8>>,
}

/// The cached form (base64 bodies, as JSON bytes in the store).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct StoredTrust {
    root: String,
    timestamp: String,
    snapshot: String,
    targets: String,
    delegations: BTreeMap<String, String>,
    intermediates: BTreeMap<u64, String>,
}

fn enc(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn dec(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_default()
}

impl StoredTrust {
    fn from_data(d: &TrustData) -> Self {
        StoredTrust {
            root: enc(&d.bytes.root),
            timestamp: enc(&d.bytes.timestamp),
            snapshot: enc(&d.bytes.snapshot),
            targets: enc(&d.bytes.targets),
            delegations: d
                .bytes
                .delegations
                .iter()
                .map(|(k, v)| (k.clone(), enc(v)))
                .collect(),
            intermediates: d
                .intermediate_roots
                .iter()
                .map(|(k, v)| (*k, enc(v)))
                .collect(),
        }
    }

    fn to_data(&self) -> TrustData {
        TrustData {
            bytes: RoleBytes {
                root: dec(&self.root),
                timestamp: dec(&self.timestamp),
                snapshot: dec(&self.snapshot),
                targets: dec(&self.targets),
                delegations: self
                    .delegations
                    .iter()
                    .map(|(k, v)| (k.clone(), dec(v)))
                    .collect(),
            },
            intermediate_roots: self
                .intermediates
                .iter()
                .map(|(k, v)| (*k, dec(v)))
                .collect(),
        }
    }
}

/// A transport failure against the Notary server.
fn unavailable(e: RegistryError) -> VerifyError {
    VerifyError::NotaryUnavailable(e)
}

async fn get_role(
    client: &RegistryClient,
    spec: &NotarySpec,
    gun: &str,
    role: &str,
) -> Result<Option<Vec<u8>>, VerifyError> {
    let url = format!("{}/v2/{gun}/_trust/tuf/{role}.json", spec.host_url);
    let max = if role == "timestamp" {
        MAX_TIMESTAMP_BYTES
    } else {
        MAX_ROLE_BYTES
    };
    let scope = format!("repository:{gun}:pull");
    client
        .get_url(&spec.host_key, &url, &scope, max)
        .await
        .map(|b| b.map(|b| b.to_vec()))
        .map_err(unavailable)
}

/// Fetches everything from the server.
async fn fetch_all(
    client: &RegistryClient,
    spec: &NotarySpec,
    gun: &str,
    wanted: &[String],
    trusted_root_version: Option<u64>,
) -> Result<TrustData, VerifyError> {
    let (root, timestamp, snapshot, targets) = tokio::join!(
        get_role(client, spec, gun, "root"),
        get_role(client, spec, gun, "timestamp"),
        get_role(client, spec, gun, "snapshot"),
        get_role(client, spec, gun, "targets"),
    );
    let (root, timestamp, snapshot, targets) = (root?, timestamp?, snapshot?, targets?);
    if root.is_none() && timestamp.is_none() && targets.is_none() {
        return Err(VerifyError::Notary(NotaryError::TrustDataNotFound {
            role: "root".to_string(),
        }));
    }
    let targets = targets.unwrap_or_default();
    let delegations: Vec<String> = if wanted.is_empty() {
        tuf::declared_delegations(&targets)
            .into_iter()
            .filter(|d| d == "targets/releases")
            .collect()
    } else {
        wanted.to_vec()
    };
    let fetched =
        futures::future::join_all(delegations.iter().map(|d| get_role(client, spec, gun, d))).await;
    let mut data = TrustData {
        bytes: RoleBytes {
            root: root.unwrap_or_default(),
            timestamp: timestamp.unwrap_or_default(),
            snapshot: snapshot.unwrap_or_default(),
            targets,
            delegations: BTreeMap::new(),
        },
        intermediate_roots: BTreeMap::new(),
    };
    for (name, bytes) in delegations.into_iter().zip(fetched) {
        if let Some(bytes) = bytes? {
            data.bytes.delegations.insert(name, bytes);
        }
    }
    add_intermediate_roots(client, spec, gun, &mut data, trusted_root_version).await?;
    Ok(data)
}

/// Fetches the `N.root.json` files between the trusted and the served root
/// that `data` does not have yet.
async fn add_intermediate_roots(
    client: &RegistryClient,
    spec: &NotarySpec,
    gun: &str,
    data: &mut TrustData,
    trusted_root_version: Option<u64>,
) -> Result<(), VerifyError> {
    let (Some(trusted), Some(served)) = (trusted_root_version, tuf::peek_version(&data.bytes.root))
    else {
        return Ok(());
    };
    // Bounded: a server claiming a huge version cannot make us fetch
    // thousands of files.
    let missing: Vec<u64> = (trusted + 1..served)
        .filter(|v| !data.intermediate_roots.contains_key(v))
        .take(64)
        .collect();
    let roles: Vec<String> = missing.iter().map(|v| format!("{v}.root")).collect();
    let fetched =
        futures::future::join_all(roles.iter().map(|r| get_role(client, spec, gun, r))).await;
    for (version, bytes) in missing.into_iter().zip(fetched) {
        if let Some(bytes) = bytes? {
            data.intermediate_roots.insert(version, bytes);
        }
    }
    Ok(())
}

/// How long fetched trust data may be reused: the trust TTL, never past
/// the timestamp's (unverified) expiry.
fn reuse_for(timestamp: &[u8], trust_ttl: Duration) -> Duration {
    #[derive(Deserialize)]
    struct T {
        signed: S,
    }
    #[derive(Deserialize)]
    struct S {
        expires: chrono::DateTime<chrono::Utc>,
    }
    match serde_json::from_slice::<T>(timestamp) {
        Ok(t) => {
            let left = (t.signed.expires - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            left.min(trust_ttl)
        }
        Err(_) => Duration::ZERO,
    }
}

/// The last trust data fetched per key, kept in this verifier for the
/// trust TTL plus the stale-if-error window: what [`TrustSource::trust_data`]
/// falls back to when the Notary server fails transiently.
pub(super) type LastGood = moka::future::Cache<String, Arc<Vec<u8>>>;

/// Trust data, and whether it is a stale copy (with the transient failure
/// that made it one).
pub(super) struct Fetched {
    /// The trust data.
    pub(super) data: TrustData,
    /// `Some(failure)` when the server failed transiently and the last
    /// good copy stands in.
    pub(super) stale: Option<VerifyError>,
}

/// Where a Notary validator's trust data comes from and where it is kept:
/// the server (through `client`), the trust store (both tiers, for at most
/// `ttl`), the last good copies, and the keys being refreshed ahead.
#[derive(Debug, Clone)]
pub(super) struct TrustSource {
    /// The HTTP client for the Notary server.
    pub(super) client: Arc<RegistryClient>,
    /// The validator's config.
    pub(super) spec: Arc<NotarySpec>,
    /// The trust store.
    pub(super) store: ByteStore,
    /// How long trust data is kept.
    pub(super) ttl: Duration,
    /// The last good copies (stale-if-error).
    pub(super) last_good: LastGood,
    /// Keys whose refresh-ahead runs in this process.
    pub(super) refreshing: Arc<Mutex<HashSet<String>>>,
}

/// The trust data fetched in the background for an entry in the last
/// tenth of its life is bounded by this deadline.
const REFRESH_DEADLINE: Duration = Duration::from_secs(15);

impl TrustSource {
    /// The trust data of `gun`, through the trust store.
    ///
    /// * **Refresh-ahead:** an entry used in the last tenth of its life is
    ///   fetched again in the background (once per key in this process,
    ///   once across verifiers through the shared tier's lease), so a hot
    ///   GUN never expires into a fetch on the admission path.
    /// * **Stale-if-error:** when fetching fails transiently (the Notary
    ///   server is unreachable, times out, or answers 429/5xx), the last copy
    ///   fetched within the trust TTL plus the stale-if-error window stands
    ///   in, marked stale. The caller verifies it like any trust data (TUF
    ///   signatures, rollback against the versions seen, every role's expiry
    ///   at the evaluation time), so a stale copy never outlives what its own
    ///   signatures allow.
    pub(super) async fn trust_data(
        &self,
        gun: &str,
        wanted: &[String],
        deadline: tokio::time::Instant,
        trusted_root_version: Option<u64>,
    ) -> Result<Fetched, VerifyError> {
        let key = format!("{}|{gun}|{}", self.spec.host_url, wanted.join(","));
        let fetched = self
            .store
            .get_or_fetch_expiring(&key, deadline, || {
                self.fetch_stored(gun, wanted, trusted_root_version)
            })
            .await
            .map_err(|e| (*e).clone());
        let (bytes, stale) = match fetched {
            Ok((bytes, left, held)) => {
                if left < self.ttl / 10 && !left.is_zero() {
                    self.refresh_ahead(key.clone(), gun, wanted, trusted_root_version);
                }
                // Copied once per fetch (or read from the shared tier), not
                // on every use.
                if !held {
                    self.last_good.insert(key, Arc::new(bytes.clone())).await;
                }
                (bytes, None)
            }
            Err(e) if e.is_transient() => match self.last_good.get(&key).await {
                Some(copy) => ((*copy).clone(), Some(e)),
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        // Unreadable bytes (another version's layout) are refetched by the
        // next miss; here they read as empty trust data, which fails
        // verification, never passes it.
        let stored: StoredTrust = serde_json::from_slice(&bytes).unwrap_or_default();
        let mut data = stored.to_data();
        add_intermediate_roots(
            &self.client,
            &self.spec,
            gun,
            &mut data,
            trusted_root_version,
        )
        .await?;
        Ok(Fetched { data, stale })
    }

    /// Fetches everything and serialises it for the store, with how long
    /// it may be kept.
    async fn fetch_stored(
        &self,
        gun: &str,
        wanted: &[String],
        trusted_root_version: Option<u64>,
    ) -> Result<(Vec<u8>, Duration), VerifyError> {
        let data = fetch_all(&self.client, &self.spec, gun, wanted, trusted_root_version).await?;
        let bytes = serde_json::to_vec(&StoredTrust::from_data(&data))
            .map_err(|e| VerifyError::Internal(format!("cannot serialise trust data: {e}")))?;
        Ok((bytes, reuse_for(&data.bytes.timestamp, self.ttl)))
    }

    /// Fetches `key` again in the background (see [`Self::trust_data`]). A
    /// failure leaves the entry to expire; nothing else changes.
    fn refresh_ahead(
        &self,
        key: String,
        gun: &str,
        wanted: &[String],
        trusted_root_version: Option<u64>,
    ) {
        let Ok(mut refreshing) = self.refreshing.lock() else {
            return;
        };
        if !refreshing.insert(key.clone()) {
            return;
        }
        drop(refreshing);
        let source = self.clone();
        let (gun, wanted) = (gun.to_string(), wanted.to_vec());
        tokio::spawn(async move {
            source
                .store
                .refresh(&key, || async {
                    let fetched = tokio::time::timeout(
                        REFRESH_DEADLINE,
                        source.fetch_stored(&gun, &wanted, trusted_root_version),
                    )
                    .await;
                    match fetched {
                        Ok(Ok((bytes, ttl))) => {
                            source
                                .last_good
                                .insert(key.clone(), Arc::new(bytes.clone()))
                                .await;
                            tracing::debug!(gun = %gun, "notary trust data refreshed ahead of expiry");
                            Some((bytes, ttl))
                        }
                        _ => None,
                    }
                })
                .await;
            if let Ok(mut r) = source.refreshing.lock() {
                r.remove(&key);
            }
        });
    }
}
