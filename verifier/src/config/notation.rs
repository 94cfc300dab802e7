//! The `notation` validator's config, in Connaisseur v3's names.
//!
//! ```yaml
//! - name: acme
//!   type: notation
//!   cert: "PEM CA bundle for the registry's TLS (optional)"
//!   auth: {username: u, password: p}        # or {dockerConfigJson: /path/config.json}
//!   insecureRegistries: ["127.0.0.1:5000"]  # plain HTTP, for local tests only
//!   trustRoots:
//!     - name: default
//!       cert: "PEM: one or more certificates (a root CA, or an intermediate)"
//!       tsCert: "PEM: the TSA root(s) for timestamp countersignatures (optional)"
//!       type: ca                            # or signingAuthority (default ca)
//! ```
//!
//! or, instead of `trustRoots`, a Notation trust policy and trust store as
//! the `notation` CLI keeps them ([`super::notation_policy`]):
//!
//! ```yaml
//!   trustPolicy:
//!     file: /etc/notation/trustpolicy.json
//!     trustStore: /etc/notation/truststore   # holds x509/{ca,signingAuthority,tsa}/NAME/*
//! ```
//!
//! Every certificate is parsed at load time; an error names the field.

use std::collections::HashMap;

use serde::Deserialize;

use super::cosign::{
    FieldError, RawAuth, docker_config_host, field, parse_auth, parse_cert_bundle,
};
use super::model::{RuleOptionsCheck, ValidatorKind};
pub(crate) use super::notation_policy::{Action, Actions, Identity, TrustPolicy};
use crate::policy::{RuleOptions, VerificationLevel, VerifyTimestamp};
use crate::registry::Credential;
use portcullis_shared::config_error::{ConfigError, deserialize_at};

/// The raw YAML shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawNotation {
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
    trust_roots: Option<Vec<RawRoot>>,
    #[serde(default)]
    trust_policy: Option<RawTrustPolicy>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRoot {
    name: String,
    cert: String,
    #[serde(default)]
    ts_cert: Option<String>,
    #[serde(default, rename = "type")]
    store: Option<StoreType>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTrustPolicy {
    file: String,
    trust_store: String,
}

/// The Notary Project's trust store types that hold signing trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum StoreType {
    /// Certificate authorities: trust `notary.x509` signatures.
    #[serde(rename = "ca")]
    Ca,
    /// Signing authorities: trust `notary.x509.signingAuthority`
    /// signatures.
    #[serde(rename = "signingAuthority")]
    SigningAuthority,
}

impl StoreType {
    /// The name the specifications use.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StoreType::Ca => "ca",
            StoreType::SigningAuthority => "signingAuthority",
        }
    }
}

/// A named trust root: certificates a signature's chain must contain.
#[derive(Debug, Clone)]
pub(crate) struct NotationRoot {
    /// The name rules refer to (for an imported trust policy, the trust
    /// store's `type:name`).
    pub(crate) name: String,
    /// Which signing scheme it trusts.
    pub(crate) store: StoreType,
    /// The trusted certificates (DER).
    pub(crate) certs: Vec<Vec<u8>>,
    /// TSA roots for timestamp countersignatures (DER); empty: none.
    pub(crate) tsa_certs: Vec<Vec<u8>>,
}

/// The validated notation config.
#[derive(Debug, Clone)]
pub(crate) struct NotationSpec {
    /// Trust roots by name, in config order (or the trust policy's stores).
    pub(crate) trust_roots: Vec<NotationRoot>,
    /// An imported Notation trust policy, if the roots came from one.
    pub(crate) trust_policy: Option<TrustPolicy>,
    /// Extra CA (PEM) for registry TLS.
    pub(crate) registry_ca: Option<String>,
    /// Credentials by exact host.
    pub(crate) credentials: HashMap<String, Credential>,
    /// `username`/`password` without `registries`, bound to the rules'
    /// literal hosts at load time.
    pub(crate) unbound_credential: Option<Credential>,
    /// Hosts reached over plain HTTP.
    pub(crate) insecure_registries: Vec<String>,
}

impl NotationSpec {
    /// The trust root called `name`.
    pub(crate) fn root(&self, name: &str) -> Option<&NotationRoot> {
        self.trust_roots.iter().find(|r| r.name == name)
    }

    /// The roots a rule selects: `trustRoot: "*"` all, a name that one, none
    /// the root named `default`.
    pub(crate) fn selected_roots(
        &self,
        options: &RuleOptions,
    ) -> Result<Vec<&NotationRoot>, String> {
        match options.trust_root.as_deref() {
            Some("*") => Ok(self.trust_roots.iter().collect()),
            Some(name) => self
                .root(name)
                .map(|r| vec![r])
                .ok_or_else(|| format!("no trust root named `{name}`")),
            None => self
                .root("default")
                .map(|r| vec![r])
                .ok_or_else(|| "no `trustRoot` given and no trust root is named `default`".into()),
        }
    }
}

/// What a rule (or a trust policy statement) asks of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Requirements {
    /// Per check: enforce, log or skip.
    pub(crate) actions: Actions,
    /// When timestamps are verified.
    pub(crate) verify_timestamp: VerifyTimestamp,
    /// Whether the level is `audit` (a failed authenticity check is then
    /// only logged, and the answer says so).
    pub(crate) audit: bool,
}

impl Requirements {
    /// From a rule's `verificationLevel` and `verifyTimestamp`.
    pub(crate) fn from_options(options: &RuleOptions) -> Self {
        let level = options.verification_level.unwrap_or_default();
        Requirements {
            actions: Actions::for_level(level),
            verify_timestamp: options.verify_timestamp.unwrap_or_default(),
            audit: level == VerificationLevel::Audit,
        }
    }
}

/// Parses the certificates of a PEM field.
fn certs(pem: &str, at: &str) -> Result<Vec<Vec<u8>>, FieldError> {
    parse_cert_bundle(pem).map_err(|m| field(at, m))
}

/// Validates the raw config.
pub(crate) fn validate(raw: RawNotation) -> Result<(String, NotationSpec), FieldError> {
    let (trust_roots, trust_policy) = match (&raw.trust_roots, &raw.trust_policy) {
        (Some(_), Some(_)) => {
            return Err(field(
                "trustPolicy",
                "give `trustRoots` or `trustPolicy`, not both",
            ));
        }
        (None, None) => return Err(field("trustRoots", "at least one trust root is required")),
        (None, Some(p)) => {
            let (roots, policy) = super::notation_policy::import(&p.file, &p.trust_store)
                .map_err(|m| field("trustPolicy", m))?;
            (roots, Some(policy))
        }
        (Some(raw_roots), None) => {
            if raw_roots.is_empty() {
                return Err(field("trustRoots", "at least one trust root is required"));
            }
            let mut roots: Vec<NotationRoot> = Vec::with_capacity(raw_roots.len());
            for (i, root) in raw_roots.iter().enumerate() {
                let at = format!("trustRoots[{i}]");
                if root.name.is_empty() || root.name == "*" {
                    return Err(field(
                        format!("{at}.name"),
                        "a trust root needs a name other than `*`",
                    ));
                }
                if roots.iter().any(|r| r.name == root.name) {
                    return Err(field(
                        format!("{at}.name"),
                        format!("duplicate trust root name `{}`", root.name),
                    ));
                }
                let tsa_certs = match &root.ts_cert {
                    Some(pem) => certs(pem, &format!("{at}.tsCert"))?,
                    None => Vec::new(),
                };
                roots.push(NotationRoot {
                    name: root.name.clone(),
                    store: root.store.unwrap_or(StoreType::Ca),
                    certs: certs(&root.cert, &format!("{at}.cert"))?,
                    tsa_certs,
                });
            }
            (roots, None)
        }
    };
    let (credentials, unbound_credential) = match &raw.auth {
        Some(auth) => parse_auth(auth)?,
        None => (HashMap::new(), None),
    };
    if let Some(cert) = &raw.cert {
        parse_cert_bundle(cert).map_err(|m| field("cert", m))?;
    }
    Ok((
        raw.name,
        NotationSpec {
            trust_roots,
            trust_policy,
            registry_ca: raw.cert,
            credentials,
            unbound_credential,
            insecure_registries: raw
                .insecure_registries
                .unwrap_or_default()
                .iter()
                .map(|h| docker_config_host(h))
                .collect(),
        },
    ))
}

/// Parses a `type: notation` entry (at `at` of `file`).
pub(crate) fn parse(
    value: serde_yaml_ng::Value,
    at: &str,
    file: &str,
) -> Result<(String, ValidatorKind), ConfigError> {
    let raw: RawNotation = deserialize_at(value, at, file)?;
    let (name, spec) =
        validate(raw).map_err(|(f, m)| ConfigError::new(file, &format!("{at}.{f}"), m))?;
    Ok((name, ValidatorKind::Notation(Box::new(spec))))
}

impl RuleOptionsCheck for NotationSpec {
    fn type_name(&self) -> &'static str {
        "notation"
    }

    fn options(&self) -> &'static [&'static str] {
        &[
            "trustRoot",
            "threshold",
            "required",
            "verificationLevel",
            "verifyTimestamp",
        ]
    }

    fn check_rule(&self, options: &RuleOptions) -> Result<(), (String, String)> {
        if self.trust_policy.is_some() {
            let set = [
                ("trustRoot", options.trust_root.is_some()),
                ("threshold", options.threshold.is_some()),
                ("required", options.required.is_some()),
                ("verificationLevel", options.verification_level.is_some()),
                ("verifyTimestamp", options.verify_timestamp.is_some()),
            ];
            if let Some((name, _)) = set.iter().find(|(_, present)| *present) {
                return Err((
                    name.to_string(),
                    "this validator's trust policy file decides trust stores, level and timestamps; rules routing to it take no options".into(),
                ));
            }
            return Ok(());
        }
        let selected = self
            .selected_roots(options)
            .map_err(|m| ("trustRoot".to_string(), m))?;
        let names: Vec<&str> = selected.iter().map(|r| r.name.as_str()).collect();
        super::cosign::check_required_and_threshold(&names, options)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, ValidatorKind, parse_str};

    /// A self-signed certificate in PEM, indented for a YAML block.
    fn cert_block(indent: usize) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["signer.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        cert.pem()
            .lines()
            .map(|l| format!("{}{l}\n", " ".repeat(indent)))
            .collect()
    }

    fn parse(text: &str) -> Result<crate::config::Config, ConfigError> {
        parse_str(text, "test.yaml")
    }

    /// The shapes Connaisseur documents for `type: notation` (its
    /// docs/validators/notation.md: the basic validator with one `default`
    /// root, and the Bitnami example routing `bitnami/*:*` with
    /// `with.trustRoot`), plus the options of its table.
    #[test]
    fn connaisseur_documented_shapes_load() {
        let pem = cert_block(8);
        let text = format!(
            "validators:\n\
             - name: mynotation\n  type: notation\n  trustRoots:\n    - name: default\n      cert: |\n{pem}\
             - name: bitnami_notation\n  type: notation\n  trustRoots:\n  - name: bitnami\n    cert: |\n{pem_b}\
             \x20\x20\x20\x20tsCert: |\n{pem_b}\
             \x20\x20auth:\n    dockerConfigJson: /dev/null\n\
             policy:\n\
             - pattern: \"docker.io/myrepo/*:*\"\n  validator: mynotation\n\
             - pattern: \"bitnami/*:*\"\n  validator: bitnami_notation\n  with:\n    trustRoot: bitnami\n    verificationLevel: permissive\n    verifyTimestamp: afterCertExpiry\n",
            pem_b = cert_block(6)
        );
        let text = text.replace(
            "dockerConfigJson: /dev/null",
            "username: u\n    password: p",
        );
        let config = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let ValidatorKind::Notation(spec) = &config.validators[1].kind else {
            panic!("not notation");
        };
        assert_eq!(spec.trust_roots[0].tsa_certs.len(), 1);
        // The unbound credential went to the rule's literal host only.
        assert!(
            spec.credentials.contains_key("docker.io"),
            "{:?}",
            spec.credentials.keys()
        );
    }

    #[test]
    fn errors_name_the_field() {
        let pem = cert_block(8);
        let base = format!(
            "validators:\n- name: n\n  type: notation\n  trustRoots:\n    - name: default\n      cert: |\n{pem}"
        );
        let cases = [
            (
                format!("{base}policy:\n- pattern: \"**\"\n  validator: n\n  with: {{trustRoot: nope}}\n"),
                "policy[0].with.trustRoot",
                "no trust root named `nope`",
            ),
            (
                format!("{base}policy:\n- pattern: \"**\"\n  validator: n\n  with: {{verificationLevel: skip}}\n"),
                "policy[0].with",
                "skip",
            ),
            (
                format!("{base}policy:\n- pattern: \"**\"\n  validator: n\n  with: {{threshold: 2}}\n"),
                "policy[0].with.threshold",
                "between 1 and",
            ),
            (
                format!("{base}policy:\n- pattern: \"**\"\n  validator: n\n  with: {{delegations: [x]}}\n"),
                "policy[0].with.delegations",
                "does not apply to a `notation` validator",
            ),
            (
                "validators:\n- name: n\n  type: notation\n  trustRoots:\n    - name: default\n      cert: nonsense\npolicy: []\n".to_string(),
                "validators[0].trustRoots[0].cert",
                "no CERTIFICATE block",
            ),
            (
                "validators:\n- name: n\n  type: notation\npolicy: []\n".to_string(),
                "validators[0].trustRoots",
                "at least one",
            ),
            (
                "validators:\n- name: n\n  type: notation\n  trustPolicy: {file: /nonexistent.json, trustStore: /x}\npolicy: []\n".to_string(),
                "validators[0].trustPolicy",
                "cannot read /nonexistent.json",
            ),
        ];
        for (text, field, needle) in cases {
            let e = parse(&text).expect_err(&text);
            assert!(e.field.starts_with(field), "{field}: {e}");
            assert!(e.to_string().contains(needle), "{needle}: {e}");
        }
    }
}
