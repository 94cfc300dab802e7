//! Connaisseur's Kubernetes Secret key references: a cosign trust root's
//! `key: k8s://NAMESPACE/SECRET` names a Secret whose `cosign.pub` entry is
//! the PEM public key (cosign's own format for keys it stores in a
//! cluster).
//!
//! `serve` resolves them at start-up through the Kubernetes API (the same
//! `--kube-api-url`/in-cluster access as pull secrets; the verifier's role
//! then needs `get` on those Secrets), substituting the PEM before the
//! config is parsed. So the key is validated like any PEM, and it is part of
//! the validator's config entry and therefore of every rule fingerprint: a
//! rotated Secret misses every cached verdict at once. A missing Secret or
//! entry is a start-up error naming the file and the field. While serving,
//! `secret_keys` reads them again every `--secret-refresh-secs` and swaps in
//! an engine built with the new keys.

use base64::Engine as _;
use serde_yaml_ng::Value;

use portcullis_shared::config_error::ConfigError;

/// The prefix of a Secret reference.
pub(crate) const PREFIX: &str = "k8s://";

/// Whether `text` may hold Secret references (a cheap pre-check).
pub fn mentions_secrets(text: &str) -> bool {
    text.contains(PREFIX)
}

/// Replaces every `k8s://NAMESPACE/SECRET` trust-root key in the config
/// `text` with the Secret's `cosign.pub`, read with `client`.
pub async fn resolve(text: &str, file: &str, client: &kube::Client) -> Result<String, ConfigError> {
    let err = |field: String, message: String| ConfigError::new(file, &field, message);
    let mut doc: Value =
        serde_yaml_ng::from_str(text).map_err(|e| err(String::new(), format!("not YAML: {e}")))?;
    let Some(validators) = doc.get_mut("validators").and_then(Value::as_sequence_mut) else {
        return Ok(text.to_string());
    };
    for (i, validator) in validators.iter_mut().enumerate() {
        let Some(roots) = validator
            .get_mut("trustRoots")
            .and_then(Value::as_sequence_mut)
        else {
            continue;
        };
        for (j, root) in roots.iter_mut().enumerate() {
            let field = format!("validators[{i}].trustRoots[{j}].key");
            let Some(reference) = root
                .get("key")
                .and_then(Value::as_str)
                .and_then(|k| k.strip_prefix(PREFIX))
                .map(str::to_string)
            else {
                continue;
            };
            let (namespace, name) = reference
                .split_once('/')
                .filter(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains('/'))
                .ok_or_else(|| {
                    err(
                        field.clone(),
                        format!("`{PREFIX}{reference}` is not k8s://NAMESPACE/SECRET"),
                    )
                })?;
            let pem = read_key(client, namespace, name)
                .await
                .map_err(|m| err(field.clone(), m))?;
            if let Some(map) = root.as_mapping_mut() {
                map.insert(Value::String("key".into()), Value::String(pem));
            }
        }
    }
    serde_yaml_ng::to_string(&doc).map_err(|e| err(String::new(), e.to_string()))
}

/// The `cosign.pub` entry of Secret `namespace/name`.
async fn read_key(client: &kube::Client, namespace: &str, name: &str) -> Result<String, String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), namespace);
    let secret = match api.get_opt(name).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(format!("Secret {namespace}/{name} does not exist")),
        Err(e) => return Err(format!("cannot read Secret {namespace}/{name}: {e}")),
    };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get("cosign.pub"))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get("cosign.pub"))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| format!("Secret {namespace}/{name} has no `cosign.pub` entry"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("Secret {namespace}/{name}: `cosign.pub` is not text"))?;
    // Some tools store the PEM base64-encoded once more.
    if !text.trim_start().starts_with("-----") {
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(text.trim())
            && let Ok(inner) = String::from_utf8(decoded)
            && inner.trim_start().starts_with("-----")
        {
            return Ok(inner);
        }
        return Err(format!(
            "Secret {namespace}/{name}: `cosign.pub` is not a PEM public key"
        ));
    }
    Ok(text)
}
