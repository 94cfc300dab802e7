//! The cases where an admission is allowed without verifying its images:
//!
//! * **deleting:** an UPDATE on an object whose `oldObject` has a
//!   `deletionTimestamp`, so that finalizers can be removed (Connaisseur
//!   users had Pods stuck Terminating);
//! * **unchanged:** an UPDATE whose images all already appear in
//!   `oldObject` (no image is new);
//! * **child:** a Pod or ReplicaSet whose controlling owner (matched by
//!   `ownerReferences` name *and* UID, read from the API) has a pod template
//!   with the same images;
//! * **namespace:** the namespace is out of scope by its
//!   `portcullis.dev/webhook` label.
//!
//! Every lookup failure means "verify normally": these shortcuts can only
//! save work, never allow on error.

use std::collections::BTreeSet;

use serde_json::Value;

use super::extract::{self, Extraction};
use super::review::AdmissionRequest;
use crate::cluster::Cluster;
use crate::config::{NAMESPACE_LABEL, NamespaceMode};

/// Why verification was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The object is being deleted.
    Deleting,
    /// No image changed.
    Unchanged,
    /// The owner holds the same images.
    Child,
    /// The namespace is out of scope.
    Namespace,
}

impl Skip {
    /// The audit/metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Skip::Deleting => "deleting",
            Skip::Unchanged => "unchanged",
            Skip::Child => "child",
            Skip::Namespace => "namespace",
        }
    }
}

/// Whether `oldObject` is being deleted.
pub fn is_deleting(request: &AdmissionRequest) -> bool {
    request.operation == "UPDATE"
        && request
            .old_object
            .as_ref()
            .and_then(|o| o.pointer("/metadata/deletionTimestamp"))
            .is_some_and(|t| !t.is_null())
}

/// Whether an UPDATE introduces no image that `oldObject` lacks.
pub fn is_unchanged(request: &AdmissionRequest, extraction: &Extraction) -> bool {
    if request.operation != "UPDATE" {
        return false;
    }
    let Some(old) = &request.old_object else {
        return false;
    };
    let Ok(old) = extract::extract(&request.kind.kind, old) else {
        return false;
    };
    let before: BTreeSet<&str> = old.sites.iter().map(|s| s.image.as_str()).collect();
    extraction
        .sites
        .iter()
        .all(|s| before.contains(s.image.as_str()))
}

/// Whether the namespace is out of scope, by its label.
pub async fn namespace_out_of_scope(
    cluster: Option<&Cluster>,
    namespace: &str,
    mode: NamespaceMode,
) -> bool {
    if namespace.is_empty() {
        return false;
    }
    let Some(cluster) = cluster else {
        return false;
    };
    match cluster.namespace_labels(namespace).await {
        Ok(labels) => {
            let label = labels.get(NAMESPACE_LABEL).map(String::as_str);
            match mode {
                NamespaceMode::Ignore => label == Some("ignore"),
                NamespaceMode::Validate => label != Some("validate"),
            }
        }
        Err(e) => {
            // Fail closed: validate.
            tracing::warn!(namespace, error = %e, "cannot read namespace labels; validating");
            false
        }
    }
}

/// Whether a Pod or ReplicaSet is approved by its controlling owner.
pub async fn approved_by_owner(
    cluster: Option<&Cluster>,
    request: &AdmissionRequest,
    extraction: &Extraction,
) -> bool {
    let kind = request.kind.kind.as_str();
    if !matches!(kind, "Pod" | "ReplicaSet") || extraction.sites.is_empty() {
        return false;
    }
    let (Some(cluster), Some(object)) = (cluster, &request.object) else {
        return false;
    };
    let Some(owner) = controller_reference(object) else {
        return false;
    };
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let fetched = match cluster
        .get(
            &owner.api_version,
            &owner.kind,
            Some(namespace),
            &owner.name,
        )
        .await
    {
        Ok(o) => o,
        Err(e) => {
            tracing::info!(owner = %owner.name, kind = %owner.kind, error = %e, "cannot read the owner; verifying");
            return false;
        }
    };
    if fetched.metadata.uid.as_deref() != Some(owner.uid.as_str()) {
        tracing::warn!(owner = %owner.name, "owner UID differs from the ownerReference; verifying");
        return false;
    }
    let owner_object =
        serde_json::json!({"spec": fetched.data.get("spec").cloned().unwrap_or(Value::Null)});
    let Ok(owner_images) = extract::extract(&owner.kind, &owner_object) else {
        return false;
    };
    let theirs: BTreeSet<&str> = owner_images
        .sites
        .iter()
        .map(|s| s.image.as_str())
        .collect();
    let ours: BTreeSet<&str> = extraction.sites.iter().map(|s| s.image.as_str()).collect();
    !theirs.is_empty() && theirs == ours
}

/// A controlling owner reference.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnerRef {
    api_version: String,
    kind: String,
    name: String,
    uid: String,
}

fn controller_reference(object: &Value) -> Option<OwnerRef> {
    let refs = object.pointer("/metadata/ownerReferences")?.as_array()?;
    refs.iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| {
            Some(OwnerRef {
                api_version: r.get("apiVersion")?.as_str()?.to_string(),
                kind: r.get("kind")?.as_str()?.to_string(),
                name: r.get("name")?.as_str()?.to_string(),
                uid: r.get("uid")?.as_str()?.to_string(),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(op: &str, object: Value, old: Option<Value>) -> AdmissionRequest {
        serde_json::from_value(json!({
            "uid": "u", "kind": {"kind": "Pod"}, "operation": op, "object": object, "oldObject": old
        }))
        .unwrap()
    }

    fn pod(images: &[&str]) -> Value {
        json!({"metadata": {}, "spec": {"containers": images.iter().map(|i| json!({"image": i})).collect::<Vec<_>>()}})
    }

    #[test]
    fn deleting_and_unchanged() {
        let mut old = pod(&["a:1"]);
        old["metadata"]["deletionTimestamp"] = json!("2026-11-24T00:00:00Z");
        assert!(is_deleting(&request("UPDATE", pod(&["a:1"]), Some(old))));
        assert!(!is_deleting(&request(
            "UPDATE",
            pod(&["a:1"]),
            Some(pod(&["a:1"]))
        )));
        assert!(!is_deleting(&request("CREATE", pod(&["a:1"]), None)));

        let r = request("UPDATE", pod(&["a:1", "b:1"]), Some(pod(&["b:1", "a:1"])));
        let ex = extract::extract("Pod", r.object.as_ref().unwrap()).unwrap();
        assert!(is_unchanged(&r, &ex));
        let r = request("UPDATE", pod(&["a:1", "c:1"]), Some(pod(&["a:1"])));
        let ex = extract::extract("Pod", r.object.as_ref().unwrap()).unwrap();
        assert!(!is_unchanged(&r, &ex));
        let r = request("CREATE", pod(&["a:1"]), None);
        let ex = extract::extract("Pod", r.object.as_ref().unwrap()).unwrap();
        assert!(!is_unchanged(&r, &ex));
    }

    #[test]
    fn controller_reference_only() {
        let o = json!({"metadata": {"ownerReferences": [
            {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "1"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "2", "controller": true}
        ]}});
        assert_eq!(
            controller_reference(&o),
            Some(OwnerRef {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "rs".into(),
                uid: "2".into()
            })
        );
        assert_eq!(controller_reference(&json!({"metadata": {}})), None);
    }
}
