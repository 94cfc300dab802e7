//! Stores handed to validators at start-up for what they cache below the
//! verdict: opaque bytes in both tiers ([`ByteStore`], e.g. Notary trust
//! data), small records shared across verifiers ([`SharedRecords`], e.g.
//! Notary's rollback state), and an in-process memo of values that cannot
//! leave the process ([`Memo`], e.g. verified repositories). None of them
//! knows what it holds.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::time::Instant;

use super::redis::L2;
use super::tiered::Tiered;

/// Bytes, stored base64 in the shared tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blob(pub(crate) Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Blob)
            .map_err(serde::de::Error::custom)
    }
}

/// Opaque bytes cached in both tiers, coalesced like every cache kind.
#[derive(Debug, Clone)]
pub(crate) struct ByteStore {
    tier: Arc<Tiered<Blob>>,
}

impl ByteStore {
    pub(crate) fn new(tier: Arc<Tiered<Blob>>) -> Self {
        ByteStore { tier }
    }

    /// The bytes for `key`, or `fetch`ed (once per key at a time) and kept
    /// for the TTL it returns, with how long they have left in the store
    /// (zero when they were kept for no time) and whether this process
    /// already held them (an L1 hit). Errors are returned and cached
    /// nowhere.
    pub(crate) async fn get_or_fetch_expiring<E, F, Fut>(
        &self,
        key: &str,
        deadline: Instant,
        fetch: F,
    ) -> Result<(Vec<u8>, Duration, bool), Arc<E>>
    where
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<u8>, Duration), E>>,
    {
        self.tier
            .get_or_compute_expiring(key, deadline, || async {
                fetch().await.map(|(bytes, ttl)| (Blob(bytes), ttl))
            })
            .await
            .map(|(blob, source, expires_at_ms)| {
                (
                    blob.0,
                    Duration::from_millis(expires_at_ms.saturating_sub(super::tiered::now_ms())),
                    source == portcullis_proto::Source::CacheL1,
                )
            })
    }

    /// Fetches `key` again ahead of its expiry, once across the cluster
    /// (the shared tier's lease); `fetch` yielding `None` keeps what is
    /// there.
    pub(crate) async fn refresh<F, Fut>(&self, key: &str, fetch: F)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Option<(Vec<u8>, Duration)>>,
    {
        self.tier
            .refresh(key, || async {
                fetch().await.map(|(b, ttl)| (Blob(b), ttl))
            })
            .await
    }
}

/// Small records shared by the verifiers through the shared tier (sealed
/// like every value there); without Redis, nothing is shared.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedRecords {
    l2: Option<Arc<L2>>,
}

impl SharedRecords {
    pub(crate) fn new(l2: Option<Arc<L2>>) -> Self {
        SharedRecords { l2 }
    }

    /// The record under `key`, if shared and intact.
    pub(crate) async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.l2.as_ref()?.get(key, "trust").await
    }

    /// Shares `bytes` under `key` for `ttl`.
    pub(crate) async fn put(&self, key: &str, bytes: &[u8], ttl: Duration) {
        if let Some(l2) = &self.l2 {
            l2.put(key, bytes, ttl).await;
        }
    }
}

/// An in-process memo, bounded in entries and time.
pub(crate) struct Memo<K, V> {
    inner: moka::future::Cache<K, V>,
}

impl<K, V> std::fmt::Debug for Memo<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo").finish_non_exhaustive()
    }
}

impl<K, V> Memo<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(max_entries: u64, ttl: Duration) -> Self {
        Memo {
            inner: moka::future::Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub(crate) async fn get(&self, key: &K) -> Option<V> {
        self.inner.get(key).await
    }

    pub(crate) async fn insert(&self, key: K, value: V) {
        self.inner.insert(key, value).await;
    }
}
