//! Caching: verdicts, tag → digest resolutions and trust data, in two tiers
//! (moka in-process, Redis shared), with coalescing inside a verifier and
//! across verifiers. See [`tiered`] for the lookup path, [`redis`] for how
//! Redis is kept off the critical path, and [`seal`] for integrity.
//!
//! What is cached and how long:
//!
//! * **verdicts**, keyed by the rule fingerprint (pattern, `with`, validator
//!   config and trust roots), the fingerprint of the trust material the
//!   validator loaded at start-up (TUF), and the *digest*: allows for the verdict TTL,
//!   definitive denials for the negative TTL; transient failures never;
//! * **tag → digest**, for the tag TTL (the only place a tag's freshness
//!   matters);
//! * **trust data** (Notary metadata), until it must be refreshed, as opaque
//!   bytes in a [`ByteStore`] handed to the validator at start-up.
//!
//! This module knows no validator: the cache layer around validators is
//! `validators::Cached`, built from the tiers here.

pub mod redis;
pub mod seal;
mod store;
pub(crate) mod tiered;
pub(crate) mod verdict;

pub(crate) use store::{ByteStore, Memo, SharedRecords};
pub use tiered::{Computed, Tiered};
pub use verdict::{CachedVerdict, Caches, Sizing, Ttls, verdict_key};
