//! AdmissionReview v1 request and response types (the parts we read/write).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `admission.k8s.io/v1`.
pub(crate) const API_VERSION: &str = "admission.k8s.io/v1";
/// `AdmissionReview`.
pub(crate) const KIND: &str = "AdmissionReview";

/// An incoming AdmissionReview.
#[derive(Debug, Deserialize)]
pub(crate) struct AdmissionReview {
    /// Must be `admission.k8s.io/v1`.
    #[serde(rename = "apiVersion", default)]
    pub(crate) api_version: String,
    /// Must be `AdmissionReview`.
    #[serde(default)]
    pub(crate) kind: String,
    /// The request; a review without one is malformed.
    #[serde(default)]
    pub(crate) request: Option<AdmissionRequest>,
}

/// The `request` of an AdmissionReview.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Echoed in the response.
    pub uid: String,
    /// The kind of the object (for a subresource, of the parent object).
    pub kind: GroupVersionKind,
    /// The subresource, e.g. `ephemeralcontainers`.
    #[serde(default)]
    pub sub_resource: Option<String>,
    /// The object's name (may be empty for generated names).
    #[serde(default)]
    pub name: Option<String>,
    /// The namespace ("" or absent for cluster-scoped objects).
    #[serde(default)]
    pub namespace: Option<String>,
    /// CREATE, UPDATE, DELETE or CONNECT.
    #[serde(default)]
    pub operation: String,
    /// The new object (absent on DELETE).
    #[serde(default)]
    pub object: Option<Value>,
    /// The old object (on UPDATE and DELETE).
    #[serde(default)]
    pub old_object: Option<Value>,
    /// Whether the request is a dry run.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// A group/version/kind triple.
#[derive(Debug, Deserialize)]
pub struct GroupVersionKind {
    /// The API group ("" for core).
    #[serde(default)]
    pub group: String,
    /// The version.
    #[serde(default)]
    pub version: String,
    /// The kind, e.g. `Deployment`.
    pub kind: String,
}

/// An outgoing AdmissionReview.
#[derive(Debug, Serialize)]
pub(crate) struct AdmissionReviewResponse {
    /// `admission.k8s.io/v1`.
    #[serde(rename = "apiVersion")]
    pub(crate) api_version: &'static str,
    /// `AdmissionReview`.
    pub(crate) kind: &'static str,
    /// The response.
    pub(crate) response: AdmissionResponse,
}

/// The `response` of an AdmissionReview.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AdmissionResponse {
    /// The request's uid.
    pub(crate) uid: String,
    /// The decision.
    pub(crate) allowed: bool,
    /// Why a request was denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<Status>,
    /// Always `JSONPatch`, and only ever together with `patch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) patch_type: Option<&'static str>,
    /// Base64 of the JSON Patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) patch: Option<String>,
    /// Warnings shown to the client (kubectl prints them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) warnings: Vec<String>,
}

/// A Kubernetes `Status` for denials.
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    /// The HTTP-like code, 403 for denials.
    pub(crate) code: u16,
    /// The message kubectl prints.
    pub(crate) message: String,
}
