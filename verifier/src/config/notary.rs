//! The `notaryv1` validator's config, in Connaisseur v3's names.
//!
//! ```yaml
//! - name: dct
//!   type: notaryv1
//!   host: https://notary.example.com        # default https://notary.docker.io
//!   cert: "PEM CA bundle for the Notary server's TLS (optional)"
//!   auth: {username: u, password: p}        # for the token / basic challenge
//!   trustRoots:
//!     - name: default
//!       key: "PEM public key (ECDSA P-256 or RSA) pinned as the root key"
//! ```

use super::model::{RuleOptionsCheck, ValidatorKind};
use crate::policy::RuleOptions;
use portcullis_shared::config_error::{ConfigError, deserialize_at};
use serde::Deserialize;

use super::cosign::{FieldError, parse_cert_bundle};
use crate::registry::Credential;
use portcullis_notary_tuf::PinnedKey;

/// The default Notary server (Docker Hub's).
pub(crate) const DEFAULT_HOST: &str = "https://notary.docker.io";

/// The raw YAML shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawNotary {
    name: String,
    #[serde(rename = "type")]
    _type: String,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    auth: Option<RawNotaryAuth>,
    trust_roots: Vec<RawRoot>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotaryAuth {
    username: String,
    password: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoot {
    name: String,
    key: String,
}

/// A pinned root key with its name.
#[derive(Debug, Clone)]
pub(crate) struct NotaryRoot {
    /// The name rules refer to.
    pub(crate) name: String,
    /// The pinned root key (SPKI).
    pub(crate) key: PinnedKey,
}

/// The validated Notary config.
#[derive(Debug, Clone)]
pub(crate) struct NotarySpec {
    /// The server base URL, e.g. `https://notary.docker.io`.
    pub(crate) host_url: String,
    /// `host[:port]` of the server: credentials and tokens are bound to it.
    pub(crate) host_key: String,
    /// Extra CA (PEM) for the server's TLS.
    pub(crate) ca: Option<String>,
    /// Credentials for the token/basic challenge.
    pub(crate) credential: Option<Credential>,
    /// The pinned root keys.
    pub(crate) trust_roots: Vec<NotaryRoot>,
}

impl NotarySpec {
    /// The root called `name`.
    pub(crate) fn root(&self, name: &str) -> Option<&NotaryRoot> {
        self.trust_roots.iter().find(|r| r.name == name)
    }
}

/// Validates the raw config.
pub(crate) fn validate(raw: RawNotary) -> Result<(String, NotarySpec), FieldError> {
    let field = |f: &str, m: String| (f.to_string(), m);
    let host_url = raw.host.clone().unwrap_or_else(|| DEFAULT_HOST.to_string());
    let host_url = if host_url.contains("://") {
        host_url
    } else {
        // Connaisseur accepts a bare host name and means HTTPS.
        format!("https://{host_url}")
    };
    let parsed =
        url::Url::parse(&host_url).map_err(|e| field("host", format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(field(
            "host",
            "must be an https:// (or explicitly plain http://) URL".into(),
        ));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| field("host", "has no host name".into()))?;
    let host_key = match parsed.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    if let Some(cert) = &raw.cert {
        parse_cert_bundle(cert).map_err(|m| field("cert", m))?;
    }
    if raw.trust_roots.is_empty() {
        return Err(field(
            "trustRoots",
            "at least one trust root is required".into(),
        ));
    }
    let mut trust_roots: Vec<NotaryRoot> = Vec::new();
    for (i, root) in raw.trust_roots.iter().enumerate() {
        if trust_roots.iter().any(|r| r.name == root.name) {
            return Err(field(
                &format!("trustRoots[{i}].name"),
                format!("duplicate trust root name `{}`", root.name),
            ));
        }
        let key = PinnedKey::from_pem(&root.key)
            .map_err(|e| field(&format!("trustRoots[{i}].key"), e.to_string()))?;
        trust_roots.push(NotaryRoot {
            name: root.name.clone(),
            key,
        });
    }
    Ok((
        raw.name,
        NotarySpec {
            host_url: host_url.trim_end_matches('/').to_string(),
            host_key,
            ca: raw.cert,
            credential: raw.auth.map(|a| Credential {
                username: a.username,
                password: a.password,
            }),
            trust_roots,
        },
    ))
}
/// Parses a `type: notaryv1` entry (at `at` of `file`).
pub(crate) fn parse(
    value: serde_yaml_ng::Value,
    at: &str,
    file: &str,
) -> Result<(String, ValidatorKind), ConfigError> {
    let raw: RawNotary = deserialize_at(value, at, file)?;
    let (name, spec) =
        validate(raw).map_err(|(f, m)| ConfigError::new(file, &format!("{at}.{f}"), m))?;
    Ok((name, ValidatorKind::NotaryV1(Box::new(spec))))
}

impl RuleOptionsCheck for NotarySpec {
    fn type_name(&self) -> &'static str {
        "notaryv1"
    }

    fn options(&self) -> &'static [&'static str] {
        &["trustRoot", "delegations"]
    }

    fn check_rule(&self, options: &RuleOptions) -> Result<(), (String, String)> {
        let name = options.trust_root.as_deref().unwrap_or("default");
        match self.root(name) {
            Some(_) => Ok(()),
            None if options.trust_root.is_none() => Err((
                "trustRoot".to_string(),
                "no `trustRoot` given and no trust root is named `default`".to_string(),
            )),
            None => Err((
                "trustRoot".to_string(),
                format!("no trust root named `{name}`"),
            )),
        }
    }
}
