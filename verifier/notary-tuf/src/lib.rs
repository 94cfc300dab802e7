//! Pure verification of Notary v1 / Docker Content Trust TUF metadata.
//!
//! No network, no clock: the caller fetches the files
//! (`/v2/<gun>/_trust/tuf/<role>.json`), passes their exact bytes, the pinned
//! root key, the rollback state and the evaluation time, and gets either a
//! [`VerifiedRepo`] to look targets up in, or a [`NotaryError`] that names
//! the failing role and carries a stable reason code.
//!
//! # Typical use
//!
//! 1. Fetch `root.json`. If a [`TrustedRoot`] is stored for (GUN, pinned
//!    key) and [`peek_version`] of the served root is higher, fetch
//!    `N.root.json` for every N strictly between the two versions.
//! 2. Fetch `timestamp.json`, `snapshot.json`, `targets.json`; use
//!    [`declared_delegations`] on targets.json to fetch the delegations the
//!    policy needs (Docker: `targets/releases`). A 404 is passed as empty
//!    bytes (or the role left out, for delegations).
//! 3. Call [`verify_repository`], then [`VerifiedRepo::lookup`] with the tag
//!    and/or digest and the delegation policy.
//! 4. Store [`VerifiedRepo::trusted_root`] and [`VerifiedRepo::versions`]
//!    for the next call; cache the verdict no longer than
//!    [`VerifiedRepo::earliest_expiry`].
//!
//! # What is checked, in order
//!
//! 1. **Root.** Structure (`_type`, version ≥ 1, the four roles, thresholds
//!    ≥ 1, every listed key present).
//!    * *First contact* (no trusted root): the pinned key must be the
//!      SubjectPublicKeyInfo of one of the root role's keys (for `*-x509`
//!      keys, the certificate's) — else `ROOT_KEY_MISMATCH`; that
//!      certificate's CN must be the GUN (Notary's rule; a trailing `*` is a
//!      prefix wildcard) — else `ROOT_KEY_MISMATCH`; the root must meet its
//!      own root threshold; and the pinned key must be among the valid
//!      signers.
//!    * *Rotation* (trusted root of version T, served V): V < T is
//!      `TRUST_DATA_ROLLBACK (root)`; every version T+1..=V must be signed by
//!      a threshold of the previous root's root keys and of its own (TUF
//!      5.3.4), with version exactly previous + 1. V == T must still be
//!      signed by the trusted root's keys. When the timestamp or snapshot
//!      keys changed, their remembered versions are forgotten (TUF 5.3.11).
//!    * Root keys whose certificate is issued for another CN never count.
//!      Root certificates must be valid at the evaluation time for the
//!      signatures they carry to count (Notary ignores expired root
//!      certificates): `EXPIRED (root)` otherwise.
//!    * Root version not below the remembered one; root not expired.
//! 2. **Timestamp**: signatures (timestamp keys/threshold from root),
//!    version not below the remembered one, not expired; then the served
//!    snapshot bytes must have the length and every sha256/sha512 listed for
//!    `snapshot` — else `HASH_MISMATCH (snapshot)`.
//! 3. **Snapshot**: signatures, version equal to the one the timestamp lists
//!    (if it lists one; Notary does not), not below the remembered one, not
//!    expired; versions it lists not below the remembered ones; the served
//!    `targets.json` (and `root.json`, which Notary lists) must match its
//!    meta — else `HASH_MISMATCH (targets)` / `(root)`.
//! 4. **Targets**: structure (delegations must be valid direct children with
//!    known keys), signatures (targets keys from root), version equal to the
//!    snapshot's if listed, not below the remembered one, not expired.
//! 5. **Delegations**, breadth first: each supplied role must be listed in
//!    the snapshot and match its length/hashes, be signed by the threshold of
//!    the keys its parent declares for it, and pass the version and expiry
//!    checks. A failing delegation does not fail the repository; lookups that
//!    need it fail with its error. Paths are Notary's: prefixes of the target
//!    name, `""` = all, none/empty = nothing, restricted by every ancestor.
//!
//! Signatures: each key counts once (by key id and by public key), and only
//! its first signature is tried. No valid signature gives
//! `SIGNATURE_INVALID`; some but fewer than the threshold give
//! `THRESHOLD_NOT_MET`. Malformed metadata gives `SIGNATURE_INVALID` too
//! ([`NotaryError::Malformed`]). Expiry: a role is expired when `expires` ≤
//! the evaluation time.
//!
//! Canonical JSON: see [`canonical`] for how the `olpc-cjson` output
//! relates to Go's `MarshalCanonical` (byte-identical for Notary's data).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod canonical;
pub mod error;
pub mod keys;
pub mod model;
pub mod verify;

pub use canonical::CanonicalError;
pub use error::{Code, KeyError, KeyParseError, NotaryError};
pub use keys::PinnedKey;
pub use verify::{
    DelegationStatus, RoleBytes, RoleVersions, SignedTarget, TargetQuery, TrustedRoot,
    VerifiedRepo, declared_delegations, parse_digest, peek_version, verify_repository,
};
