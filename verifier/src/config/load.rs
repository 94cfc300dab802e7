//! Reading and validating the config file.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;
use serde_yaml_ng::Value;
use sha2::{Digest, Sha256};

use super::cosign;
use super::model::{Config, ValidatorConfig, ValidatorKind};
use super::notary;
use super::notation;
use super::static_rule;
use crate::policy::RuleOptions;
use crate::policy::{Pattern, Policy, Rule};

pub use portcullis_shared::config_error::ConfigError;
use portcullis_shared::config_error::deserialize_at;

/// A validator type's config parser: the entry at `at` of `file`, into
/// its name and settings.
type Parser = fn(Value, &str, &str) -> Result<(String, ValidatorKind), ConfigError>;

/// The validator types, by their `type:` name: one line per type.
const PARSERS: &[(&str, Parser)] = &[
    ("static", static_rule::parse),
    ("cosign", cosign::parse),
    ("notaryv1", notary::parse),
    ("notation", notation::parse),
];

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = portcullis_shared::config_error::read_file(path)?;
    parse_str(&text, &path.display().to_string())
}

/// Validates config text; `file` labels errors.
pub fn parse_str(text: &str, file: &str) -> Result<Config, ConfigError> {
    let err = |field: &str, message: String| ConfigError {
        file: file.to_string(),
        field: field.to_string(),
        message,
    };
    let raw: RawFile = deserialize_at(serde_yaml_ng::Deserializer::from_str(text), "", file)?;

    let mut validators = Vec::with_capacity(raw.validators.len());
    let mut names = HashSet::new();
    for (i, value) in raw.validators.into_iter().enumerate() {
        let at = format!("validators[{i}]");
        let validator = parse_validator(value, &at, file)?;
        if !names.insert(validator.name.clone()) {
            return Err(err(
                &format!("{at}.name"),
                format!("duplicate validator name `{}`", validator.name),
            ));
        }
        validators.push(validator);
    }

    let mut rules: Vec<Rule> = Vec::with_capacity(raw.policy.len());
    for (i, rule) in raw.policy.into_iter().enumerate() {
        let at = format!("policy[{i}]");
        let pattern = Pattern::parse(&rule.pattern)
            .map_err(|e| err(&format!("{at}.pattern"), e.to_string()))?;
        let validator_name = rule.validator.unwrap_or_else(|| "default".to_string());
        // Two rules whose patterns normalise alike: the same rule written
        // twice is kept once (as Connaisseur, which warns about identical
        // rules); different validators or options for the same images are
        // a real conflict.
        if let Some(earlier) = rules
            .iter()
            .find(|r| r.pattern.normalized() == pattern.normalized())
        {
            let options = rule.with.clone().unwrap_or_default();
            if earlier.validator == validator_name && earlier.options == options {
                tracing::warn!(
                    rule = %rule.pattern,
                    earlier = %earlier.pattern.written(),
                    normalized = %pattern.normalized(),
                    "{file}: {at}: the same rule as an earlier one; kept once"
                );
                continue;
            }
            return Err(err(
                &format!("{at}.pattern"),
                format!(
                    "pattern `{}` and the earlier `{}` both mean `{}` but name different validators or options",
                    rule.pattern,
                    earlier.pattern.written(),
                    pattern.normalized()
                ),
            ));
        }
        let Some(validator) = validators.iter().find(|v| v.name == validator_name) else {
            return Err(err(
                &format!("{at}.validator"),
                format!("no validator named `{validator_name}`"),
            ));
        };
        let options = rule.with.unwrap_or_default();
        check_options(&options, &validator.kind)
            .map_err(|(field, msg)| err(&format!("{at}.with.{field}"), msg))?;
        let fingerprint = rule_fingerprint(&pattern, &options, validator);
        rules.push(Rule {
            pattern,
            validator: validator_name,
            options,
            index: i,
            fingerprint,
        });
    }
    bind_credentials(&mut validators, &rules);
    let policy = Policy::new(rules).map_err(|e| err("policy", e.to_string()))?;
    Ok(Config { validators, policy })
}

/// Binds `auth.username/password` given without `registries` to the literal
/// (wildcard-free) registry hosts of the rules that use the validator, so
/// that credentials only ever go to the hosts they were written for.
fn bind_credentials(validators: &mut [ValidatorConfig], rules: &[Rule]) {
    for validator in validators.iter_mut() {
        let (credentials, unbound) = match &mut validator.kind {
            ValidatorKind::Cosign(spec) => (&mut spec.credentials, &spec.unbound_credential),
            ValidatorKind::Notation(spec) => (&mut spec.credentials, &spec.unbound_credential),
            _ => continue,
        };
        let Some(credential) = unbound.clone() else {
            continue;
        };
        for rule in rules.iter().filter(|r| r.validator == validator.name) {
            if let Some((host, _)) = rule.pattern.normalized().split_once('/')
                && !host.contains('*')
            {
                credentials
                    .entry(host.to_string())
                    .or_insert_with(|| credential.clone());
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    validators: Vec<Value>,
    policy: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    pattern: String,
    #[serde(default)]
    validator: Option<String>,
    #[serde(default)]
    with: Option<RuleOptions>,
}

fn parse_validator(value: Value, at: &str, file: &str) -> Result<ValidatorConfig, ConfigError> {
    let err = |field: String, message: String| ConfigError {
        file: file.to_string(),
        field,
        message,
    };
    let Value::Mapping(map) = &value else {
        return Err(err(at.to_string(), "expected a mapping".to_string()));
    };
    let type_name = match map.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err(err(format!("{at}.type"), "expected a string".to_string())),
        None => {
            return Err(err(
                format!("{at}.type"),
                "missing field `type`".to_string(),
            ));
        }
    };
    let fingerprint = value_fingerprint(&value);
    let Some((_, parse)) = PARSERS.iter().find(|(t, _)| *t == type_name) else {
        let supported: Vec<&str> = PARSERS.iter().map(|(t, _)| *t).collect();
        return Err(err(
            format!("{at}.type"),
            format!(
                "unknown validator type `{type_name}` (supported: {})",
                supported.join(", ")
            ),
        ));
    };
    let (name, kind) = parse(value, at, file)?;
    if name.is_empty() {
        return Err(err(format!("{at}.name"), "the name is empty".to_string()));
    }
    Ok(ValidatorConfig {
        name,
        kind,
        fingerprint,
    })
}

/// Rejects `with` options that the validator type does not use, then lets
/// the type check the rest. Returns the field and the message.
fn check_options(options: &RuleOptions, kind: &ValidatorKind) -> Result<(), (String, String)> {
    let set: Vec<&str> = [
        ("trustRoot", options.trust_root.is_some()),
        ("threshold", options.threshold.is_some()),
        ("required", options.required.is_some()),
        (
            "verifyInTransparencyLog",
            options.verify_in_transparency_log.is_some(),
        ),
        ("attestations", options.attestations.is_some()),
        ("sigstorePolicy", options.sigstore_policy.is_some()),
        ("delegations", options.delegations.is_some()),
        ("verificationLevel", options.verification_level.is_some()),
        ("verifyTimestamp", options.verify_timestamp.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    let spec = kind.spec();
    if let Some(name) = set.iter().find(|name| !spec.options().contains(name)) {
        return Err((
            name.to_string(),
            format!(
                "option `{name}` does not apply to a `{}` validator",
                spec.type_name()
            ),
        ));
    }
    spec.check_rule(options)
}

/// SHA-256 of the canonical JSON (sorted keys) of a YAML value.
fn value_fingerprint(value: &Value) -> [u8; 32] {
    // YAML values with non-string keys cannot become JSON; fall back to the
    // YAML text, which is still a deterministic function of the value.
    let bytes = serde_json::to_value(value)
        .and_then(|v| serde_json::to_vec(&v))
        .unwrap_or_else(|_| {
            serde_yaml_ng::to_string(value)
                .unwrap_or_default()
                .into_bytes()
        });
    Sha256::digest(&bytes).into()
}

fn rule_fingerprint(
    pattern: &Pattern,
    options: &RuleOptions,
    validator: &ValidatorConfig,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"portcullis.rule.v1\0");
    h.update(pattern.normalized().as_bytes());
    h.update(b"\0");
    h.update(serde_json::to_vec(options).unwrap_or_default());
    h.update(b"\0");
    h.update(validator.name.as_bytes());
    h.update(b"\0");
    h.update(validator.fingerprint);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_str(text, "test.yaml")
    }

    const GOOD: &str = r#"
validators:
  - name: allow
    type: static
    approve: true
  - name: deny
    type: static
    approve: false
policy:
  - pattern: "docker.io/library/*:*"
    validator: allow
    with: {mode: mutate}
  - pattern: "**"
    validator: deny
"#;

    /// Attack: editing an attestation condition (loosening or tightening
    /// it) must never reuse a verdict, or kept evidence, made under the old
    /// text: both are keyed by the rule fingerprint, which covers it.
    #[test]
    fn a_changed_condition_changes_the_rule_fingerprint() {
        let with = |condition: &str| {
            format!(
                "validators:\n  - name: signed\n    type: cosign\n    trustRoots:\n      - name: alice\n        key: |\n          -----BEGIN PUBLIC KEY-----\n          MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEtR5kwrDK22SyCu7WMF8tCjVgeORA\n          S2PWacRcBN/VQdVK4PVk1w4pMWlz9AHQthDGl+W2k3elHkPbR+gNkK2PCA==\n          -----END PUBLIC KEY-----\npolicy:\n  - pattern: 'registry.example.com/**'\n    validator: signed\n    with:\n      trustRoot: alice\n      attestations:\n        - predicateType: https://slsa.dev/provenance/v1\n          conditions: [{condition:?}]\n"
            )
        };
        let fingerprint =
            |condition: &str| parse(&with(condition)).unwrap().policy.rules()[0].fingerprint;
        let strict = fingerprint("predicate.builder.id == 'https://ci'");
        assert_eq!(strict, fingerprint("predicate.builder.id == 'https://ci'"));
        assert_ne!(strict, fingerprint("predicate.builder.id != ''"));
        assert_ne!(strict, fingerprint("true"));
    }

    #[test]
    fn parses_good_config() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.validators.len(), 2);
        assert_eq!(c.policy.rules().len(), 2);
    }

    fn expect_err(text: &str, field: &str, needle: &str) {
        let e = parse(text).unwrap_err();
        assert_eq!(e.file, "test.yaml");
        assert_eq!(e.field, field, "{e}");
        assert!(e.message.contains(needle), "{e}");
    }

    #[test]
    fn unknown_top_level_key() {
        expect_err(
            &format!("{GOOD}\nextra: 1\n"),
            "extra",
            "unknown field `extra`",
        );
    }

    #[test]
    fn unknown_validator_key() {
        expect_err(
            "validators:\n  - name: a\n    type: static\n    approve: true\n    aprove: false\npolicy: []\n",
            "validators[0].aprove",
            "unknown field `aprove`",
        );
    }

    #[test]
    fn wrong_value_type() {
        expect_err(
            "validators:\n  - name: a\n    type: static\n    approve: yes please\npolicy: []\n",
            "validators[0].approve",
            "",
        );
    }

    #[test]
    fn unknown_type() {
        expect_err(
            "validators:\n  - name: a\n    type: magic\npolicy: []\n",
            "validators[0].type",
            "unknown validator type `magic`",
        );
    }

    #[test]
    fn duplicate_names() {
        expect_err(
            "validators:\n  - {name: a, type: static, approve: true}\n  - {name: a, type: static, approve: false}\npolicy: []\n",
            "validators[1].name",
            "duplicate validator name `a`",
        );
    }

    #[test]
    fn unknown_validator_reference() {
        expect_err(
            "validators:\n  - {name: a, type: static, approve: true}\npolicy:\n  - {pattern: '**', validator: b}\n",
            "policy[0].validator",
            "no validator named `b`",
        );
        // No validator named: Connaisseur's default is the validator `default`.
        expect_err(
            "validators:\n  - {name: a, type: static, approve: true}\npolicy:\n  - {pattern: '**'}\n",
            "policy[0].validator",
            "no validator named `default`",
        );
    }

    #[test]
    fn unknown_with_option() {
        expect_err(
            "validators:\n  - {name: a, type: static, approve: true}\npolicy:\n  - {pattern: '**', validator: a, with: {treshold: 2}}\n",
            "policy[0].with.treshold",
            "unknown field `treshold`",
        );
        expect_err(
            "validators:\n  - {name: a, type: static, approve: true}\npolicy:\n  - {pattern: '**', validator: a, with: {threshold: 2}}\n",
            "policy[0].with.threshold",
            "does not apply to a `static` validator",
        );
        expect_err(
            "validators:\n  - {name: a, type: static, approve: true}\npolicy:\n  - {pattern: '**', validator: a, with: {mode: sometimes}}\n",
            "policy[0].with.mode",
            "unknown variant",
        );
    }

    #[test]
    fn duplicate_pattern() {
        // The same rule twice (after normalisation) is kept once.
        let c = parse(
            "validators:\n  - {name: a, type: static, approve: true}\npolicy:\n  - {pattern: 'nginx:*', validator: a}\n  - {pattern: 'docker.io/library/nginx:*', validator: a}\n",
        )
        .unwrap();
        assert_eq!(c.policy.rules().len(), 1);
        // The same images routed to different validators is a conflict.
        expect_err(
            "validators:\n  - {name: a, type: static, approve: true}\n  - {name: b, type: static, approve: false}\npolicy:\n  - {pattern: 'nginx:*', validator: a}\n  - {pattern: 'docker.io/library/nginx:*', validator: b}\n",
            "policy[1].pattern",
            "name different validators or options",
        );
    }

    /// The image policy of Connaisseur's basics page: its `*:*` catch-all
    /// next to an explicit `docker.io/library/*:*` rule, and `with.key`,
    /// the older spelling of `with.trustRoot`.
    #[test]
    fn connaisseur_catch_all_and_with_key() {
        let c = parse(
            "validators:\n  - {name: default, type: static, approve: false}\n  - {name: allow, type: static, approve: true}\n  - name: signed\n    type: cosign\n    trustRoots:\n      - name: alice\n        key: |\n          -----BEGIN PUBLIC KEY-----\n          MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEtR5kwrDK22SyCu7WMF8tCjVgeORA\n          S2PWacRcBN/VQdVK4PVk1w4pMWlz9AHQthDGl+W2k3elHkPbR+gNkK2PCA==\n          -----END PUBLIC KEY-----\npolicy:\n  - pattern: '*:*'\n  - pattern: 'docker.io/library/*:*'\n    validator: allow\n  - pattern: 'docker.io/myrepo/*:*'\n    validator: signed\n    with: {key: alice}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.policy.rules().len(), 3);
        let signed = c
            .policy
            .rules()
            .iter()
            .find(|r| r.validator == "signed")
            .unwrap();
        assert_eq!(signed.options.trust_root.as_deref(), Some("alice"));
        // The catch-all matches images on any registry.
        let m = c
            .policy
            .matching_rule("quay.io/org/app:1")
            .expect("matches");
        assert_eq!(m.validator, "default");
        let m = c
            .policy
            .matching_rule("docker.io/library/nginx:1.27")
            .expect("matches");
        assert_eq!(m.validator, "allow");
    }

    #[test]
    fn bad_yaml() {
        let e = parse("validators: [\n").unwrap_err();
        assert_eq!(e.file, "test.yaml");
        assert!(!e.message.is_empty());
        let e = parse("").unwrap_err();
        assert!(e.to_string().contains("test.yaml"));
    }

    #[test]
    fn missing_file_names_file() {
        let e = load_file(Path::new("/nonexistent/p.yaml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/p.yaml"));
    }

    #[test]
    fn fingerprints_change_with_config() {
        let a = parse(GOOD).unwrap();
        let b = parse(&GOOD.replace("approve: false", "approve: true")).unwrap();
        let fp = |c: &Config, p: &str| {
            c.policy
                .rules()
                .iter()
                .find(|r| r.pattern.written() == p)
                .unwrap()
                .fingerprint
        };
        assert_eq!(
            fp(&a, "docker.io/library/*:*"),
            fp(&b, "docker.io/library/*:*")
        );
        assert_ne!(fp(&a, "**"), fp(&b, "**"));
        let c = parse(&GOOD.replace("with: {mode: mutate}", "with: {mode: validateOnly}")).unwrap();
        assert_ne!(
            fp(&a, "docker.io/library/*:*"),
            fp(&c, "docker.io/library/*:*")
        );
    }
}
