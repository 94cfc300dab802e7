//! The Sigstore trust root: Fulcio CA certificates, Rekor keys and CT log
//! keys, read from a protobuf-specs `TrustedRoot` document
//! (`trusted_root.json`), either given directly or loaded through TUF.
//!
//! Three ways in, all meant for **start-up only** (nothing here is called at
//! admission time, and nothing is fetched in the background):
//!
//! * [`parse_trusted_root`]: a `trusted_root.json` the caller already has.
//! * [`load_via_tuf`]: a TUF repository (a configured mirror of the Sigstore
//!   public-good repository, `file://`, `https://` or `http://`), verified
//!   with `tough` from a pinned `root.json`, with full TUF freshness checks.
//! * [`load_shipped`]: a TUF repository snapshot shipped with the project (a
//!   directory with `metadata/` and `targets/`), verified with `tough` from
//!   a pinned `root.json`, signatures and hashes checked, but expiry of the
//!   TUF metadata *not* enforced (see its documentation for why and what
//!   that costs).
//!
//! Every failure is a [`TrustRootError`] whose message names the URL, file,
//! target or JSON field at fault; nothing panics and nothing falls back to a
//! weaker source on its own.
//!
//! ## What is taken from the document, and what is left out
//!
//! * `tlogs[]` → [`SigstoreTrust::rekor_keys`], `ctlogs[]` →
//!   [`SigstoreTrust::ct_keys`], both keyed by the log id: SHA-256 of the
//!   key's SubjectPublicKeyInfo DER. The `logId.keyId` in the document must
//!   be that same hash, or the load fails ([`TrustRootError::LogIdMismatch`]).
//!   A Rekor v2 log, whose `logId` is its C2SP signed-note key id (SHA-256
//!   of `origin \n 0x01 ‖ raw Ed25519 key`), goes to
//!   [`SigstoreTrust::rekor_v2_logs`] instead: it issues no SETs, only
//!   checkpoints signed as its origin (the host of its `baseUrl`).
//! * `certificateAuthorities[]` → [`SigstoreTrust::fulcio_certs`]: every
//!   certificate of every chain (intermediates first, root last, as in the
//!   document), each once. Self-signed ones are the trust anchors.
//! * `timestampAuthorities[]` → [`SigstoreTrust::tsas`]: each chain (TSA
//!   certificate first, root last) with its `validFor`, for RFC 3161
//!   timestamps.
//!
//! **Validity windows.** Every entry is kept with its `validFor` window
//! (both ends inclusive; a missing `end`, or a missing `validFor`, means
//! open-ended), and the window is checked against the time of the
//! signature, as Sigstore's clients do: a Rekor key vouches only for entries
//! integrated inside its window, a CT log key only for SCTs timestamped
//! inside it, and a Fulcio CA only for certificates used (integrated in
//! Rekor) inside it. So a signature made in 2022 under the since-retired
//! 2021–2022 public-good Fulcio CA and `ctfe.sigstore.dev/test` log still
//! verifies, and a retired key cannot vouch for anything newer than its
//! `end`. `now` matters only at load time: if no Fulcio CA, no Rekor key or
//! no CT key is valid now, the load fails ([`TrustRootError::NothingValid`]):
//! the document is stale.
//!
//! Entries with a `keyDetails` this crate does not know (e.g. post-quantum or
//! LMS keys) are skipped with a note, not an error, so that a newer document
//! does not stop start-up; a known `keyDetails` that does not match the key
//! itself is an error. If, after filtering, no Fulcio certificate, no Rekor
//! key or no CT key is valid now, the load fails
//! ([`TrustRootError::NothingValid`]): keyless verification needs all three.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod public_good;

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, Utc};
use der::{Decode as _, Encode as _};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tough::{
    DefaultTransport, ExpirationEnforcement, HttpTransportBuilder, IntoVec as _, RepositoryLoader,
    TargetName,
};
use url::Url;

/// The TUF target name of the trusted root in Sigstore's repository.
pub const TRUSTED_ROOT_TARGET: &str = "trusted_root.json";

/// The media types accepted for `trusted_root.json` (protobuf-specs
/// `TrustedRoot`: the current one, and the two older spellings clients may
/// accept).
pub const TRUSTED_ROOT_MEDIA_TYPES: [&str; 3] = [
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "application/vnd.dev.sigstore.trustedroot.v0.1+json",
    "application/vnd.dev.sigstore.trustedroot.v0.2+json",
];

/// Largest `trusted_root.json` accepted from a caller. (Through TUF the
/// signed length in `targets.json` bounds it.)
const MAX_TRUSTED_ROOT_BYTES: usize = 4 * 1024 * 1024;

/// The trust material the cosign validator needs for keyless verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigstoreTrust {
    /// Fulcio certificates, every chain's certificates in document order,
    /// each (certificate, window) pair once: self-signed ones are trust
    /// anchors, the rest intermediates.
    pub fulcio_certs: Vec<CaCert>,
    /// Rekor public keys by log id (SHA-256 of the SPKI DER).
    pub rekor_keys: HashMap<[u8; 32], LogKey>,
    /// CT log public keys by log id (SHA-256 of the SPKI DER).
    pub ct_keys: HashMap<[u8; 32], LogKey>,
    /// Rekor v2 logs (checkpoints only, no SETs) by log id: the C2SP
    /// signed-note key hash of their origin and key.
    pub rekor_v2_logs: HashMap<[u8; 32], CheckpointLog>,
    /// Timestamp authorities for RFC 3161 timestamps.
    pub tsas: Vec<Tsa>,
}

/// A Rekor v2 log: an Ed25519 key that signs checkpoints as `origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointLog {
    /// The raw 32-byte Ed25519 public key.
    pub raw_key: Vec<u8>,
    /// The origin its checkpoints name (its `baseUrl`'s host).
    pub origin: String,
    /// Its `publicKey.validFor`.
    pub valid: Validity,
}

impl CheckpointLog {
    /// The log id of an Ed25519 log: SHA-256(origin ‖ `\n` ‖ 0x01 ‖ key).
    pub fn log_id(origin: &str, raw_key: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(origin.as_bytes());
        h.update([b'\n', 0x01]);
        h.update(raw_key);
        h.finalize().into()
    }
}

/// A timestamp authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tsa {
    /// Its chain, DER, as the document lists it: the TSA's certificate
    /// (or an intermediate) first, the root last.
    pub chain: Vec<Vec<u8>>,
    /// Its `validFor`: it vouches for timestamps made in it.
    pub valid: Validity,
    /// Its `uri`, for messages.
    pub uri: Option<String>,
}

/// A transparency-log (Rekor or CT) public key and when it vouches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogKey {
    /// The SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
    /// Its `publicKey.validFor`: a Rekor key vouches for entries integrated
    /// in it, a CT key for SCTs timestamped in it.
    pub valid: Validity,
    /// The authority (host, and port if any) of its `baseUrl`, if the
    /// document gives one (a Rekor v1
    /// checkpoint's origin reads `HOST - TREEID`).
    pub host: Option<String>,
}

/// A Fulcio certificate (root or intermediate) and when its certificate
/// authority vouches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCert {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The authority's `validFor`: it vouches for leaf certificates used
    /// (integrated in Rekor) in it.
    pub valid: Validity,
}

/// An entry of the document that was checked but left out, and why. Meant
/// for a start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Where: e.g. `ctlogs[0] (https://ctfe.sigstore.dev/test)`.
    pub entry: String,
    /// Why, in words.
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.entry, self.reason)
    }
}

/// What was verified when the document came through TUF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TufInfo {
    /// The metadata base URL used.
    pub metadata_url: String,
    /// The targets base URL used.
    pub targets_url: String,
    /// Version of the root metadata reached from the pinned root.
    pub root_version: u64,
    /// Version of `timestamp.json`.
    pub timestamp_version: u64,
    /// Version of `snapshot.json`.
    pub snapshot_version: u64,
    /// Version of `targets.json`.
    pub targets_version: u64,
    /// The role whose metadata expires first, and when.
    pub earliest_expiry: (String, DateTime<Utc>),
    /// Whether TUF metadata expiry was enforced (`false` only for
    /// [`load_shipped`]).
    pub freshness_enforced: bool,
    /// SHA-256 (hex) of the `trusted_root.json` target, as signed in
    /// `targets.json` and checked on the bytes.
    pub target_sha256: String,
}

/// A load's full result: the trust material, what was left out, and (for
/// the TUF paths) what was verified.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The trust material.
    pub trust: SigstoreTrust,
    /// Entries checked and left out (Rekor v2, unknown key type,
    /// timestamp authorities). Entries outside their window now are kept.
    pub skipped: Vec<Skipped>,
    /// TUF details, when loaded through TUF.
    pub tuf: Option<TufInfo>,
}

/// Where a TUF repository is.
#[derive(Debug, Clone, Copy)]
pub enum TufSource<'a> {
    /// A mirror, with full TUF checks (freshness included).
    Mirror {
        /// Base URL of the metadata (`file://`, `https://` or `http://`).
        metadata_url: &'a str,
        /// Base URL of the targets.
        targets_url: &'a str,
        /// A persistent directory for tough's rollback protection (created
        /// if missing); `None` uses a fresh temporary one.
        datastore: Option<&'a Path>,
    },
    /// A snapshot directory shipped with the project (`metadata/` and
    /// `targets/`), expiry not enforced. See [`load_shipped`].
    Shipped {
        /// The directory holding `metadata/` and `targets/`.
        dir: &'a Path,
    },
}

/// Why the trust root could not be loaded. Every message names what failed.
#[derive(Debug, thiserror::Error)]
pub enum TrustRootError {
    /// The document is not JSON of the `TrustedRoot` shape.
    #[error("trusted_root.json is not a valid TrustedRoot JSON document: {0}")]
    Json(#[source] serde_json::Error),
    /// The document is larger than accepted.
    #[error("trusted_root.json is {0} bytes, more than the {MAX_TRUSTED_ROOT_BYTES} accepted")]
    TooLarge(usize),
    /// `mediaType` is missing or not a known TrustedRoot media type.
    #[error(
        "trusted_root.json: unsupported mediaType {0:?} (expected one of {TRUSTED_ROOT_MEDIA_TYPES:?})"
    )]
    MediaType(String),
    /// A field is missing or malformed.
    #[error("trusted_root.json: {field}: {message}")]
    Field {
        /// JSON path of the field, e.g. `tlogs[0].publicKey.rawBytes`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A log's declared `logId` is not the SHA-256 of its key.
    #[error(
        "trusted_root.json: {field}: logId.keyId {declared} does not match the log's key (SHA-256 of its SubjectPublicKeyInfo is {computed})"
    )]
    LogIdMismatch {
        /// Which log, e.g. `ctlogs[1]`.
        field: String,
        /// The declared log id, hex.
        declared: String,
        /// SHA-256 of the SPKI DER, hex.
        computed: String,
    },
    /// After dropping entries not valid at `now`, one kind of trust material
    /// is empty.
    #[error(
        "trusted_root.json has no {what} valid at {now} (keyless verification needs a Fulcio CA, a Rekor key and a CT log key){skipped}"
    )]
    NothingValid {
        /// Which kind: `Fulcio certificate authority`, `Rekor key`, `CT log key`.
        what: &'static str,
        /// The evaluation time.
        now: DateTime<Utc>,
        /// Summary of what was skipped, for the message.
        skipped: String,
    },
    /// A mirror URL does not parse or has an unsupported scheme.
    #[error("TUF repository URL {url:?}: {message}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// A local file or directory could not be used.
    #[error("{path}: {message}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The pinned TUF `root.json` does not parse or is not signed by its own
    /// threshold of root keys.
    #[error("the pinned TUF root.json is invalid: {0}")]
    PinnedRoot(String),
    /// A TUF metadata or target file could not be fetched (unreachable
    /// mirror, missing file, I/O error).
    #[error("could not fetch {url} from the TUF repository: {message}")]
    Fetch {
        /// The URL that failed.
        url: String,
        /// The transport's explanation.
        message: String,
    },
    /// TUF metadata has expired: the mirror is stale, or being used for a
    /// freeze/replay attack.
    #[error(
        "TUF {role} metadata from {metadata_url} has expired (a stale mirror, or a freeze attack); refusing it"
    )]
    Expired {
        /// The role (`root`, `timestamp`, `snapshot`, `targets`).
        role: String,
        /// The metadata base URL.
        metadata_url: String,
    },
    /// TUF metadata failed verification: bad signature or threshold, version
    /// or hash mismatch, rollback, size limit.
    #[error("TUF metadata from {metadata_url} failed verification: {message}")]
    Verification {
        /// The metadata base URL.
        metadata_url: String,
        /// tough's explanation.
        message: String,
    },
    /// The repository's signed `targets.json` does not list the target.
    #[error("TUF repository {metadata_url} does not list the target {target:?}")]
    TargetNotListed {
        /// The target name.
        target: String,
        /// The metadata base URL.
        metadata_url: String,
    },
    /// The target's bytes do not match the length or SHA-256 signed in
    /// `targets.json`, or could not be read.
    #[error("TUF target {target:?} from {targets_url} is not the signed one: {message}")]
    Target {
        /// The target name.
        target: String,
        /// The targets base URL.
        targets_url: String,
        /// What went wrong (hash or size mismatch, fetch error).
        message: String,
    },
    /// Any other TUF failure.
    #[error("loading the TUF repository {metadata_url} failed: {message}")]
    Tuf {
        /// The metadata base URL.
        metadata_url: String,
        /// tough's explanation.
        message: String,
    },
    /// The trusted root fetched through TUF is itself invalid.
    #[error("TUF target {target:?} from {targets_url}: {source}")]
    Document {
        /// The target name.
        target: String,
        /// The targets base URL.
        targets_url: String,
        /// What is wrong with the document.
        #[source]
        source: Box<TrustRootError>,
    },
}

// ---------------------------------------------------------------------------
// trusted_root.json
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTrustedRoot {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    tlogs: Option<Vec<RawLog>>,
    #[serde(default)]
    certificate_authorities: Option<Vec<RawCa>>,
    #[serde(default)]
    ctlogs: Option<Vec<RawLog>>,
    #[serde(default)]
    timestamp_authorities: Option<Vec<RawCa>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    public_key: Option<RawPublicKey>,
    #[serde(default)]
    log_id: Option<RawLogId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPublicKey {
    #[serde(default)]
    raw_bytes: Option<String>,
    /// A string enum name, or (protojson allows it) its number.
    #[serde(default)]
    key_details: Option<serde_json::Value>,
    #[serde(default)]
    valid_for: Option<RawTimeRange>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    #[serde(default)]
    key_id: Option<String>,
}

#[derive(Deserialize)]
struct RawTimeRange {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCa {
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    cert_chain: Option<RawCertChain>,
    #[serde(default)]
    valid_for: Option<RawTimeRange>,
}

#[derive(Deserialize)]
struct RawCertChain {
    #[serde(default)]
    certificates: Option<Vec<RawCert>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    #[serde(default)]
    raw_bytes: Option<String>,
}

/// Parses a `trusted_root.json` and keeps the entries valid at `now`.
///
/// Expired and not-yet-valid entries are checked, then left out (see the
/// [module documentation](self)); [`parse_trusted_root_detailed`] also says
/// which.
pub fn parse_trusted_root(
    json: &[u8],
    now: DateTime<Utc>,
) -> Result<SigstoreTrust, TrustRootError> {
    parse_trusted_root_detailed(json, now).map(|r| r.trust)
}

/// [`parse_trusted_root`], also listing what was left out.
pub fn parse_trusted_root_detailed(
    json: &[u8],
    now: DateTime<Utc>,
) -> Result<LoadReport, TrustRootError> {
    if json.len() > MAX_TRUSTED_ROOT_BYTES {
        return Err(TrustRootError::TooLarge(json.len()));
    }
    let value: serde_json::Value = serde_json::from_slice(json).map_err(TrustRootError::Json)?;
    if !value.is_object() {
        return Err(TrustRootError::Json(
            <serde_json::Error as serde::de::Error>::custom("expected a JSON object"),
        ));
    }
    let raw: RawTrustedRoot = serde_json::from_value(value).map_err(TrustRootError::Json)?;
    let media_type = raw.media_type.unwrap_or_default();
    if !TRUSTED_ROOT_MEDIA_TYPES.contains(&media_type.as_str()) {
        return Err(TrustRootError::MediaType(media_type));
    }
    let mut trust = SigstoreTrust::default();
    let mut skipped = Vec::new();

    // Entries outside their window now are kept (they still vouch for
    // signatures made inside it) but do not count as usable now.
    let mut outside_now = Vec::new();
    let mut fulcio_now = false;
    let mut v2_logs: Vec<([u8; 32], CheckpointLog)> = Vec::new();
    let mut logs = |list: &str,
                    entries: Vec<RawLog>,
                    into: &mut HashMap<[u8; 32], LogKey>|
     -> Result<bool, TrustRootError> {
        let mut any_now = false;
        for (i, log) in entries.iter().enumerate() {
            if let Some((id, key)) = transparency_log(list, i, log, &mut skipped, &mut v2_logs)? {
                match key.valid.excludes(now) {
                    Some(reason) => outside_now.push(Skipped {
                        entry: entry_name(&format!("{list}[{i}]"), log.base_url.as_deref()),
                        reason,
                    }),
                    None => any_now = true,
                }
                into.insert(id, key);
            }
        }
        Ok(any_now)
    };
    let rekor_now = logs(
        "tlogs",
        raw.tlogs.unwrap_or_default(),
        &mut trust.rekor_keys,
    )?;
    let ct_now = logs("ctlogs", raw.ctlogs.unwrap_or_default(), &mut trust.ct_keys)?;
    let mut rekor_now = rekor_now;
    for (id, log) in v2_logs {
        if log.valid.excludes(now).is_none() {
            rekor_now = true;
        }
        trust.rekor_v2_logs.insert(id, log);
    }
    for (i, ca) in raw
        .certificate_authorities
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let at = format!("certificateAuthorities[{i}]");
        let chain = certificate_chain(&at, ca)?;
        let window = time_range(&format!("{at}.validFor"), ca.valid_for.as_ref())?;
        match window.excludes(now) {
            Some(reason) => outside_now.push(Skipped {
                entry: entry_name(&at, ca.uri.as_deref()),
                reason,
            }),
            None => fulcio_now = true,
        }
        for der in chain {
            let cert = CaCert { der, valid: window };
            if !trust.fulcio_certs.contains(&cert) {
                trust.fulcio_certs.push(cert);
            }
        }
    }
    for (i, tsa) in raw
        .timestamp_authorities
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let at = format!("timestampAuthorities[{i}]");
        let chain = certificate_chain(&at, tsa)?;
        let valid = time_range(&format!("{at}.validFor"), tsa.valid_for.as_ref())?;
        trust.tsas.push(Tsa {
            chain,
            valid,
            uri: tsa.uri.clone(),
        });
    }

    let missing = if !fulcio_now {
        Some("Fulcio certificate authority")
    } else if !rekor_now {
        Some("Rekor key")
    } else if !ct_now {
        Some("CT log key")
    } else {
        None
    };
    if let Some(what) = missing {
        let left_out: Vec<&Skipped> = skipped.iter().chain(&outside_now).collect();
        let skipped = if left_out.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = left_out.iter().map(ToString::to_string).collect();
            format!("; left out: {}", list.join("; "))
        };
        return Err(TrustRootError::NothingValid { what, now, skipped });
    }
    Ok(LoadReport {
        trust,
        skipped,
        tuf: None,
    })
}

fn field(field: impl Into<String>, message: impl Into<String>) -> TrustRootError {
    TrustRootError::Field {
        field: field.into(),
        message: message.into(),
    }
}

fn entry_name(at: &str, url: Option<&str>) -> String {
    match url {
        Some(u) if !u.is_empty() => format!("{at} ({u})"),
        _ => at.to_string(),
    }
}

/// Protobuf JSON `bytes`: standard or URL-safe base64, padding optional.
fn decode_bytes(at: &str, value: Option<&str>) -> Result<Vec<u8>, TrustRootError> {
    let text = value.ok_or_else(|| field(at, "missing"))?;
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, config);
    let url_safe = GeneralPurpose::new(&base64::alphabet::URL_SAFE, config);
    let bytes = standard
        .decode(text)
        .or_else(|_| url_safe.decode(text))
        .map_err(|e| field(at, format!("not base64: {e}")))?;
    if bytes.is_empty() {
        return Err(field(at, "empty"));
    }
    Ok(bytes)
}

/// A `validFor` window: when a trust-root entry may vouch for a signature.
/// Both ends inclusive; an absent end is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validity {
    /// The first instant, if any.
    pub start: Option<DateTime<Utc>>,
    /// The last instant, if any.
    pub end: Option<DateTime<Utc>>,
}

impl Validity {
    /// No bounds: for keys and certificates given as PEMs in the config.
    pub const ALWAYS: Validity = Validity {
        start: None,
        end: None,
    };

    /// Whether the window contains `unix_time` (seconds).
    pub fn contains(&self, unix_time: i64) -> bool {
        let Some(t) = DateTime::<Utc>::from_timestamp(unix_time, 0) else {
            return false;
        };
        self.excludes(t).is_none()
    }

    /// Why `now` is outside the window, if it is.
    pub fn excludes(&self, now: DateTime<Utc>) -> Option<String> {
        if let Some(start) = self.start
            && now < start
        {
            return Some(format!("not valid yet (validFor.start {})", rfc3339(start)));
        }
        if let Some(end) = self.end
            && now > end
        {
            return Some(format!("expired (validFor.end {})", rfc3339(end)));
        }
        None
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn time_range(at: &str, range: Option<&RawTimeRange>) -> Result<Validity, TrustRootError> {
    let parse =
        |name: &str, value: &Option<String>| -> Result<Option<DateTime<Utc>>, TrustRootError> {
            match value {
                None => Ok(None),
                Some(s) => DateTime::parse_from_rfc3339(s)
                    .map(|t| Some(t.with_timezone(&Utc)))
                    .map_err(|e| {
                        field(
                            format!("{at}.{name}"),
                            format!("not an RFC 3339 time ({s:?}): {e}"),
                        )
                    }),
            }
        };
    let Some(range) = range else {
        return Ok(Validity::ALWAYS);
    };
    // protobuf-specs' TimeRange: `start` is required, `end` optional. A
    // window without its start is malformed, never "since forever"
    // (sigstore-conformance `trust-root-tlog-missing-validity-start_fail`).
    if range.start.is_none() {
        return Err(field(
            format!("{at}.start"),
            "missing: a validFor window needs its start",
        ));
    }
    let window = Validity {
        start: parse("start", &range.start)?,
        end: parse("end", &range.end)?,
    };
    if let (Some(s), Some(e)) = (window.start, window.end)
        && e < s
    {
        return Err(field(at, "end is before start"));
    }
    Ok(window)
}

/// The key families `keyDetails` can name, as far as this crate knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyFamily {
    EcP256,
    EcP384,
    EcP521,
    Ed25519,
    Rsa,
}

/// `keyDetails` (protobuf-specs `PublicKeyDetails`) → key family; `None`
/// for values this crate does not handle.
fn key_family(details: &serde_json::Value) -> Option<KeyFamily> {
    let name = match details {
        serde_json::Value::String(s) => s.clone(),
        // Enum numbers of protobuf-specs `PublicKeyDetails`.
        serde_json::Value::Number(n) => match n.as_u64()? {
            5 => "PKIX_ECDSA_P256_SHA_256".into(),
            12 => "PKIX_ECDSA_P384_SHA_384".into(),
            13 => "PKIX_ECDSA_P521_SHA_512".into(),
            7 => "PKIX_ED25519".into(),
            8 => "PKIX_ED25519_PH".into(),
            9 => "PKIX_RSA_PKCS1V15_2048_SHA256".into(),
            10 => "PKIX_RSA_PKCS1V15_3072_SHA256".into(),
            11 => "PKIX_RSA_PKCS1V15_4096_SHA256".into(),
            _ => return None,
        },
        _ => return None,
    };
    if name.starts_with("PKIX_ECDSA_P256_") {
        Some(KeyFamily::EcP256)
    } else if name.starts_with("PKIX_ECDSA_P384_") {
        Some(KeyFamily::EcP384)
    } else if name.starts_with("PKIX_ECDSA_P521_") {
        Some(KeyFamily::EcP521)
    } else if name == "PKIX_ED25519" || name == "PKIX_ED25519_PH" {
        Some(KeyFamily::Ed25519)
    } else if name.starts_with("PKIX_RSA_") || name.starts_with("PKCS1_RSA_") {
        Some(KeyFamily::Rsa)
    } else {
        None
    }
}

const OID_EC_PUBLIC_KEY: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_ED25519: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// The key family of an SPKI, from its algorithm OID (and curve).
fn spki_family(spki: &x509_cert::spki::SubjectPublicKeyInfoOwned) -> Option<KeyFamily> {
    let oid = spki.algorithm.oid;
    if oid == OID_ED25519 {
        return Some(KeyFamily::Ed25519);
    }
    if oid == OID_RSA {
        return Some(KeyFamily::Rsa);
    }
    if oid == OID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())?;
        return match curve {
            c if c == OID_P256 => Some(KeyFamily::EcP256),
            c if c == OID_P384 => Some(KeyFamily::EcP384),
            c if c == OID_P521 => Some(KeyFamily::EcP521),
            _ => None,
        };
    }
    None
}

/// C2SP signed-note key ids of a key (Rekor v2 log ids): SHA-256 over the
/// key name (the log origin: `baseUrl` without scheme), a newline, and the
/// signature-type-tagged key.
fn signed_note_ids(
    base_url: Option<&str>,
    family: KeyFamily,
    spki: &[u8],
    raw_key: &[u8],
) -> Vec<[u8; 32]> {
    let Some(base) = base_url else {
        return Vec::new();
    };
    let origin = base
        .split_once("://")
        .map_or(base, |(_, rest)| rest)
        .trim_end_matches('/');
    let mut ids = Vec::new();
    let mut hash = |parts: &[&[u8]]| {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        ids.push(h.finalize().into());
    };
    match family {
        KeyFamily::Ed25519 => hash(&[origin.as_bytes(), b"\n", &[0x01], raw_key]),
        KeyFamily::Rsa => hash(&[
            origin.as_bytes(),
            b"\n",
            &[0xff],
            b"PKIX-RSA-PKCS#1v1.5",
            spki,
        ]),
        _ => {}
    }
    ids
}

/// One `tlogs[i]` / `ctlogs[i]` entry: `Ok(Some((log id, key)))` if it is
/// taken, `Ok(None)` if it is skipped (with a note), an error if it is
/// malformed.
fn transparency_log(
    list: &str,
    i: usize,
    log: &RawLog,
    skipped: &mut Vec<Skipped>,
    v2: &mut Vec<([u8; 32], CheckpointLog)>,
) -> Result<Option<([u8; 32], LogKey)>, TrustRootError> {
    let is_rekor = list == "tlogs";
    let at = format!("{list}[{i}]");
    let entry = entry_name(&at, log.base_url.as_deref());
    let key = log
        .public_key
        .as_ref()
        .ok_or_else(|| field(format!("{at}.publicKey"), "missing"))?;
    let der = decode_bytes(
        &format!("{at}.publicKey.rawBytes"),
        key.raw_bytes.as_deref(),
    )?;
    // `PKCS1_RSA_*` (deprecated, still in staging's root): a bare PKCS#1
    // RSAPublicKey, wrapped here into the SubjectPublicKeyInfo that log ids
    // hash and verifiers read.
    let der = match key.key_details.as_ref().and_then(|d| d.as_str()) {
        Some(d) if d.starts_with("PKCS1_RSA_") => pkcs1_to_spki(&der).map_err(|e| {
            field(
                format!("{at}.publicKey.rawBytes"),
                format!("not a PKCS#1 RSA public key: {e}"),
            )
        })?,
        _ => der,
    };
    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(&der).map_err(|e| {
        field(
            format!("{at}.publicKey.rawBytes"),
            format!("not a DER SubjectPublicKeyInfo: {e}"),
        )
    })?;
    let window = time_range(&format!("{at}.publicKey.validFor"), key.valid_for.as_ref())?;
    let declared = decode_bytes(
        &format!("{at}.logId.keyId"),
        log.log_id.as_ref().and_then(|l| l.key_id.as_deref()),
    )?;
    let computed: [u8; 32] = Sha256::digest(&der).into();

    let details = key
        .key_details
        .as_ref()
        .ok_or_else(|| field(format!("{at}.publicKey.keyDetails"), "missing"))?;
    let Some(family) = key_family(details) else {
        skipped.push(Skipped {
            entry,
            reason: format!("unsupported key type (keyDetails {details})"),
        });
        return Ok(None);
    };
    let actual = spki_family(&spki);
    if actual != Some(family) {
        return Err(field(
            format!("{at}.publicKey.keyDetails"),
            format!(
                "{details} does not match the key (algorithm {}{})",
                spki.algorithm.oid,
                match actual {
                    Some(f) => format!(", {f:?}"),
                    None => String::new(),
                }
            ),
        ));
    }

    if declared.as_slice() != computed.as_slice() {
        let raw_key = spki.subject_public_key.raw_bytes();
        let note_ids = signed_note_ids(log.base_url.as_deref(), family, &der, raw_key);
        if is_rekor
            && note_ids
                .iter()
                .any(|id| id.as_slice() == declared.as_slice())
        {
            if family == KeyFamily::Ed25519
                && let Some(origin) = log.base_url.as_deref().map(url_host)
            {
                v2.push((
                    computed_note_id(&declared),
                    CheckpointLog {
                        raw_key: raw_key.to_vec(),
                        origin,
                        valid: window,
                    },
                ));
            } else {
                skipped.push(Skipped {
                    entry,
                    reason: "Rekor v2 log with a non-Ed25519 key: not supported".into(),
                });
            }
            return Ok(None);
        }
        return Err(TrustRootError::LogIdMismatch {
            field: at,
            declared: hex(&declared),
            computed: hex(&computed),
        });
    }

    Ok(Some((
        computed,
        LogKey {
            spki_der: der,
            valid: window,
            host: log.base_url.as_deref().map(url_authority),
        },
    )))
}

/// A PKCS#1 `RSAPublicKey` as a SubjectPublicKeyInfo (rsaEncryption, NULL
/// parameters).
fn pkcs1_to_spki(pkcs1: &[u8]) -> Result<Vec<u8>, der::Error> {
    #[derive(der::Sequence)]
    struct RsaPublicKey<'a> {
        modulus: der::asn1::UintRef<'a>,
        exponent: der::asn1::UintRef<'a>,
    }
    RsaPublicKey::from_der(pkcs1)?;
    x509_cert::spki::SubjectPublicKeyInfoOwned {
        algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
            oid: OID_RSA,
            parameters: Some(der::asn1::Null.into()),
        },
        subject_public_key: der::asn1::BitString::from_bytes(pkcs1)?,
    }
    .to_der()
}

/// The host of a base URL (scheme, port and path dropped), as checkpoints
/// name their log.
fn url_host(base: &str) -> String {
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    authority
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(authority, |(h, _)| h)
        .to_string()
}

/// The authority of a base URL (host and port; scheme and path dropped):
/// a Rekor v1 checkpoint names its log `HOST[:PORT] - TREE_ID`.
fn url_authority(base: &str) -> String {
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    rest.split('/').next().unwrap_or_default().to_string()
}

fn computed_note_id(declared: &[u8]) -> [u8; 32] {
    let mut id = [0u8; 32];
    id.copy_from_slice(&declared[..32.min(declared.len())]);
    id
}

/// Decodes and checks a CA's chain: every certificate parses, and each one's
/// issuer is the next one's subject.
fn certificate_chain(at: &str, ca: &RawCa) -> Result<Vec<Vec<u8>>, TrustRootError> {
    let certs = ca
        .cert_chain
        .as_ref()
        .and_then(|c| c.certificates.as_ref())
        .filter(|c| !c.is_empty())
        .ok_or_else(|| field(format!("{at}.certChain.certificates"), "missing or empty"))?;
    let mut ders = Vec::with_capacity(certs.len());
    let mut parsed = Vec::with_capacity(certs.len());
    for (j, cert) in certs.iter().enumerate() {
        let cat = format!("{at}.certChain.certificates[{j}].rawBytes");
        let der = decode_bytes(&cat, cert.raw_bytes.as_deref())?;
        let c = x509_cert::Certificate::from_der(&der)
            .map_err(|e| field(&cat, format!("not a DER X.509 certificate: {e}")))?;
        parsed.push(c);
        ders.push(der);
    }
    for j in 0..parsed.len().saturating_sub(1) {
        let issuer = parsed[j].tbs_certificate().issuer().to_der();
        let next_subject = parsed[j + 1].tbs_certificate().subject().to_der();
        match (issuer, next_subject) {
            (Ok(a), Ok(b)) if a == b => {}
            _ => {
                return Err(field(
                    format!("{at}.certChain.certificates[{j}]"),
                    format!(
                        "its issuer ({}) is not the subject of the next certificate ({}); the chain must run from the leaf-most certificate to the trust anchor",
                        parsed[j].tbs_certificate().issuer(),
                        parsed[j + 1].tbs_certificate().subject()
                    ),
                ));
            }
        }
    }
    Ok(ders)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// TUF
// ---------------------------------------------------------------------------

/// Loads `trusted_root.json` from a TUF repository mirror, verified with
/// `tough` from the pinned `root_json` with every TUF check, freshness
/// included, then parses it with [`parse_trusted_root`] at `now`.
///
/// * `metadata_url`, `targets_url`: base URLs (`file://`, `https://`;
///   `http://` is accepted too, since TUF signatures, not the transport,
///   protect the content). For Sigstore's public-good CDN both are the
///   repository root and `…/targets`.
/// * `datastore`: a persistent directory where tough keeps the last
///   verified timestamp/snapshot/targets and the last seen time, to detect
///   rollback across restarts (created if missing). `None` = a temporary
///   directory, i.e. no memory across restarts.
/// * TUF expiry is checked against the **system clock** (tough has no other
///   notion of time); `now` only selects the `trusted_root.json` entries.
///
/// Meant for start-up. HTTP requests are bounded (10 s to connect, 30 s per
/// file, 3 tries); a failure is an error, never a fallback.
pub async fn load_via_tuf(
    root_json: &[u8],
    metadata_url: &str,
    targets_url: &str,
    datastore: Option<&Path>,
    now: DateTime<Utc>,
) -> Result<SigstoreTrust, TrustRootError> {
    let source = TufSource::Mirror {
        metadata_url,
        targets_url,
        datastore,
    };
    load_detailed(root_json, source, now).await.map(|r| r.trust)
}

/// Loads `trusted_root.json` from the TUF repository snapshot shipped with
/// the project: `dir/metadata/` (`1.root.json` … `N.root.json`,
/// `timestamp.json`, and `V.snapshot.json`, `V.targets.json`, … as the
/// repository's consistent-snapshot setting names them) and `dir/targets/`,
/// read through tough from `file://`, verified from the pinned `root_json`.
///
/// **Expiry is not enforced** (`tough::ExpirationEnforcement::Unsafe`), and
/// this is the only difference from [`load_via_tuf`]:
///
/// * Why: a shipped snapshot is frozen when the project is built. Sigstore's
///   `timestamp.json` lives about a week and its root a few months, so with
///   enforcement every release would refuse to start a week after it was
///   cut, although nothing about its data is wrong.
/// * What is still verified: the root chain from the pinned root (each
///   `N+1.root.json` signed by a threshold of version N's and its own root
///   keys), the signatures and thresholds of timestamp, snapshot and
///   targets under the newest root, the versions and hashes that bind them
///   together, and the `trusted_root.json` bytes against the length and
///   SHA-256 in the signed `targets.json`. The content is therefore exactly
///   what the repository's key holders signed.
/// * What is given up: freshness, i.e. TUF's protection against freeze and
///   rollback (being served an old, once-valid state). A key, CA or log
///   that Sigstore removes or revokes after the release stays trusted
///   until the project ships a newer snapshot. The snapshot sits in the same
///   image as the binary, so whoever could replace it could replace the
///   binary too; the risk is staleness, not forgery.
/// * So: prefer a configured mirror ([`load_via_tuf`]); use the shipped copy
///   for air-gapped clusters, and update it with each release.
///   [`load_detailed`] reports, in [`TufInfo::earliest_expiry`], when the
///   shipped metadata expired, for a start-up warning.
///
/// A fresh temporary tough datastore is used, so state left by a mirror
/// load (a newer timestamp) cannot make the shipped copy look like a
/// rollback.
pub async fn load_shipped(
    root_json: &[u8],
    dir: &Path,
    now: DateTime<Utc>,
) -> Result<SigstoreTrust, TrustRootError> {
    load_detailed(root_json, TufSource::Shipped { dir }, now)
        .await
        .map(|r| r.trust)
}

/// [`load_via_tuf`] or [`load_shipped`], with the full report: what was
/// skipped from the document and what TUF verified.
pub async fn load_detailed(
    root_json: &[u8],
    source: TufSource<'_>,
    now: DateTime<Utc>,
) -> Result<LoadReport, TrustRootError> {
    let (metadata_url, targets_url, datastore, enforcement) = match source {
        TufSource::Mirror {
            metadata_url,
            targets_url,
            datastore,
        } => {
            let datastore = match datastore {
                Some(path) => {
                    tokio::fs::create_dir_all(path)
                        .await
                        .map_err(|e| TrustRootError::Io {
                            path: path.to_path_buf(),
                            message: format!("cannot create the TUF datastore directory: {e}"),
                        })?;
                    Some(path.to_path_buf())
                }
                None => None,
            };
            (
                base_url(metadata_url)?,
                base_url(targets_url)?,
                datastore,
                ExpirationEnforcement::Safe,
            )
        }
        TufSource::Shipped { dir } => {
            let dir = tokio::fs::canonicalize(dir)
                .await
                .map_err(|e| TrustRootError::Io {
                    path: dir.to_path_buf(),
                    message: format!("shipped TUF repository directory: {e}"),
                })?;
            let sub = |name: &str| -> Result<Url, TrustRootError> {
                let path = dir.join(name);
                if !path.is_dir() {
                    return Err(TrustRootError::Io {
                        path,
                        message: "shipped TUF repository: directory missing".into(),
                    });
                }
                Url::from_directory_path(&path).map_err(|()| TrustRootError::Io {
                    path,
                    message: "cannot be turned into a file:// URL".into(),
                })
            };
            (
                sub("metadata")?,
                sub("targets")?,
                None,
                ExpirationEnforcement::Unsafe,
            )
        }
    };

    let transport = DefaultTransport::new_with_http_settings(
        HttpTransportBuilder::new()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .tries(3),
    );
    let mut loader = RepositoryLoader::new(&root_json, metadata_url.clone(), targets_url.clone())
        .transport(transport)
        .expiration_enforcement(enforcement);
    if let Some(path) = datastore {
        loader = loader.datastore(path);
    }
    let repo = loader
        .load()
        .await
        .map_err(|e| classify(e, &metadata_url))?;

    let name = TargetName::new(TRUSTED_ROOT_TARGET).map_err(|e| TrustRootError::Tuf {
        metadata_url: metadata_url.to_string(),
        message: e.to_string(),
    })?;
    let target_err = |message: String| TrustRootError::Target {
        target: TRUSTED_ROOT_TARGET.into(),
        targets_url: targets_url.to_string(),
        message,
    };
    let target_sha256 = repo
        .targets()
        .signed
        .targets
        .get(&name)
        .map(|t| hex(&t.hashes.sha256))
        .unwrap_or_default();
    let stream = repo
        .read_target(&name)
        .await
        .map_err(|e| match classify(e, &metadata_url) {
            TrustRootError::Fetch { url, message } => target_err(format!("{url}: {message}")),
            other => other,
        })?
        .ok_or_else(|| TrustRootError::TargetNotListed {
            target: TRUSTED_ROOT_TARGET.into(),
            metadata_url: metadata_url.to_string(),
        })?;
    let bytes = stream
        .into_vec()
        .await
        .map_err(|e| target_err(error_chain(&e)))?;

    let mut report =
        parse_trusted_root_detailed(&bytes, now).map_err(|e| TrustRootError::Document {
            target: TRUSTED_ROOT_TARGET.into(),
            targets_url: targets_url.to_string(),
            source: Box::new(e),
        })?;

    let expiries = [
        ("root", jiff_to_chrono(repo.root().signed.expires)),
        ("timestamp", jiff_to_chrono(repo.timestamp().signed.expires)),
        ("snapshot", jiff_to_chrono(repo.snapshot().signed.expires)),
        ("targets", jiff_to_chrono(repo.targets().signed.expires)),
    ];
    let earliest = expiries
        .iter()
        .min_by_key(|(_, t)| *t)
        .map(|(r, t)| ((*r).to_string(), *t))
        .unwrap_or_else(|| ("timestamp".into(), DateTime::<Utc>::MIN_UTC));
    report.tuf = Some(TufInfo {
        metadata_url: metadata_url.to_string(),
        targets_url: targets_url.to_string(),
        root_version: repo.root().signed.version.get(),
        timestamp_version: repo.timestamp().signed.version.get(),
        snapshot_version: repo.snapshot().signed.version.get(),
        targets_version: repo.targets().signed.version.get(),
        earliest_expiry: earliest,
        freshness_enforced: enforcement == ExpirationEnforcement::Safe,
        target_sha256,
    });
    Ok(report)
}

/// Converts tough's (jiff) timestamps without naming the jiff crate.
fn jiff_to_chrono<T: fmt::Display>(t: T) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&t.to_string())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A base URL for tough: parsed, scheme checked, with a trailing `/`.
fn base_url(text: &str) -> Result<Url, TrustRootError> {
    let err = |message: String| TrustRootError::Url {
        url: text.to_string(),
        message,
    };
    let mut url = Url::parse(text).map_err(|e| err(format!("not a URL: {e}")))?;
    match url.scheme() {
        "file" | "https" | "http" => {}
        other => {
            return Err(err(format!(
                "unsupported scheme `{other}` (use file://, https:// or http://)"
            )));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err("a base URL takes no query or fragment".into()));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// An error and its causes, each cause added only if the text so far does
/// not already contain it.
fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// Whether any cause of `e` is a tough hash or size mismatch.
fn is_integrity_failure(e: &(dyn StdError + 'static)) -> bool {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(
            tough::error::Error::HashMismatch { .. } | tough::error::Error::MaxSizeExceeded { .. },
        ) = c.downcast_ref::<tough::error::Error>()
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Sorts tough's errors into ours.
fn classify(e: tough::error::Error, metadata_url: &Url) -> TrustRootError {
    use tough::error::Error as T;
    let metadata_url = metadata_url.to_string();
    let message = error_chain(&e);
    match &e {
        T::ParseTrustedMetadata { .. } | T::VerifyTrustedMetadata { .. } => {
            TrustRootError::PinnedRoot(message)
        }
        T::ExpiredMetadata { role, .. } => TrustRootError::Expired {
            role: role.to_string(),
            metadata_url,
        },
        T::Transport { url, source, .. } => {
            if is_integrity_failure(source) {
                TrustRootError::Verification {
                    metadata_url,
                    message,
                }
            } else {
                TrustRootError::Fetch {
                    url: url.to_string(),
                    message: error_chain(source),
                }
            }
        }
        T::VerifyMetadata { .. }
        | T::VerifyRoleMetadata { .. }
        | T::VersionMismatch { .. }
        | T::OlderMetadata { .. }
        | T::OlderSnapshotInTimestamp { .. }
        | T::SnapshotRoleMissing { .. }
        | T::SnapshotRoleRollback { .. }
        | T::SnapshotTargetsMetaMissing { .. }
        | T::MetaMissing { .. }
        | T::HashMismatch { .. }
        | T::MaxSizeExceeded { .. }
        | T::MaxUpdatesExceeded { .. }
        | T::ParseMetadata { .. }
        | T::TimestampMetaLength { .. }
        | T::MissingSnapshotMeta { .. }
        | T::SystemTimeSteppedBackward { .. } => TrustRootError::Verification {
            metadata_url,
            message,
        },
        _ => TrustRootError::Tuf {
            metadata_url,
            message,
        },
    }
}
