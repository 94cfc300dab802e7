//! Builders for verifier config files (YAML), so tests state only what
//! matters to them.

use serde_json::{Value, json};

use crate::registry::Registry;
use crate::signer::pki_file;

/// A cosign validator named `name` for images in `registry`, with the test
/// PKI's Rekor, CT and Fulcio material and the given trust roots.
pub fn cosign_validator(
    name: &str,
    registry_host: &str,
    tls_ca_pem: Option<&str>,
    trust_roots: Value,
) -> Value {
    let mut v = json!({
        "name": name,
        "type": "cosign",
        "host": {
            "rekorPubkey": pki_file("rekor.pub"),
            "ctLogPubkey": pki_file("ctlog.pub"),
            "fulcioCert": pki_file("fulcio_chain.pem"),
        },
        "trustRoots": trust_roots,
    });
    match tls_ca_pem {
        Some(ca) => v["cert"] = json!(ca),
        None => v["insecureRegistries"] = json!([registry_host]),
    }
    v
}

/// `{name, key}` trust roots from PKI key names (`alice` → `alice.pub`).
pub fn key_roots(names: &[&str]) -> Value {
    names
        .iter()
        .map(|n| json!({"name": n, "key": pki_file(&format!("{n}.pub"))}))
        .collect()
}

/// A keyless trust root.
pub fn keyless_root(name: &str, issuer: &str, subject: &str) -> Value {
    json!({"name": name, "keyless": {"issuer": issuer, "subject": subject}})
}

/// A cosign validator for `registry` (plain or TLS).
pub fn cosign_for(registry: &Registry, trust_roots: Value) -> Value {
    let ca = registry
        .ca_path
        .as_ref()
        .map(|p| std::fs::read_to_string(p).expect("CA"));
    cosign_validator("signed", &registry.host(), ca.as_deref(), trust_roots)
}

/// A whole config: the validators and rules given, as YAML text.
pub fn config_yaml(validators: Vec<Value>, rules: Vec<Value>) -> String {
    let doc = json!({"validators": validators, "policy": rules});
    serde_yaml_ng::to_string(&doc).expect("yaml")
}

/// A rule.
pub fn rule(pattern: &str, validator: &str, with: Value) -> Value {
    if with.is_null() {
        json!({"pattern": pattern, "validator": validator})
    } else {
        json!({"pattern": pattern, "validator": validator, "with": with})
    }
}

/// A cosign validator for `registry` with key roots only and no
/// transparency-log keys (so the log is not required by default).
pub fn cosign_keys_only(registry: &Registry, trust_roots: Value) -> Value {
    let mut v = cosign_for(registry, trust_roots);
    if let Some(o) = v.as_object_mut() {
        o.remove("host");
    }
    v
}

/// A keyless trust root matched by anchored regexes.
pub fn keyless_root_regex(name: &str, issuer_regex: &str, subject_regex: &str) -> Value {
    json!({"name": name, "keyless": {"issuerRegex": issuer_regex, "subjectRegex": subject_regex}})
}
