//! Answering one AdmissionReview: parse, extract images, verify them all in
//! parallel under one deadline, and build the response.

pub mod extract;
pub(crate) mod outcome;
pub(crate) mod pipeline;
pub mod review;
pub(crate) mod shortcuts;

use std::time::Duration;

use base64::Engine as _;
use portcullis_proto::{Reason, VerifyRequest, VerifyResponse};
use tokio::time::Instant;

use crate::pool::{VerifierPool, gateway_denial};
use extract::{ContainerKind, Extraction};
use outcome::Verdicts;
use review::{
    API_VERSION, AdmissionRequest, AdmissionResponse, AdmissionReview, AdmissionReviewResponse,
    KIND, Status,
};

/// Which webhook endpoint is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WebhookKind {
    /// `/mutate`: allow or deny, plus a patch pinning tags to digests.
    Mutate,
    /// `/validate`: allow or deny only.
    Validate,
}

impl WebhookKind {
    /// The endpoint's name for metrics and logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            WebhookKind::Mutate => "mutate",
            WebhookKind::Validate => "validate",
        }
    }
}

/// Limits that apply to every admission.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdmissionLimits {
    /// The whole admission's time budget.
    pub(crate) deadline: Duration,
    /// The most distinct images one admission may name.
    pub(crate) max_images: usize,
}

/// The request is not a usable AdmissionReview: answered with HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReview {
    /// The body is not JSON of the right shape.
    #[error("malformed AdmissionReview: {0}")]
    Malformed(String),
    /// Not `admission.k8s.io/v1` `AdmissionReview`.
    #[error("unsupported review type {api_version}/{kind}: expected {API_VERSION}/{KIND}")]
    WrongType {
        /// The apiVersion given.
        api_version: String,
        /// The kind given.
        kind: String,
    },
    /// No `request`.
    #[error("malformed AdmissionReview: it has no `request`")]
    NoRequest,
}

/// Parses a review body.
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest, BadReview> {
    let review: AdmissionReview =
        serde_json::from_slice(body).map_err(|e| BadReview::Malformed(e.to_string()))?;
    if review.api_version != API_VERSION || review.kind != KIND {
        return Err(BadReview::WrongType {
            api_version: review.api_version,
            kind: review.kind,
        });
    }
    review.request.ok_or(BadReview::NoRequest)
}

/// The verdicts of an object's images: each distinct image is verified in
/// parallel, or denied at once when there are more than the limit allows
/// (the distinct images are counted in linear time, before anything else).
pub(crate) async fn judge(
    extraction: &Extraction,
    request: &AdmissionRequest,
    pool: &VerifierPool,
    limits: AdmissionLimits,
    deadline: Instant,
) -> Verdicts {
    let images = extraction.unique_images();
    if images.len() > limits.max_images {
        let message = format!(
            "the object names {} distinct images; at most {} are verified per admission",
            images.len(),
            limits.max_images
        );
        // One line per image up to the first one past the limit: a review
        // naming thousands gets a bounded answer and audit record.
        return Verdicts::new(
            images
                .iter()
                .take(limits.max_images.saturating_add(1))
                .map(|(i, _)| {
                    (
                        i.to_string(),
                        gateway_denial(Reason::TooManyImages, &message),
                    )
                })
                .collect(),
        );
    }
    verify_all(&images, request, extraction, pool, deadline).await
}

/// The base64 JSON Patch pinning verified images, if any.
pub(crate) fn patch_for(verdicts: &Verdicts, extraction: &Extraction) -> Option<String> {
    let patch = verdicts.pin_patch(&extraction.sites);
    (!patch.is_empty()).then(|| {
        let json = serde_json::to_vec(&patch).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    })
}

/// Verifies every distinct image in parallel, one call each.
async fn verify_all(
    images: &[(&str, ContainerKind)],
    request: &AdmissionRequest,
    extraction: &Extraction,
    pool: &VerifierPool,
    deadline: Instant,
) -> Verdicts {
    let namespace = request.namespace.clone().unwrap_or_default();
    let calls = images.iter().map(|(image, container_kind)| {
        let call = VerifyRequest {
            image: image.to_string(),
            namespace: namespace.clone(),
            request_uid: request.uid.clone(),
            image_pull_secrets: extraction.pull_secrets.clone(),
            container_kind: container_kind.field().to_string(),
        };
        async move {
            // The pool honours the deadline too; this outer bound makes
            // sure nothing can outlive it.
            let response =
                match tokio::time::timeout_at(deadline, pool.verify(call, deadline)).await {
                    Ok(r) => r,
                    Err(_) => {
                        gateway_denial(Reason::Timeout, "no verdict before the admission deadline")
                    }
                };
            (image.to_string(), response)
        }
    });
    Verdicts::new(futures::future::join_all(calls).await)
}

/// An allowing response, with an optional patch (and `patchType` only with
/// it) and warnings.
pub(crate) fn allow_response(
    uid: String,
    patch: Option<String>,
    warnings: Vec<String>,
) -> AdmissionReviewResponse {
    wrap(AdmissionResponse {
        uid,
        allowed: true,
        status: None,
        patch_type: patch.as_ref().map(|_| "JSONPatch"),
        patch,
        warnings,
    })
}

/// A denying response; `lines` become the message, one per line.
pub(crate) fn deny_response(uid: String, lines: &[String]) -> AdmissionReviewResponse {
    wrap(AdmissionResponse {
        uid,
        allowed: false,
        status: Some(Status {
            code: 403,
            message: lines.join("\n"),
        }),
        patch_type: None,
        patch: None,
        warnings: Vec::new(),
    })
}

fn wrap(response: AdmissionResponse) -> AdmissionReviewResponse {
    AdmissionReviewResponse {
        api_version: API_VERSION,
        kind: KIND,
        response,
    }
}

/// The verdict of one image, for logs.
pub(crate) fn verdict_summary(image: &str, r: &VerifyResponse) -> String {
    if r.is_allowed() {
        format!("{image}: allowed ({})", r.reason_text())
    } else {
        format!("{image}: denied ({})", r.reason_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors() {
        assert!(matches!(parse_review(b"{"), Err(BadReview::Malformed(_))));
        assert!(parse_review(b"[]").is_err());
        assert!(matches!(
            parse_review(b"\"x\""),
            Err(BadReview::Malformed(_))
        ));
        assert!(matches!(
            parse_review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#),
            Err(BadReview::NoRequest)
        ));
        assert!(matches!(
            parse_review(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"}}}"#),
            Err(BadReview::WrongType { .. })
        ));
        assert!(matches!(
            parse_review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x"}}"#),
            Err(BadReview::Malformed(_))
        ));
    }
}
