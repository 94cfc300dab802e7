//! Combining per-image verdicts into the admission decision: allow or deny,
//! the deny message, and the JSON Patch that pins tags to digests.

use std::collections::HashMap;

use portcullis_proto::VerifyResponse;
use serde::Serialize;

use super::extract::ImageSite;

/// One JSON Patch operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PatchOp {
    /// Always `replace`.
    pub(crate) op: &'static str,
    /// The JSON Pointer of the image field.
    pub(crate) path: String,
    /// The pinned reference.
    pub(crate) value: String,
}

/// The verdicts of an admission's distinct images, in first-seen order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Verdicts {
    by_image: Vec<(String, VerifyResponse)>,
}

impl Verdicts {
    /// Wraps `(image, response)` pairs.
    pub(crate) fn new(by_image: Vec<(String, VerifyResponse)>) -> Self {
        Verdicts { by_image }
    }

    /// The pairs, in first-seen order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(String, VerifyResponse)> {
        self.by_image.iter()
    }

    /// True when every image is allowed (and vacuously for none).
    pub(crate) fn all_allowed(&self) -> bool {
        self.by_image.iter().all(|(_, r)| r.is_allowed())
    }

    /// One line per denied image, starting with the image as written:
    /// `IMAGE: REASON (detail): message`.
    pub(crate) fn deny_lines(&self) -> Vec<String> {
        self.by_image
            .iter()
            .filter(|(_, r)| !r.is_allowed())
            .map(|(image, r)| format!("{image}: {}: {}", r.reason_text(), r.message))
            .collect()
    }

    /// One line per warning of an allowed image (an `audit`-level rule's
    /// findings), starting with the image: `IMAGE: warning`.
    pub(crate) fn warning_lines(&self) -> Vec<String> {
        self.by_image
            .iter()
            .filter(|(_, r)| r.is_allowed())
            .flat_map(|(image, r)| r.warnings.iter().map(move |w| format!("{image}: {w}")))
            .collect()
    }

    /// The patch pinning each allowed, verified, tag-only image to its
    /// digest, at every site where it appears. Images already given by
    /// digest, static allows (no digest) and `validateOnly` rules get none.
    pub(crate) fn pin_patch(&self, sites: &[ImageSite]) -> Vec<PatchOp> {
        let lookup: HashMap<&str, &VerifyResponse> =
            self.by_image.iter().map(|(i, r)| (i.as_str(), r)).collect();
        sites
            .iter()
            .filter_map(|site| {
                let r = lookup.get(site.image.as_str())?;
                let pin = r.is_allowed()
                    && r.pin
                    && !r.digest.is_empty()
                    && !r.reference.is_empty()
                    && !site.image.contains('@');
                pin.then(|| PatchOp {
                    op: "replace",
                    path: site.pointer.clone(),
                    value: r.reference.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::extract::ContainerKind;
    use portcullis_proto::{Reason, Verdict};

    fn allowed(digest: &str, reference: &str, pin: bool) -> VerifyResponse {
        VerifyResponse {
            verdict: Verdict::Allowed as i32,
            digest: digest.into(),
            reference: reference.into(),
            pin,
            reason: Reason::Verified as i32,
            ..Default::default()
        }
    }

    fn site(image: &str, pointer: &str) -> ImageSite {
        ImageSite {
            image: image.into(),
            pointer: pointer.into(),
            container_kind: ContainerKind::Container,
        }
    }

    #[test]
    fn pins_only_verified_tag_only_images() {
        let d = "sha256:aaaa";
        let v = Verdicts::new(vec![
            (
                "a:1".into(),
                allowed(d, "docker.io/library/a:1@sha256:aaaa", true),
            ),
            (
                "b@sha256:aaaa".into(),
                allowed(d, "docker.io/library/b@sha256:aaaa", true),
            ),
            ("c:1".into(), allowed("", "", true)),
            (
                "d:1".into(),
                allowed(d, "docker.io/library/d:1@sha256:aaaa", false),
            ),
        ]);
        let sites = [
            site("a:1", "/spec/containers/0/image"),
            site("b@sha256:aaaa", "/spec/containers/1/image"),
            site("c:1", "/spec/containers/2/image"),
            site("d:1", "/spec/containers/3/image"),
            site("a:1", "/spec/initContainers/0/image"),
        ];
        let patch = v.pin_patch(&sites);
        assert_eq!(
            patch,
            vec![
                PatchOp {
                    op: "replace",
                    path: "/spec/containers/0/image".into(),
                    value: "docker.io/library/a:1@sha256:aaaa".into()
                },
                PatchOp {
                    op: "replace",
                    path: "/spec/initContainers/0/image".into(),
                    value: "docker.io/library/a:1@sha256:aaaa".into()
                },
            ]
        );
    }

    #[test]
    fn deny_lines_start_with_image() {
        let v = Verdicts::new(vec![
            ("ok:1".into(), allowed("", "", true)),
            (
                "bad:1".into(),
                VerifyResponse {
                    verdict: Verdict::Denied as i32,
                    reason: Reason::ThresholdNotMet as i32,
                    reason_detail: "1 of 2".into(),
                    message: "only alice signed".into(),
                    ..Default::default()
                },
            ),
        ]);
        assert!(!v.all_allowed());
        assert_eq!(
            v.deny_lines(),
            vec!["bad:1: THRESHOLD_NOT_MET (1 of 2): only alice signed".to_string()]
        );
    }
}
