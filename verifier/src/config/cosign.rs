//! The `cosign` validator's config, in Connaisseur v3's names.
//!
//! ```yaml
//! - name: signed
//!   type: cosign
//!   cert: "PEM CA bundle for the registry's TLS (optional)"
//!   auth: {username: u, password: p}        # or {dockerConfigJson: /path/config.json}
//!   insecureRegistries: ["127.0.0.1:5000"]  # plain HTTP, for local tests only
//!   host: {rekorPubkey: PEM, ctLogPubkey: PEM, fulcioCert: PEM chain}
//!   trustRoots:
//!     - {name: alice, key: PEM}
//!     - {name: ci, keyless: {issuer: URL, subjectRegex: "^https://github.com/org/.*"}}
//! ```
//!
//! Every key and certificate is parsed at load time; an error names the
//! field.

use super::model::{RuleOptionsCheck, ValidatorKind};
use crate::policy::RuleOptions;
use portcullis_shared::config_error::{ConfigError, deserialize_at};
use std::collections::HashMap;

use regex::Regex;
use serde::Deserialize;
use sigstore::crypto::CosignVerificationKey;

use crate::registry::Credential;
use portcullis_sigstore_trust::{CaCert, CheckpointLog, LogKey, Tsa, Validity};

/// The raw YAML shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawCosign {
    name: String,
    #[serde(rename = "type")]
    _type: String,
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    auth: Option<RawAuth>,
    #[serde(default)]
    insecure_registries: Option<Vec<String>>,
    #[serde(default)]
    host: Option<RawHost>,
    trust_roots: Vec<RawTrustRoot>,
}

/// Registry credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawAuth {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// The hosts `username`/`password` belong to. Default: the literal hosts
    /// of the policy patterns that route to this validator.
    #[serde(default)]
    registries: Option<Vec<String>>,
    /// A `.dockerconfigjson` file: credentials per exact host.
    #[serde(default)]
    docker_config_json: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawHost {
    #[serde(default)]
    rekor_pubkey: Option<String>,
    #[serde(default)]
    ct_log_pubkey: Option<String>,
    #[serde(default)]
    fulcio_cert: Option<String>,
    /// Connaisseur's Rekor URL; accepted for migration, never contacted
    /// (verification is offline).
    #[serde(default)]
    rekor: Option<String>,
    /// A TUF mirror of a Sigstore instance (metadata base URL, `https://`
    /// or `file://`), loaded at start-up.
    #[serde(default)]
    tuf_mirror: Option<String>,
    /// The mirror's targets base URL (default: `<tufMirror>/targets`).
    #[serde(default)]
    tuf_targets: Option<String>,
    /// A Rekor v2 log's Ed25519 public key (PEM), for private deployments;
    /// needs `rekorV2Url`.
    #[serde(default)]
    rekor_v2_pubkey: Option<String>,
    /// That log's base URL: its host is the origin its checkpoints name.
    #[serde(default)]
    rekor_v2_url: Option<String>,
    /// A timestamp authority's chain (PEM: its certificate first, the root
    /// last), for RFC 3161 timestamps.
    #[serde(default)]
    tsa_cert_chain: Option<String>,
    /// The pinned TUF root (a `root.json` file) for `tufMirror`; default:
    /// the public-good root shipped with Portcullis.
    #[serde(default)]
    tuf_root: Option<String>,
    /// Trust the public-good Sigstore instance through the TUF snapshot
    /// shipped with Portcullis (the default for keyless roots without
    /// other material).
    #[serde(default)]
    public_good: Option<bool>,
}

/// Where Sigstore trust (Fulcio, Rekor, CT) comes from besides PEMs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SigstoreSource {
    /// The public-good TUF snapshot shipped in the binary.
    PublicGood,
    /// A TUF mirror.
    Mirror {
        /// The pinned TUF root.json.
        root: Vec<u8>,
        /// Metadata base URL.
        metadata_url: String,
        /// Targets base URL.
        targets_url: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTrustRoot {
    name: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    keyless: Option<RawKeyless>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawKeyless {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    issuer_regex: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    subject_regex: Option<String>,
}

/// A string matched exactly or by an anchored regex.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    /// Exact equality.
    Exact(String),
    /// The regex, anchored at both ends.
    Regex(Regex),
}

impl Matcher {
    /// Whether `value` matches.
    pub(crate) fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(s) => s == value,
            Matcher::Regex(r) => r.is_match(value),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Matcher::Exact(s) => write!(f, "{s:?}"),
            Matcher::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

/// What a trust root trusts.
#[derive(Debug, Clone)]
pub(crate) enum TrustRootKind {
    /// A public key (ECDSA P-256/P-384, RSA, Ed25519).
    Key {
        /// The parsed key.
        key: CosignVerificationKey,
        /// Its SPKI DER, to compare with transparency-log entries.
        spki_der: Vec<u8>,
    },
    /// A keyless (Fulcio) identity.
    Keyless {
        /// The OIDC issuer.
        issuer: Matcher,
        /// The certificate subject (SAN email or URI).
        subject: Matcher,
    },
}

/// A named trust root.
#[derive(Debug, Clone)]
pub(crate) struct TrustRoot {
    /// The name rules refer to.
    pub(crate) name: String,
    /// What it trusts.
    pub(crate) kind: TrustRootKind,
}

/// Keys and certificates of the transparency infrastructure.
#[derive(Debug, Clone, Default)]
pub(crate) struct TransparencyRoots {
    /// Rekor public keys by log id (SHA-256 of the SPKI DER).
    pub(crate) rekor_keys: HashMap<[u8; 32], LogKey>,
    /// CT log public keys by log id.
    pub(crate) ct_keys: HashMap<[u8; 32], LogKey>,
    /// Fulcio certificates: self-signed ones are trust anchors, the rest
    /// intermediates.
    pub(crate) fulcio_certs: Vec<CaCert>,
    /// Rekor v2 logs (checkpoints, no SETs) by log id.
    pub(crate) rekor_v2_logs: HashMap<[u8; 32], CheckpointLog>,
    /// Timestamp authorities.
    pub(crate) tsas: Vec<Tsa>,
}

impl TransparencyRoots {
    /// Whether any transparency log (v1 or v2) is configured.
    pub(crate) fn has_tlog(&self) -> bool {
        !self.rekor_keys.is_empty() || !self.rekor_v2_logs.is_empty()
    }
}

/// The validated cosign config.
#[derive(Debug, Clone)]
pub(crate) struct CosignSpec {
    /// Trust roots by name, in config order.
    pub(crate) trust_roots: Vec<TrustRoot>,
    /// The transparency log and Fulcio roots.
    pub(crate) transparency: TransparencyRoots,
    /// Extra CA (PEM) for registry TLS.
    pub(crate) registry_ca: Option<String>,
    /// Credentials by exact host.
    pub(crate) credentials: HashMap<String, Credential>,
    /// `username`/`password` without `registries`: bound later to the
    /// literal hosts of the rules using this validator.
    pub(crate) unbound_credential: Option<Credential>,
    /// Hosts reached over plain HTTP.
    pub(crate) insecure_registries: Vec<String>,
    /// Sigstore trust to load through TUF at start-up, if any.
    pub(crate) sigstore: Option<SigstoreSource>,
}

impl CosignSpec {
    /// The trust root called `name`.
    pub(crate) fn root(&self, name: &str) -> Option<&TrustRoot> {
        self.trust_roots.iter().find(|r| r.name == name)
    }
}

/// A field-level error: (field path relative to the validator, message).
pub(crate) type FieldError = (String, String);

pub(crate) fn field(path: impl Into<String>, message: impl Into<String>) -> FieldError {
    (path.into(), message.into())
}

/// Parses a PEM public key into (key, SPKI DER).
pub(crate) fn parse_public_key(pem: &str) -> Result<(CosignVerificationKey, Vec<u8>), String> {
    if pem.trim_start().starts_with(super::k8s_keys::PREFIX) {
        return Err(format!(
            "`{}` is a Kubernetes Secret reference: `serve` reads it at start-up through the Kubernetes API; other commands need the PEM",
            pem.trim()
        ));
    }
    let parsed = pem::parse(pem.trim()).map_err(|e| format!("not a PEM public key: {e}"))?;
    if parsed.tag() != "PUBLIC KEY" {
        return Err(format!(
            "expected a `PUBLIC KEY` PEM block, found `{}`",
            parsed.tag()
        ));
    }
    let der = parsed.contents().to_vec();
    let key = CosignVerificationKey::try_from_der(&der)
        .map_err(|e| format!("unsupported public key: {e}"))?;
    Ok((key, der))
}

/// Parses every certificate in a PEM bundle into DER.
pub(crate) fn parse_cert_bundle(pem_text: &str) -> Result<Vec<Vec<u8>>, String> {
    let blocks = pem::parse_many(pem_text).map_err(|e| format!("not PEM: {e}"))?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.contents().to_vec())
        .collect();
    if certs.is_empty() {
        return Err("no CERTIFICATE block found".into());
    }
    for der in &certs {
        <x509_cert::Certificate as der::Decode>::from_der(der)
            .map_err(|e| format!("invalid certificate: {e}"))?;
    }
    Ok(certs)
}

fn log_id(spki_der: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(spki_der).into()
}

fn matcher(
    exact: &Option<String>,
    regex: &Option<String>,
    what: &str,
    at: &str,
) -> Result<Matcher, FieldError> {
    match (exact, regex) {
        (Some(_), Some(_)) => Err(field(
            at,
            format!("give `{what}` or `{what}Regex`, not both"),
        )),
        (Some(s), None) => Ok(Matcher::Exact(s.clone())),
        (None, Some(r)) => Regex::new(&format!("^(?:{r})$"))
            .map(Matcher::Regex)
            .map_err(|e| field(format!("{at}.{what}Regex"), format!("invalid regex: {e}"))),
        (None, None) => Err(field(at, format!("missing `{what}` or `{what}Regex`"))),
    }
}

/// Reads a `.dockerconfigjson` file into credentials by exact host.
pub(crate) fn read_docker_config(path: &str) -> Result<HashMap<String, Credential>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_docker_config(&text, path)
}

/// Parses docker config JSON (`{"auths": {HOST: {auth | username+password}}}`)
/// into credentials by exact host; `label` names the source in errors
/// (which never include secrets).
pub(crate) fn parse_docker_config(
    bytes: &[u8],
    label: &str,
) -> Result<HashMap<String, Credential>, String> {
    use base64::Engine as _;
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        auths: HashMap<String, Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        auth: Option<String>,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
    }
    let file: File = serde_json::from_slice(bytes)
        .map_err(|e| format!("{label} is not a docker config JSON: {e}"))?;
    let mut out = HashMap::new();
    for (key, entry) in file.auths {
        let host = docker_config_host(&key);
        let credential = match (entry.username, entry.password, entry.auth) {
            (Some(username), Some(password), _) => Credential { username, password },
            (_, _, Some(auth)) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|e| format!("{label}: auths.{key}.auth is not base64: {e}"))?;
                let raw = String::from_utf8(raw)
                    .map_err(|_| format!("{label}: auths.{key}.auth is not UTF-8"))?;
                let (username, password) = raw
                    .split_once(':')
                    .ok_or_else(|| format!("{label}: auths.{key}.auth is not user:password"))?;
                Credential {
                    username: username.to_string(),
                    password: password.to_string(),
                }
            }
            _ => return Err(format!("{label}: auths.{key} has no credentials")),
        };
        out.insert(host, credential);
    }
    Ok(out)
}

/// The registry host a docker config key names: scheme and path dropped,
/// canonicalised as image references' hosts are (lower case, no `:443`,
/// `docker.io` for `index.docker.io` and `registry-1.docker.io`), so that
/// credentials are found by the host the image names.
pub(crate) fn docker_config_host(key: &str) -> String {
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    let host = without_scheme.split('/').next().unwrap_or_default();
    crate::reference::canonical_host(host)
}

/// Registry credentials from `auth`: by exact host, plus a
/// `username`/`password` without `registries` that is bound later to the
/// literal hosts of the rules using the validator.
pub(crate) fn parse_auth(
    auth: &RawAuth,
) -> Result<(HashMap<String, Credential>, Option<Credential>), FieldError> {
    let mut credentials = HashMap::new();
    let mut unbound_credential = None;
    if let Some(path) = &auth.docker_config_json {
        credentials = read_docker_config(path).map_err(|m| field("auth.dockerConfigJson", m))?;
    }
    match (&auth.username, &auth.password) {
        (Some(username), Some(password)) => {
            let credential = Credential {
                username: username.clone(),
                password: password.clone(),
            };
            match &auth.registries {
                Some(hosts) => {
                    for host in hosts {
                        credentials.insert(docker_config_host(host), credential.clone());
                    }
                }
                None => unbound_credential = Some(credential),
            }
        }
        (None, None) => {
            if auth.docker_config_json.is_none() {
                return Err(field(
                    "auth",
                    "give `username` and `password`, or `dockerConfigJson`",
                ));
            }
        }
        _ => return Err(field("auth", "`username` and `password` go together")),
    }
    Ok((credentials, unbound_credential))
}

/// Validates the raw config.
pub(crate) fn validate(raw: RawCosign) -> Result<(String, CosignSpec), FieldError> {
    let mut transparency = TransparencyRoots::default();
    if let Some(host) = &raw.host {
        if let Some(pem) = &host.rekor_pubkey {
            let (_, der) = parse_public_key(pem).map_err(|m| field("host.rekorPubkey", m))?;
            transparency.rekor_keys.insert(
                log_id(&der),
                LogKey {
                    spki_der: der,
                    valid: Validity::ALWAYS,
                    host: None,
                },
            );
        }
        if let Some(pem) = &host.ct_log_pubkey {
            let (_, der) = parse_public_key(pem).map_err(|m| field("host.ctLogPubkey", m))?;
            transparency.ct_keys.insert(
                log_id(&der),
                LogKey {
                    spki_der: der,
                    valid: Validity::ALWAYS,
                    host: None,
                },
            );
        }
        if let Some(pem) = &host.fulcio_cert {
            transparency.fulcio_certs = parse_cert_bundle(pem)
                .map_err(|m| field("host.fulcioCert", m))?
                .into_iter()
                .map(|der| CaCert {
                    der,
                    valid: Validity::ALWAYS,
                })
                .collect();
        }
        let _ = &host.rekor;
        match (&host.rekor_v2_pubkey, &host.rekor_v2_url) {
            (Some(pem), Some(url)) => {
                let (_, der) = parse_public_key(pem).map_err(|m| field("host.rekorV2Pubkey", m))?;
                let spki =
                    <x509_cert::spki::SubjectPublicKeyInfoOwned as der::Decode>::from_der(&der)
                        .map_err(|e| field("host.rekorV2Pubkey", e.to_string()))?;
                if spki.algorithm.oid.to_string() != "1.3.101.112" {
                    return Err(field(
                        "host.rekorV2Pubkey",
                        "a Rekor v2 log key must be Ed25519",
                    ));
                }
                let raw_key = spki.subject_public_key.raw_bytes().to_vec();
                let parsed = url::Url::parse(url)
                    .map_err(|e| field("host.rekorV2Url", format!("not a URL: {e}")))?;
                let origin = parsed
                    .host_str()
                    .ok_or_else(|| field("host.rekorV2Url", "no host"))?
                    .to_string();
                transparency.rekor_v2_logs.insert(
                    CheckpointLog::log_id(&origin, &raw_key),
                    CheckpointLog {
                        raw_key,
                        origin,
                        valid: Validity::ALWAYS,
                    },
                );
            }
            (None, None) => {}
            _ => {
                return Err(field(
                    "host.rekorV2Pubkey",
                    "rekorV2Pubkey and rekorV2Url go together",
                ));
            }
        }
        if let Some(pem) = &host.tsa_cert_chain {
            transparency.tsas.push(Tsa {
                chain: parse_cert_bundle(pem).map_err(|m| field("host.tsaCertChain", m))?,
                valid: Validity::ALWAYS,
                uri: None,
            });
        }
    }
    let mut sigstore = None;
    if let Some(host) = &raw.host {
        if let Some(mirror) = &host.tuf_mirror {
            url::Url::parse(mirror)
                .map_err(|e| field("host.tufMirror", format!("not a URL: {e}")))?;
            let root = match &host.tuf_root {
                Some(path) => std::fs::read(path)
                    .map_err(|e| field("host.tufRoot", format!("cannot read {path}: {e}")))?,
                None => portcullis_sigstore_trust::public_good::ROOT_V12.to_vec(),
            };
            let targets_url = host
                .tuf_targets
                .clone()
                .unwrap_or_else(|| format!("{}/targets", mirror.trim_end_matches('/')));
            sigstore = Some(SigstoreSource::Mirror {
                root,
                metadata_url: mirror.clone(),
                targets_url,
            });
        } else if host.tuf_root.is_some() || host.tuf_targets.is_some() {
            return Err(field("host.tufMirror", "tufRoot/tufTargets need tufMirror"));
        } else if host.public_good == Some(true) {
            sigstore = Some(SigstoreSource::PublicGood);
        }
    }
    if raw.trust_roots.is_empty() {
        return Err(field("trustRoots", "at least one trust root is required"));
    }
    let mut trust_roots = Vec::with_capacity(raw.trust_roots.len());
    for (i, root) in raw.trust_roots.iter().enumerate() {
        let at = format!("trustRoots[{i}]");
        if root.name.is_empty() || root.name == "*" {
            return Err(field(
                format!("{at}.name"),
                "a trust root needs a name other than `*`",
            ));
        }
        if trust_roots.iter().any(|r: &TrustRoot| r.name == root.name) {
            return Err(field(
                format!("{at}.name"),
                format!("duplicate trust root name `{}`", root.name),
            ));
        }
        let kind = match (&root.key, &root.keyless) {
            (Some(pem), None) => {
                let (key, spki_der) =
                    parse_public_key(pem).map_err(|m| field(format!("{at}.key"), m))?;
                TrustRootKind::Key { key, spki_der }
            }
            (None, Some(k)) => {
                let kat = format!("{at}.keyless");
                let issuer = matcher(&k.issuer, &k.issuer_regex, "issuer", &kat)?;
                let subject = matcher(&k.subject, &k.subject_regex, "subject", &kat)?;
                let pems_complete = !transparency.fulcio_certs.is_empty()
                    && transparency.has_tlog()
                    && !transparency.ct_keys.is_empty();
                let pems_partial = !transparency.fulcio_certs.is_empty()
                    || transparency.has_tlog()
                    || !transparency.ct_keys.is_empty();
                if !pems_complete && sigstore.is_none() {
                    if pems_partial {
                        return Err(field(
                            "host",
                            "keyless trust roots need all of host.fulcioCert (the Fulcio root and intermediates), host.rekorPubkey and host.ctLogPubkey, or a TUF source (host.tufMirror or host.publicGood)",
                        ));
                    }
                    // Nothing configured: the public-good instance.
                    sigstore = Some(SigstoreSource::PublicGood);
                }
                TrustRootKind::Keyless { issuer, subject }
            }
            (Some(_), Some(_)) => return Err(field(at, "give `key` or `keyless`, not both")),
            (None, None) => return Err(field(at, "missing `key` or `keyless`")),
        };
        trust_roots.push(TrustRoot {
            name: root.name.clone(),
            kind,
        });
    }
    let (credentials, unbound_credential) = match &raw.auth {
        Some(auth) => parse_auth(auth)?,
        None => (HashMap::new(), None),
    };
    if let Some(cert) = &raw.cert {
        parse_cert_bundle(cert).map_err(|m| field("cert", m))?;
    }
    Ok((
        raw.name,
        CosignSpec {
            trust_roots,
            transparency,
            registry_ca: raw.cert,
            credentials,
            unbound_credential,
            insecure_registries: raw
                .insecure_registries
                .unwrap_or_default()
                .iter()
                .map(|h| crate::reference::canonical_host(h))
                .collect(),
            sigstore,
        },
    ))
}

/// Parses a `type: cosign` entry (at `at` of `file`).
pub(crate) fn parse(
    value: serde_yaml_ng::Value,
    at: &str,
    file: &str,
) -> Result<(String, ValidatorKind), ConfigError> {
    let raw: RawCosign = deserialize_at(value, at, file)?;
    let (name, spec) =
        validate(raw).map_err(|(f, m)| ConfigError::new(file, &format!("{at}.{f}"), m))?;
    Ok((name, ValidatorKind::Cosign(Box::new(spec))))
}

impl RuleOptionsCheck for CosignSpec {
    fn type_name(&self) -> &'static str {
        "cosign"
    }

    fn options(&self) -> &'static [&'static str] {
        &[
            "trustRoot",
            "threshold",
            "required",
            "verifyInTransparencyLog",
            "attestations",
            "sigstorePolicy",
        ]
    }

    fn check_rule(&self, options: &RuleOptions) -> Result<(), (String, String)> {
        check_cosign_options(options, self)
    }
}

/// Checks that a cosign rule's trust roots, threshold, required signers and
/// attestations refer to roots that exist and can be satisfied.
fn check_cosign_options(options: &RuleOptions, spec: &CosignSpec) -> Result<(), (String, String)> {
    let selected = cosign_selected_roots(options, spec)
        .map_err(|e| ("trustRoot".to_string(), e.to_string()))?;
    check_required_and_threshold(&selected, options)?;
    if let Some(p) = &options.sigstore_policy {
        let keyless = selected
            .iter()
            .filter_map(|n| spec.root(n))
            .any(|r| matches!(r.kind, TrustRootKind::Keyless { .. }));
        if keyless
            && p.observer_timestamps == Some(0)
            && p.integrated_timestamps.unwrap_or(0) == 0
            && p.signed_timestamps.unwrap_or(0) == 0
        {
            return Err((
                "sigstorePolicy.observerTimestamps".to_string(),
                "keyless signatures need a time to check their certificate at: at least one observer, integrated or signed timestamp".to_string(),
            ));
        }
    }
    if let Some(attestations) = &options.attestations {
        let env = crate::policy::conditions::environment();
        for (i, a) in attestations.iter().enumerate() {
            if let Some(root) = &a.trust_root
                && root != "*"
                && spec.root(root).is_none()
            {
                return Err((
                    format!("attestations[{i}].trustRoot"),
                    format!("no trust root named `{root}`"),
                ));
            }
            check_attestation(a, &selected, spec, &env)
                .map_err(|(field, message)| (format!("attestations[{i}].{field}"), message))?;
        }
    }
    Ok(())
}

/// Checks one attestation requirement: its conditions compile (see
/// [`crate::policy::conditions`]), its `required` roots are
/// among those it accepts, and its `threshold` is between 1 and their
/// number.
fn check_attestation(
    a: &crate::policy::AttestationRequirement,
    rule_roots: &[&str],
    spec: &CosignSpec,
    env: &crate::policy::conditions::Environment,
) -> Result<(), (String, String)> {
    use crate::policy::conditions::Condition;
    for (j, source) in a.conditions.iter().enumerate() {
        Condition::compile(env, source)
            .map_err(|e| (format!("conditions[{j}]"), format!("{e}, in `{source}`")))?;
    }
    let accepted: Vec<&str> = match a.trust_root.as_deref() {
        Some("*") => spec.trust_roots.iter().map(|r| r.name.as_str()).collect(),
        Some(name) => vec![name],
        None => rule_roots.to_vec(),
    };
    for (j, name) in a.required.iter().flatten().enumerate() {
        if !accepted.contains(&name.as_str()) {
            return Err((
                format!("required[{j}]"),
                format!(
                    "`{name}` is not among the roots this attestation accepts ({})",
                    accepted.join(", ")
                ),
            ));
        }
    }
    if let Some(t) = a.threshold
        && (t == 0 || t as usize > accepted.len())
    {
        return Err((
            "threshold".to_string(),
            format!(
                "threshold {t} must be between 1 and the number of roots this attestation accepts ({})",
                accepted.len()
            ),
        ));
    }
    Ok(())
}

/// Checks that a rule's `required` roots are among its `selected` ones and
/// that its `threshold` is between 1 and their number (cosign, notation).
pub(crate) fn check_required_and_threshold(
    selected: &[&str],
    options: &RuleOptions,
) -> Result<(), (String, String)> {
    if let Some(required) = &options.required {
        for (i, name) in required.iter().enumerate() {
            if !selected.contains(&name.as_str()) {
                return Err((
                    format!("required[{i}]"),
                    format!(
                        "`{name}` is not among the rule's trust roots ({})",
                        selected.join(", ")
                    ),
                ));
            }
        }
    }
    if let Some(threshold) = options.threshold
        && (threshold == 0 || threshold as usize > selected.len())
    {
        return Err((
            "threshold".to_string(),
            format!(
                "must be between 1 and the number of selected trust roots ({})",
                selected.len()
            ),
        ));
    }
    Ok(())
}

/// The names of the trust roots a cosign rule selects: `trustRoot: "*"`
/// means all, a name means that one, and no `trustRoot` means the root
/// named `default`.
pub(crate) fn cosign_selected_roots<'a>(
    options: &RuleOptions,
    spec: &'a CosignSpec,
) -> Result<Vec<&'a str>, RootSelectionError> {
    match options.trust_root.as_deref() {
        Some("*") => Ok(spec.trust_roots.iter().map(|r| r.name.as_str()).collect()),
        Some(name) => spec
            .root(name)
            .map(|r| vec![r.name.as_str()])
            .ok_or_else(|| RootSelectionError::NoSuchRoot(name.to_string())),
        None => spec
            .root("default")
            .map(|r| vec![r.name.as_str()])
            .ok_or(RootSelectionError::NoDefault),
    }
}

/// A rule names trust roots its validator does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RootSelectionError {
    /// `trustRoot: NAME` names no root.
    #[error("no trust root named `{0}`")]
    NoSuchRoot(String),
    /// No `trustRoot` and no root called `default`.
    #[error("no `trustRoot` given and no trust root is named `default`")]
    NoDefault,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_hosts() {
        assert_eq!(
            docker_config_host("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(docker_config_host("ghcr.io"), "ghcr.io");
        assert_eq!(
            docker_config_host("http://127.0.0.1:5000"),
            "127.0.0.1:5000"
        );
    }

    #[test]
    fn anchored_regex_matchers() {
        let m = matcher(
            &None,
            &Some("https://github.com/org/.*".into()),
            "subject",
            "x",
        )
        .unwrap();
        assert!(m.matches("https://github.com/org/repo"));
        assert!(!m.matches("xhttps://github.com/org/repo"));
        let m = matcher(&None, &Some("a|b".into()), "subject", "x").unwrap();
        assert!(m.matches("a") && m.matches("b") && !m.matches("ab"));
    }
}
