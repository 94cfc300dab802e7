//! AdmissionReview v1 request builders and response readers.

use base64::Engine as _;
use serde_json::{Value, json};

/// A pod spec with the given containers, init containers and ephemeral
/// containers (images only).
pub fn pod_spec(containers: &[&str], init: &[&str], ephemeral: &[&str]) -> Value {
    let list = |images: &[&str], prefix: &str| -> Value {
        images
            .iter()
            .enumerate()
            .map(|(i, image)| json!({"name": format!("{prefix}{i}"), "image": image}))
            .collect()
    };
    let mut spec = json!({"containers": list(containers, "c")});
    if !init.is_empty() {
        spec["initContainers"] = list(init, "i");
    }
    if !ephemeral.is_empty() {
        spec["ephemeralContainers"] = list(ephemeral, "e");
    }
    spec
}

/// An AdmissionReview request under construction.
#[derive(Debug, Clone)]
pub struct Review {
    /// The whole review JSON.
    pub json: Value,
}

impl Review {
    /// A CREATE review of `object`, whose kind is `kind` in `group/version`.
    pub fn create(group: &str, version: &str, kind: &str, resource: &str, object: Value) -> Self {
        let uid = format!("uid-{:016x}", rand_u64());
        Review {
            json: json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": uid,
                    "kind": {"group": group, "version": version, "kind": kind},
                    "resource": {"group": group, "version": version, "resource": resource},
                    "requestKind": {"group": group, "version": version, "kind": kind},
                    "requestResource": {"group": group, "version": version, "resource": resource},
                    "name": object.pointer("/metadata/name").cloned().unwrap_or(json!("x")),
                    "namespace": "default",
                    "operation": "CREATE",
                    "userInfo": {"username": "tester", "groups": ["system:authenticated"]},
                    "object": object,
                    "oldObject": null,
                    "dryRun": false,
                    "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
                }
            }),
        }
    }

    /// A Pod review.
    pub fn pod(spec: Value) -> Self {
        Self::create(
            "",
            "v1",
            "Pod",
            "pods",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec}),
        )
    }

    /// A Deployment review with `spec.template.spec = spec`.
    pub fn deployment(spec: Value) -> Self {
        Self::create(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
                   "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "d"}},
                            "template": {"metadata": {"labels": {"app": "d"}}, "spec": spec}}}),
        )
    }

    /// The request uid.
    pub fn uid(&self) -> String {
        self.json["request"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Turns the review into an UPDATE with `old` as oldObject.
    pub fn update(mut self, old: Value) -> Self {
        self.json["request"]["operation"] = json!("UPDATE");
        self.json["request"]["oldObject"] = old;
        self
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// Reads `response.allowed`.
pub fn allowed(response: &Value) -> bool {
    response["response"]["allowed"]
        .as_bool()
        .expect("response.allowed")
}

/// Decodes `response.patch` (None when absent), checking `patchType`.
pub fn patch(response: &Value) -> Option<Value> {
    let r = &response["response"];
    match (r.get("patch"), r.get("patchType")) {
        (None, None) => None,
        (Some(p), Some(t)) => {
            assert_eq!(t, "JSONPatch");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(p.as_str().expect("patch string"))
                .expect("patch base64");
            Some(serde_json::from_slice(&bytes).expect("patch JSON"))
        }
        (p, t) => panic!("patch {p:?} and patchType {t:?} must come together"),
    }
}

/// Reads `response.status.message`.
pub fn message(response: &Value) -> String {
    response["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
