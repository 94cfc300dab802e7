//! The cases where an admission is allowed without asking the verifiers.
//!
//! The rule every shortcut here follows: **a shortcut may skip work, never
//! the verdict.** Whatever is allowed without asking the verifiers must be
//! something that is already admitted, for exactly the images that will run.
//! So each shortcut is written down by what it may skip and what it can
//! never allow:
//!
//! * **deleting:** an UPDATE on an object whose `oldObject` has a
//!   `deletionTimestamp`, that adds no image `oldObject` lacks (removing a
//!   finalizer, changing labels or status). It may skip re-verifying images
//!   that are already in the object, so a finalizer can always be removed
//!   (Connaisseur users had Pods stuck Terminating). It never allows a new
//!   image: the API server accepts spec changes on an object held by a
//!   finalizer, so a changed image is verified like in any UPDATE. It holds
//!   in every configuration (it is not `automaticUnchangedApproval`).
//! * **unchanged:** an UPDATE whose images all already appear in
//!   `oldObject` (`automaticUnchangedApproval`). It may skip images that are
//!   already part of the object; it never allows an image the object did not
//!   hold. New Pods of a controller are verified on their own CREATE.
//! * **namespace:** the namespace is out of scope by its
//!   `portcullis.dev/webhook` label (`namespacedValidation`), which only a
//!   cluster administrator can set. A label that can't be read validates.
//!
//! There is no owner-based shortcut ("child approval"): an owner's template
//! says nothing about whether it was ever verified under enforcement (it may
//! be being deleted, relaxed by `podsOnly` or detection mode, in an exempt
//! namespace, older than the webhook or than the current policy). A child is
//! verified like any object, which costs a verdict-cache hit when its owner's
//! images were verified: the owner was pinned to digests, and verdicts are
//! cached by digest under the current policy and trust roots.
//!
//! Every lookup failure means "verify normally": these shortcuts can only
//! save work, never allow on error.

use std::collections::BTreeSet;

use super::extract::{self, Extraction};
use super::review::AdmissionRequest;
use crate::cluster::Cluster;
use crate::config::{NAMESPACE_LABEL, NamespaceMode};

/// Why verification was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// The object is being deleted and the UPDATE adds no image.
    Deleting,
    /// No image changed.
    Unchanged,
    /// The namespace is out of scope.
    Namespace,
}

impl Skip {
    /// The audit/metrics label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Skip::Deleting => "deleting",
            Skip::Unchanged => "unchanged",
            Skip::Namespace => "namespace",
        }
    }
}

/// Whether `oldObject` is being deleted.
pub(crate) fn is_deleting(request: &AdmissionRequest) -> bool {
    request.operation == "UPDATE"
        && request
            .old_object
            .as_ref()
            .and_then(|o| o.pointer("/metadata/deletionTimestamp"))
            .is_some_and(|t| !t.is_null())
}

/// Whether an UPDATE leaves the pod spec exactly as it was (both present
/// and equal). Used where the new pod spec cannot be read: an object being
/// deleted whose spec did not change is let go even if it is malformed.
pub(crate) fn pod_spec_unchanged(request: &AdmissionRequest) -> bool {
    if request.operation != "UPDATE" {
        return false;
    }
    let (Some(new), Some(old)) = (&request.object, &request.old_object) else {
        return false;
    };
    let pointer = extract::pod_spec_pointer(&request.kind.kind);
    new.pointer(pointer).is_some() && new.pointer(pointer) == old.pointer(pointer)
}

/// Whether an UPDATE introduces no image that `oldObject` lacks.
pub(crate) fn is_unchanged(request: &AdmissionRequest, extraction: &Extraction) -> bool {
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
pub(crate) async fn namespace_out_of_scope(
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn request(op: &str, object: Value, old: Option<Value>) -> AdmissionRequest {
        serde_json::from_value(json!({
            "uid": "u", "kind": {"kind": "Pod"}, "operation": op, "object": object, "oldObject": old
        }))
        .unwrap()
    }

    fn pod(images: &[&str]) -> Value {
        json!({"metadata": {}, "spec": {"containers": images.iter().map(|i| json!({"image": i})).collect::<Vec<_>>()}})
    }

    fn deleting(mut object: Value) -> Value {
        object["metadata"]["deletionTimestamp"] = json!("2026-11-24T00:00:00Z");
        object
    }

    #[test]
    fn deleting_and_unchanged() {
        let old = deleting(pod(&["a:1"]));
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
    fn a_new_image_volume_is_a_change() {
        let mut new = pod(&["a:1"]);
        new["spec"]["volumes"] = json!([{"name": "v", "image": {"reference": "evil:1"}}]);
        let r = request("UPDATE", new, Some(deleting(pod(&["a:1"]))));
        let ex = extract::extract("Pod", r.object.as_ref().unwrap()).unwrap();
        assert!(!is_unchanged(&r, &ex));
    }

    #[test]
    fn pod_spec_unchanged_compares_the_spec_only() {
        let mut old = deleting(pod(&["a:1"]));
        old["spec"]["containers"][0]["image"] = json!(5);
        let mut new = old.clone();
        new["metadata"]["finalizers"] = json!([]);
        assert!(pod_spec_unchanged(&request(
            "UPDATE",
            new.clone(),
            Some(old.clone())
        )));
        new["spec"]["containers"][0]["image"] = json!(6);
        assert!(!pod_spec_unchanged(&request(
            "UPDATE",
            new,
            Some(old.clone())
        )));
        assert!(!pod_spec_unchanged(&request("CREATE", old.clone(), None)));
        assert!(!pod_spec_unchanged(&request(
            "UPDATE",
            json!({"metadata": {}}),
            Some(json!({"metadata": {}}))
        )));
    }
}
