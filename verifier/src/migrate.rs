//! `portcullis-verifier migrate-connaisseur VALUES.yaml`: a Connaisseur
//! Helm values file (or its `application` block alone) turned into the
//! verifier's config and the gateway's config, with a note wherever the
//! meaning changes.
//!
//! What carries over as written: validators and policy (the same shape,
//! Connaisseur v3's names), the features that are gateway modes, and
//! alerting (the same receivers). What is rewritten or dropped, each with a
//! note: `with.key` (→ `trustRoot`), `with.verifySCT` (always checked here),
//! `with.threshold: 0` (unset), `auth.secretName` and `k8s://` keys (Kubernetes
//! Secrets: mount and reference the file, or paste the PEM), the cache and
//! logging features. Patterns are kept; each rule's note says what its
//! anchored meaning here no longer covers that Connaisseur's substring match
//! did.

use serde_yaml_ng::{Mapping, Value};

/// The migration's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Migration {
    /// The verifier config (YAML).
    pub verifier: String,
    /// The gateway config (YAML).
    pub gateway: String,
    /// Every place where the meaning changes, one line each.
    pub notes: Vec<String>,
    /// Why the migrated verifier config does not load yet, if it does not.
    pub load_error: Option<String>,
}

/// Why a values file cannot be migrated at all.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Not YAML, or not a mapping with validators and a policy.
    #[error("{0}")]
    Input(String),
}

fn key(k: &str) -> Value {
    Value::String(k.to_string())
}

fn get<'a>(m: &'a Mapping, k: &str) -> Option<&'a Value> {
    m.get(key(k))
}

/// Migrates the values text; `file` names it in messages.
pub fn migrate(text: &str, file: &str) -> Result<Migration, MigrateError> {
    let doc: Value = serde_yaml_ng::from_str(text)
        .map_err(|e| MigrateError::Input(format!("{file}: not YAML: {e}")))?;
    let top = doc
        .as_mapping()
        .ok_or_else(|| MigrateError::Input(format!("{file}: not a mapping")))?;
    let app = match get(top, "application").and_then(Value::as_mapping) {
        Some(app) => app,
        None => top,
    };
    let validators = get(app, "validators")
        .and_then(Value::as_sequence)
        .ok_or_else(|| MigrateError::Input(format!("{file}: no application.validators list")))?;
    let policy = get(app, "policy")
        .and_then(Value::as_sequence)
        .ok_or_else(|| MigrateError::Input(format!("{file}: no application.policy list")))?;
    let mut notes = Vec::new();
    let validators: Vec<Value> = validators
        .iter()
        .enumerate()
        .map(|(i, v)| validator(i, v, &mut notes))
        .collect();
    let policy: Vec<Value> = policy
        .iter()
        .enumerate()
        .map(|(i, r)| rule(i, r, &mut notes))
        .collect();
    let mut verifier = Mapping::new();
    verifier.insert(key("validators"), Value::Sequence(validators));
    verifier.insert(key("policy"), Value::Sequence(policy));
    let verifier = serde_yaml_ng::to_string(&Value::Mapping(verifier))
        .map_err(|e| MigrateError::Input(e.to_string()))?;
    let gateway = gateway_config(app, &mut notes);
    let gateway = serde_yaml_ng::to_string(&Value::Mapping(gateway))
        .map_err(|e| MigrateError::Input(e.to_string()))?;
    let load_error = crate::config::parse_str(&verifier, "migrated verifier config")
        .err()
        .map(|e| e.to_string());
    Ok(Migration {
        verifier,
        gateway,
        notes,
        load_error,
    })
}

/// One validator: auth Secrets and `k8s://` keys become notes.
fn validator(i: usize, v: &Value, notes: &mut Vec<String>) -> Value {
    let Some(m) = v.as_mapping() else {
        return v.clone();
    };
    let mut m = m.clone();
    let name = get(&m, "name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let at = format!("validators[{i}] `{name}`");
    let kind = get(&m, "type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !["static", "cosign", "notaryv1", "notation"].contains(&kind.as_str()) {
        notes.push(format!(
            "{at}: type `{kind}` is not supported by Portcullis"
        ));
    }
    if kind == "notaryv1" && get(&m, "host").is_none() {
        notes.push(format!(
            "{at}: no `host`: Docker Hub's Notary (https://notary.docker.io), as in Connaisseur"
        ));
    }
    if let Some(Value::Mapping(auth)) = m.get_mut(key("auth")) {
        if let Some(secret) = auth.remove(key("secretName")) {
            notes.push(format!(
                "{at}: auth.secretName `{}` (a Kubernetes Secret) is not read here: mount its .dockerconfigjson into the verifier and set auth.dockerConfigJson to the file",
                secret.as_str().unwrap_or("?")
            ));
        }
        if auth.remove(key("k8sKeychain")).is_some() {
            notes.push(format!(
                "{at}: auth.k8sKeychain is not supported: workload pull secrets are read per admission instead (--pull-secrets)"
            ));
        }
        if auth.is_empty() {
            m.remove(key("auth"));
        }
    }
    if let Some(Value::Sequence(roots)) = get(&m, "trustRoots") {
        for (j, root) in roots.iter().enumerate() {
            if let Some(k) = root
                .as_mapping()
                .and_then(|r| get(r, "key"))
                .and_then(Value::as_str)
                && k.starts_with("k8s://")
            {
                notes.push(format!(
                    "{at}: trustRoots[{j}].key `{k}` (a Kubernetes Secret) is not read here: paste the Secret's cosign.pub PEM"
                ));
            }
        }
    }
    Value::Mapping(m)
}

/// One rule: `with` rewrites, and what the anchored pattern no longer
/// covers.
fn rule(i: usize, r: &Value, notes: &mut Vec<String>) -> Value {
    let Some(m) = r.as_mapping() else {
        return r.clone();
    };
    let mut m = m.clone();
    let pattern = get(&m, "pattern")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let at = format!("policy[{i}] `{pattern}`");
    let catch_all = !pattern.contains('/')
        && pattern.contains('*')
        && pattern.chars().all(|c| c == '*' || c == ':');
    if catch_all {
        notes.push(format!("{at}: a catch-all, any image (as in Connaisseur)"));
    } else if !pattern.is_empty() {
        let mut note = format!(
            "{at}: anchored here: it matches the whole reference, never a name that merely contains it (Connaisseur's substring match also took e.g. `evil.example/{pattern}`)"
        );
        if pattern.ends_with("/*:*") || pattern.ends_with("/*") {
            let base = pattern.trim_end_matches("*:*").trim_end_matches('*');
            note.push_str(&format!(
                "; `*` stays within one path component, so deeper repositories (`{base}a/b:1`) need a `{base}**` rule"
            ));
        }
        notes.push(note);
    }
    if let Some(Value::Mapping(with)) = m.get_mut(key("with")) {
        if let Some(k) = with.remove(key("key")) {
            with.insert(key("trustRoot"), k);
            notes.push(format!("{at}: with.key → with.trustRoot"));
        }
        if let Some(v) = with.remove(key("verifySCT")) {
            notes.push(format!(
                "{at}: with.verifySCT: {} dropped: keyless certificates' SCTs are always checked here",
                serde_yaml_ng::to_string(&v).unwrap_or_default().trim()
            ));
        }
        if get(with, "threshold").and_then(Value::as_u64) == Some(0) {
            with.remove(key("threshold"));
            notes.push(format!(
                "{at}: with.threshold: 0 (Connaisseur's unset) dropped"
            ));
        }
        if with.is_empty() {
            m.remove(key("with"));
        }
    }
    Value::Mapping(m)
}

/// The gateway config from `features` and `alerting`.
fn gateway_config(app: &Mapping, notes: &mut Vec<String>) -> Mapping {
    let mut out = Mapping::new();
    let features = get(app, "features").and_then(Value::as_mapping);
    let flag = |name: &str| features.and_then(|f| get(f, name)).and_then(Value::as_bool);
    if let Some(d) = flag("detectionMode") {
        out.insert(key("detectionMode"), Value::Bool(d));
    }
    if let Some(mode) = features
        .and_then(|f| get(f, "resourceValidationMode"))
        .and_then(Value::as_str)
    {
        out.insert(key("resourceValidationMode"), key(mode));
    }
    if let Some(ns) = features
        .and_then(|f| get(f, "namespacedValidation"))
        .and_then(Value::as_mapping)
    {
        let mode = get(ns, "mode").and_then(Value::as_str).unwrap_or("ignore");
        let enabled = get(ns, "enabled").and_then(Value::as_bool).unwrap_or(true);
        let mut m = Mapping::new();
        m.insert(key("enabled"), Value::Bool(enabled));
        m.insert(key("mode"), key(mode));
        out.insert(key("namespacedValidation"), Value::Mapping(m));
        notes.push(format!(
            "features.namespacedValidation: the namespace label is `{}` here (Connaisseur: `securesystemsengineering.connaisseur/webhook`); relabel the namespaces",
            "portcullis.dev/webhook"
        ));
    }
    for name in ["automaticChildApproval", "automaticUnchangedApproval"] {
        if let Some(on) = flag(name) {
            let mut m = Mapping::new();
            m.insert(key("enabled"), Value::Bool(on));
            out.insert(key(name), Value::Mapping(m));
        }
    }
    if flag("automaticChildApproval") == Some(true) {
        notes.push(
            "features.automaticChildApproval: accepted, skips nothing: a Pod or ReplicaSet is verified like any object (a verdict-cache hit when its owner was verified)".into(),
        );
    }
    if let Some(cache) = features
        .and_then(|f| get(f, "cache"))
        .and_then(Value::as_mapping)
    {
        if let Some(s) = get(cache, "expirySeconds").and_then(Value::as_u64) {
            notes.push(format!(
                "features.cache.expirySeconds: {s}: the verifier's --verdict-ttl-secs (default 600) and --tag-ttl-secs (30) play this role"
            ));
        }
        if get(cache, "cacheErrors").is_some() {
            notes.push(
                "features.cache.cacheErrors: transient failures are never cached here; definitive denials for --negative-ttl-secs (30)".into(),
            );
        }
    }
    if let Some(alerting) = get(app, "alerting") {
        out.insert(key("alerting"), alerting.clone());
        for category in ["admitRequest", "rejectRequest"] {
            let receivers = alerting
                .as_mapping()
                .and_then(|a| get(a, category))
                .and_then(Value::as_mapping)
                .and_then(|c| get(c, "receivers"))
                .and_then(Value::as_sequence);
            for (j, r) in receivers.into_iter().flatten().enumerate() {
                let t = r
                    .as_mapping()
                    .and_then(|r| get(r, "template"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !["slack", "opsgenie", "teams", "generic"].contains(&t) {
                    notes.push(format!(
                        "alerting.{category}.receivers[{j}].template `{t}`: not built in here (slack, opsgenie, teams, generic); give the path of a template file"
                    ));
                }
            }
        }
    }
    for name in ["logLevel", "logFormat"] {
        if get(app, name).is_some() {
            notes.push(format!(
                "{name}: set PORTCULLIS_LOG (e.g. `info`) on both binaries instead"
            ));
        }
    }
    out
}

/// The text printed: both configs with the notes as comments.
pub fn render(m: &Migration, file: &str) -> String {
    let mut out = format!("# Portcullis configuration migrated from {file} (Connaisseur)\n");
    for note in &m.notes {
        out.push_str(&format!("# NOTE {note}\n"));
    }
    if let Some(e) = &m.load_error {
        out.push_str(&format!("# DOES NOT LOAD YET: {e}\n"));
    }
    out.push_str("# --- verifier config: portcullis-verifier serve --config verifier.yaml\n");
    out.push_str(&m.verifier);
    out.push_str("---\n# --- gateway config: portcullis-gateway --config gateway.yaml\n");
    out.push_str(if m.gateway.trim() == "{}" {
        "{}\n"
    } else {
        &m.gateway
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of Connaisseur's chart `values.yaml` (our own copy of its
    /// structure: static allow/deny, a Notary v1 validator with a root key,
    /// the `*:*` catch-all, features and alerting).
    const CHART_SHAPE: &str = r#"
kubernetes:
  deployment: {replicasCount: 3}
application:
  validators:
    - {name: allow, type: static, approve: true}
    - {name: deny, type: static, approve: false}
    - name: dockerhub
      type: notaryv1
      trustRoots:
        - name: sse
          key: |
            -----BEGIN PUBLIC KEY-----
            MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEtR5kwrDK22SyCu7WMF8tCjVgeORA
            S2PWacRcBN/VQdVK4PVk1w4pMWlz9AHQthDGl+W2k3elHkPbR+gNkK2PCA==
            -----END PUBLIC KEY-----
      auth: {secretName: hub-creds}
  policy:
    - {pattern: "*:*", validator: deny}
    - pattern: "docker.io/securesystemsengineering/*:*"
      validator: dockerhub
      with: {key: sse, threshold: 0}
    - {pattern: "registry.k8s.io/*:*", validator: allow}
  features:
    automaticUnchangedApproval: false
    automaticChildApproval: true
    detectionMode: false
    namespacedValidation: {mode: ignore}
    resourceValidationMode: all
    cache: {expirySeconds: 30, cacheErrors: true}
  alerting:
    clusterIdentifier: prod
    rejectRequest:
      receivers:
        - {template: slack, receiverUrl: "https://hooks.example/x"}
        - {template: keybase, receiverUrl: "https://bots.example/y"}
  logLevel: info
"#;

    #[test]
    fn the_chart_shape_migrates_and_loads() {
        let m = migrate(CHART_SHAPE, "values.yaml").unwrap();
        assert_eq!(m.load_error, None, "{}", m.verifier);
        let config = crate::config::parse_str(&m.verifier, "v").unwrap();
        assert_eq!(config.policy.rules().len(), 3);
        let rule = config
            .policy
            .rules()
            .iter()
            .find(|r| r.validator == "dockerhub")
            .unwrap();
        assert_eq!(rule.options.trust_root.as_deref(), Some("sse"));
        let gw: Value = serde_yaml_ng::from_str(&m.gateway).unwrap();
        assert_eq!(gw["detectionMode"], Value::Bool(false));
        assert_eq!(gw["namespacedValidation"]["enabled"], Value::Bool(true));
        assert_eq!(gw["automaticChildApproval"]["enabled"], Value::Bool(true));
        assert_eq!(gw["alerting"]["clusterIdentifier"], key("prod"));
        let notes = m.notes.join("\n");
        for needle in [
            "auth.secretName `hub-creds`",
            "with.key → with.trustRoot",
            "with.threshold: 0",
            "policy[0] `*:*`: a catch-all",
            "evil.example/docker.io/securesystemsengineering/*:*",
            "`docker.io/securesystemsengineering/**`",
            "portcullis.dev/webhook",
            "automaticChildApproval: accepted, skips nothing",
            "cacheErrors",
            "template `keybase`",
            "PORTCULLIS_LOG",
            "Docker Hub's Notary",
        ] {
            assert!(notes.contains(needle), "missing {needle:?} in:\n{notes}");
        }
    }

    #[test]
    fn an_application_block_alone_and_k8s_keys() {
        let text = "validators:\n  - name: c\n    type: cosign\n    trustRoots:\n      - {name: default, key: \"k8s://connaisseur/cosignkeys\"}\npolicy:\n  - {pattern: \"**\", validator: c, with: {verifySCT: false}}\n";
        let m = migrate(text, "block.yaml").unwrap();
        assert!(
            m.notes
                .iter()
                .any(|n| n.contains("k8s://connaisseur/cosignkeys"))
        );
        assert!(m.notes.iter().any(|n| n.contains("verifySCT")));
        assert!(
            m.load_error
                .as_deref()
                .is_some_and(|e| e.contains("trustRoots[0].key"))
        );
        assert!(render(&m, "block.yaml").contains("# DOES NOT LOAD YET"));
    }

    #[test]
    fn input_errors_name_the_file() {
        assert!(
            migrate("[", "x.yaml")
                .unwrap_err()
                .to_string()
                .contains("x.yaml")
        );
        assert!(
            migrate("a: 1\n", "x.yaml")
                .unwrap_err()
                .to_string()
                .contains("application.validators")
        );
    }
}
