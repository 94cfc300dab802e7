//! A Notation trust policy (`trustpolicy.json` / `trustpolicy.oci.json`,
//! version 1.0) and its trust store, imported as a `notation` validator's
//! trust: the other way to configure it besides `trustRoots`.
//!
//! How it maps onto Portcullis (also in the README):
//!
//! * Policy rules route images to the validator as usual; inside it, the
//!   statement whose `registryScopes` names the image's repository
//!   (`registry/repository`, canonical host) applies, else the `*`
//!   statement, else the image is denied (`NO_MATCHING_RULE`).
//! * `trustStores` `ca:NAME` and `signingAuthority:NAME` become trust roots
//!   named so, holding the certificates under
//!   `TRUSTSTORE/x509/{ca,signingAuthority}/NAME/`; `tsa:NAME` stores are
//!   the statement's TSA roots. One signature verified against any of the
//!   statement's stores admits (as `notation verify` does).
//! * `trustedIdentities`: `*`, or `x509.subject: C=…, O=…, CN=…`, matched
//!   against the signing certificate's subject (every attribute given must
//!   be present with that value).
//! * `signatureVerification.level` `strict`, `permissive` or `audit`, with
//!   `override`s per check, and `verifyTimestamp`. The level `skip` is
//!   refused: an image that needs no signature is a `static` rule, written
//!   where the policy is reviewed.

use std::path::Path;

use serde::Deserialize;

use super::notation::{NotationRoot, Requirements, StoreType};
use crate::policy::{VerificationLevel, VerifyTimestamp};

/// What happens when a check fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum Action {
    /// The signature does not count.
    #[serde(rename = "enforce")]
    Enforce,
    /// The failure is logged and shown as a warning.
    #[serde(rename = "log")]
    Log,
    /// The check is not made.
    #[serde(rename = "skip")]
    Skip,
}

/// The action of each check that a level can relax (integrity is always
/// enforced). Revocation is never checked (see the README): the field keeps
/// what the policy asked, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Actions {
    /// The chain leads to a trusted certificate, the identity is trusted.
    pub(crate) authenticity: Action,
    /// The signing time is authentic (timestamp, or validity now).
    pub(crate) authentic_timestamp: Action,
    /// The signature's own expiry.
    pub(crate) expiry: Action,
    /// OCSP/CRL (not checked).
    pub(crate) revocation: Action,
}

impl Actions {
    /// The trust policy specification's table of levels.
    pub(crate) fn for_level(level: VerificationLevel) -> Self {
        use Action::{Enforce, Log};
        match level {
            VerificationLevel::Strict => Actions {
                authenticity: Enforce,
                authentic_timestamp: Enforce,
                expiry: Enforce,
                revocation: Enforce,
            },
            VerificationLevel::Permissive => Actions {
                authenticity: Enforce,
                authentic_timestamp: Log,
                expiry: Log,
                revocation: Log,
            },
            VerificationLevel::Audit => Actions {
                authenticity: Log,
                authentic_timestamp: Log,
                expiry: Log,
                revocation: Log,
            },
        }
    }
}

/// A trusted identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// `*`: any certificate the trust stores lead to.
    Any,
    /// `x509.subject: …`: these (attribute OID, value) pairs, all present in
    /// the signing certificate's subject.
    Subject(Vec<(&'static str, String)>),
}

/// Which repositories a statement covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scopes {
    /// `*`.
    Any,
    /// Exact `registry/repository` names.
    Repositories(Vec<String>),
}

/// One trust policy statement.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    /// Its name, for messages.
    pub(crate) name: String,
    /// What it covers.
    pub(crate) scopes: Scopes,
    /// Level, overrides and timestamp mode.
    pub(crate) requirements: Requirements,
    /// The trust roots (`ca:NAME`, `signingAuthority:NAME`) by name.
    pub(crate) roots: Vec<String>,
    /// TSA roots (DER) of its `tsa:` stores.
    pub(crate) tsa_certs: Vec<Vec<u8>>,
    /// Trusted identities (non-empty).
    pub(crate) identities: Vec<Identity>,
}

/// An imported trust policy.
#[derive(Debug, Clone)]
pub(crate) struct TrustPolicy {
    /// Its statements.
    pub(crate) statements: Vec<Statement>,
}

impl TrustPolicy {
    /// The statement for `repository` (`registry/repository`): the one
    /// naming it, else the `*` one.
    pub(crate) fn statement_for(&self, repository: &str) -> Option<&Statement> {
        self.statements
            .iter()
            .find(|s| matches!(&s.scopes, Scopes::Repositories(r) if r.iter().any(|r| r == repository)))
            .or_else(|| self.statements.iter().find(|s| s.scopes == Scopes::Any))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDocument {
    version: String,
    trust_policies: Vec<RawStatement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawStatement {
    name: String,
    registry_scopes: Vec<String>,
    signature_verification: RawVerification,
    #[serde(default)]
    trust_stores: Vec<String>,
    #[serde(default)]
    trusted_identities: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawVerification {
    level: String,
    #[serde(default)]
    r#override: std::collections::BTreeMap<String, Action>,
    #[serde(default)]
    verify_timestamp: Option<VerifyTimestamp>,
}

/// Subject attributes `x509.subject` identities may name, with their OIDs.
const ATTRIBUTES: &[(&str, &str)] = &[
    ("C", "2.5.4.6"),
    ("ST", "2.5.4.8"),
    ("S", "2.5.4.8"),
    ("L", "2.5.4.7"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("CN", "2.5.4.3"),
    ("SERIALNUMBER", "2.5.4.5"),
];

/// Reads `policy_file` and the stores it names under `store_dir`. Errors
/// name the file and the statement.
pub(crate) fn import(
    policy_file: &str,
    store_dir: &str,
) -> Result<(Vec<NotationRoot>, TrustPolicy), String> {
    let text = std::fs::read(policy_file).map_err(|e| format!("cannot read {policy_file}: {e}"))?;
    let doc: RawDocument = serde_json::from_slice(&text)
        .map_err(|e| format!("{policy_file} is not a Notation trust policy: {e}"))?;
    if doc.version != "1.0" {
        return Err(format!(
            "{policy_file}: version `{}` is not supported (1.0 is)",
            doc.version
        ));
    }
    if doc.trust_policies.is_empty() {
        return Err(format!("{policy_file}: trustPolicies is empty"));
    }
    let mut roots: Vec<NotationRoot> = Vec::new();
    let mut statements: Vec<Statement> = Vec::new();
    let mut seen_scopes: Vec<String> = Vec::new();
    for (i, raw) in doc.trust_policies.iter().enumerate() {
        let at = format!("{policy_file}: trustPolicies[{i}] (`{}`)", raw.name);
        if raw.name.is_empty() || statements.iter().any(|s| s.name == raw.name) {
            return Err(format!("{at}: the name is empty or used twice"));
        }
        let scopes = if raw.registry_scopes.iter().any(|s| s == "*") {
            if raw.registry_scopes.len() != 1 {
                return Err(format!("{at}: registryScopes `*` must stand alone"));
            }
            Scopes::Any
        } else {
            if raw.registry_scopes.is_empty() {
                return Err(format!("{at}: registryScopes is empty"));
            }
            let mut repos = Vec::new();
            for scope in &raw.registry_scopes {
                let repo = canonical_scope(scope).map_err(|m| format!("{at}: {m}"))?;
                repos.push(repo);
            }
            Scopes::Repositories(repos)
        };
        let scope_keys: Vec<String> = match &scopes {
            Scopes::Any => vec!["*".into()],
            Scopes::Repositories(r) => r.clone(),
        };
        for key in scope_keys {
            if seen_scopes.contains(&key) {
                return Err(format!("{at}: registry scope `{key}` is in two statements"));
            }
            seen_scopes.push(key);
        }
        let level = match raw.signature_verification.level.as_str() {
            "strict" => VerificationLevel::Strict,
            "permissive" => VerificationLevel::Permissive,
            "audit" => VerificationLevel::Audit,
            "skip" => {
                return Err(format!(
                    "{at}: level `skip` admits unsigned images; write a `static` rule for them instead"
                ));
            }
            other => return Err(format!("{at}: unknown level `{other}`")),
        };
        let mut actions = Actions::for_level(level);
        for (check, action) in &raw.signature_verification.r#override {
            match (check.as_str(), action) {
                ("authenticity", Action::Skip) => {
                    return Err(format!("{at}: authenticity cannot be skipped"));
                }
                ("authenticity", a) => actions.authenticity = *a,
                ("authenticTimestamp", a) => actions.authentic_timestamp = *a,
                ("expiry", a) => actions.expiry = *a,
                ("revocation", a) => actions.revocation = *a,
                (other, _) => {
                    return Err(format!("{at}: `{other}` cannot be overridden"));
                }
            }
        }
        let mut stmt_roots = Vec::new();
        let mut tsa_certs = Vec::new();
        for store in &raw.trust_stores {
            let (kind, name) = store
                .split_once(':')
                .ok_or_else(|| format!("{at}: trust store `{store}` is not TYPE:NAME"))?;
            if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
                return Err(format!(
                    "{at}: trust store name `{name}` is not a plain name"
                ));
            }
            let store_type = match kind {
                "ca" => Some(StoreType::Ca),
                "signingAuthority" => Some(StoreType::SigningAuthority),
                "tsa" => None,
                other => return Err(format!("{at}: unknown trust store type `{other}`")),
            };
            let dir = Path::new(store_dir).join("x509").join(kind).join(name);
            let certs = read_store(&dir).map_err(|m| format!("{at}: {m}"))?;
            match store_type {
                None => tsa_certs.extend(certs),
                Some(store) => {
                    let root_name = format!("{kind}:{name}");
                    if roots.iter().all(|r| r.name != root_name) {
                        roots.push(NotationRoot {
                            name: root_name.clone(),
                            store,
                            certs,
                            tsa_certs: Vec::new(),
                        });
                    }
                    stmt_roots.push(root_name);
                }
            }
        }
        if stmt_roots.is_empty() {
            return Err(format!(
                "{at}: no `ca:` or `signingAuthority:` trust store (level {level:?} verifies authenticity)"
            ));
        }
        let identities = raw
            .trusted_identities
            .iter()
            .map(|i| parse_identity(i).map_err(|m| format!("{at}: {m}")))
            .collect::<Result<Vec<_>, _>>()?;
        if identities.is_empty() {
            return Err(format!("{at}: trustedIdentities is empty"));
        }
        if identities.len() > 1 && identities.contains(&Identity::Any) {
            return Err(format!("{at}: trusted identity `*` must stand alone"));
        }
        statements.push(Statement {
            name: raw.name.clone(),
            scopes,
            requirements: Requirements {
                actions,
                verify_timestamp: raw
                    .signature_verification
                    .verify_timestamp
                    .unwrap_or_default(),
                audit: level == VerificationLevel::Audit,
            },
            roots: stmt_roots,
            tsa_certs,
            identities,
        });
    }
    Ok((roots, TrustPolicy { statements }))
}

/// `registry/repository` in canonical form (host as image references have
/// it), without tag or digest.
fn canonical_scope(scope: &str) -> Result<String, String> {
    if scope.contains(['@', '*']) || scope.rsplit('/').next().is_some_and(|l| l.contains(':')) {
        return Err(format!(
            "registry scope `{scope}` must be a repository (`registry/repository`) or `*`"
        ));
    }
    let (host, path) = scope
        .split_once('/')
        .ok_or_else(|| format!("registry scope `{scope}` has no registry"))?;
    if path.is_empty() {
        return Err(format!("registry scope `{scope}` has no repository"));
    }
    Ok(format!("{}/{path}", crate::reference::canonical_host(host)))
}

/// `*` or `x509.subject: A=v, B=w`.
fn parse_identity(text: &str) -> Result<Identity, String> {
    if text == "*" {
        return Ok(Identity::Any);
    }
    let Some(dn) = text.strip_prefix("x509.subject:") else {
        return Err(format!(
            "trusted identity `{text}` is neither `*` nor `x509.subject: …`"
        ));
    };
    let mut attrs = Vec::new();
    for part in dn.split(',') {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` in `{text}` is not ATTRIBUTE=value"))?;
        let key = key.trim().to_ascii_uppercase();
        let oid = ATTRIBUTES
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, oid)| *oid)
            .ok_or_else(|| format!("subject attribute `{key}` in `{text}` is not supported"))?;
        attrs.push((oid, value.trim().to_string()));
    }
    if !["2.5.4.6", "2.5.4.8", "2.5.4.10"]
        .iter()
        .all(|needed| attrs.iter().any(|(oid, _)| oid == needed))
    {
        return Err(format!(
            "trusted identity `{text}` must name at least C, ST and O (as Notation requires)"
        ));
    }
    Ok(Identity::Subject(attrs))
}

/// Every certificate (PEM bundles or DER) in a trust store directory.
fn read_store(dir: &Path) -> Result<Vec<Vec<u8>>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("trust store {}: {e}", dir.display()))?;
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut certs = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let parsed = if bytes.starts_with(b"-----") || bytes.iter().all(|b| b.is_ascii()) {
            super::cosign::parse_cert_bundle(&String::from_utf8_lossy(&bytes))
        } else {
            <x509_cert::Certificate as der::Decode>::from_der(&bytes)
                .map(|_| vec![bytes.clone()])
                .map_err(|e| format!("invalid certificate: {e}"))
        };
        certs.extend(parsed.map_err(|m| format!("{}: {m}", file.display()))?);
    }
    if certs.is_empty() {
        return Err(format!(
            "trust store {} holds no certificate",
            dir.display()
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse_and_need_the_core_attributes() {
        assert_eq!(parse_identity("*").unwrap(), Identity::Any);
        let Identity::Subject(attrs) =
            parse_identity("x509.subject: C=US, ST=WA, O=acme-rockets.io, CN=signer").unwrap()
        else {
            panic!("not a subject");
        };
        assert_eq!(attrs.len(), 4);
        assert!(parse_identity("x509.subject: CN=signer").is_err());
        assert!(parse_identity("subject: C=US").is_err());
    }

    #[test]
    fn scopes_are_repositories_with_canonical_hosts() {
        assert_eq!(
            canonical_scope("Registry.Example.com/app").unwrap(),
            "registry.example.com/app"
        );
        assert_eq!(
            canonical_scope("index.docker.io/library/nginx").unwrap(),
            "docker.io/library/nginx"
        );
        assert!(canonical_scope("example.com/app:v1").is_err());
        assert!(canonical_scope("example.com/*").is_err());
        assert!(canonical_scope("app").is_err());
    }
}
