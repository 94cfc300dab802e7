//! Finding an image's Notation signatures: OCI 1.1 referrers with artifact
//! type `application/vnd.cncf.notary.signature`, through the referrers API
//! or, for registries without it, the referrers tag schema (`sha256-<hex>`),
//! each a manifest with exactly one layer, the envelope.
//!
//! The image manifest is fetched alongside (its media type and size are what
//! a signature's payload must name). A referrer counts only if its
//! `subject` is this image: the fallback index is an ordinary tag that
//! anyone with push rights can rewrite. Any transient registry failure
//! fails the whole discovery, so a flaky registry is never mistaken for an
//! unsigned image. Requests per cold verification on a registry without
//! the referrers API: the manifest, the referrers API (404, remembered per
//! host), the fallback index, then per signature its manifest and its
//! envelope blob.

use futures::future::join_all;
use oci_client::manifest::{OciImageIndex, OciImageManifest};

use super::envelope::{self, EnvelopeError, SignerInfo};
use crate::registry::{Fetched, RegistryClient, RegistryError};

/// The artifact type of Notation signatures.
pub(crate) const SIGNATURE_ARTIFACT: &str = "application/vnd.cncf.notary.signature";
/// The most signatures read per image (Connaisseur's
/// `MaxSignatureAttempts`), against registries that attach thousands.
pub(crate) const MAX_SIGNATURES: usize = 10;

/// What discovery found.
#[derive(Debug)]
pub(crate) struct Discovered {
    /// The image manifest.
    pub(crate) manifest: Fetched,
    /// Each signature: where it came from, and its envelope or why it
    /// could not be read.
    pub(crate) signatures: Vec<(String, Result<SignerInfo, EnvelopeError>)>,
}

/// Looks up `digest` in `registry/repo` and its signatures; `None` if the
/// image does not exist.
pub(crate) async fn discover(
    client: &RegistryClient,
    registry: &str,
    repo: &str,
    digest: &str,
) -> Result<Option<Discovered>, RegistryError> {
    let (manifest, referrers) = tokio::join!(
        client.get_manifest(registry, repo, digest),
        client.get_referrers(registry, repo, digest),
    );
    let Some(manifest) = manifest? else {
        return Ok(None);
    };
    let mut candidates: Vec<String> = Vec::new();
    if let Some(index) = referrers? {
        match serde_json::from_slice::<OciImageIndex>(&index) {
            Ok(index) => {
                // Declared signatures first, then entries that do not say
                // (their manifest tells).
                let (declared, unknown): (Vec<_>, Vec<_>) = index
                    .manifests
                    .into_iter()
                    .filter(|m| {
                        m.artifact_type
                            .as_deref()
                            .is_none_or(|t| t == SIGNATURE_ARTIFACT)
                    })
                    .partition(|m| m.artifact_type.is_some());
                candidates.extend(
                    declared
                        .into_iter()
                        .chain(unknown)
                        .map(|m| m.digest)
                        .take(MAX_SIGNATURES),
                );
            }
            Err(e) => {
                tracing::warn!(registry, repo, digest, error = %e, "unreadable referrers index; ignored")
            }
        }
    }
    let manifests = join_all(
        candidates
            .iter()
            .map(|d| client.get_manifest(registry, repo, d)),
    )
    .await;
    let mut layers: Vec<(String, String, String)> = Vec::new();
    let mut signatures = Vec::new();
    for (referrer, fetched) in candidates.iter().zip(manifests) {
        let Some(fetched) = fetched? else {
            continue;
        };
        let Ok(m) = serde_json::from_slice::<OciImageManifest>(&fetched.bytes) else {
            tracing::warn!(
                registry,
                repo,
                referrer,
                "unreadable referrer manifest; ignored"
            );
            continue;
        };
        if m.subject.as_ref().map(|s| s.digest.as_str()) != Some(digest) {
            tracing::warn!(
                registry,
                repo,
                referrer,
                "referrer's subject is not this image; ignored"
            );
            continue;
        }
        let is_signature = match m.artifact_type.as_deref() {
            Some(t) => t == SIGNATURE_ARTIFACT,
            // The image-spec 1.0 form: the artifact type in the config.
            None => m.config.media_type == SIGNATURE_ARTIFACT,
        };
        if !is_signature {
            continue;
        }
        let label = format!("signature {referrer}");
        match m.layers.as_slice() {
            [layer] => layers.push((label, layer.digest.clone(), layer.media_type.clone())),
            other => signatures.push((
                label,
                Err(EnvelopeError::Malformed {
                    media_type: "signature manifest",
                    reason: format!("{} layers, not exactly one envelope", other.len()),
                }),
            )),
        }
    }
    let blobs = join_all(
        layers
            .iter()
            .map(|(_, d, _)| client.get_blob(registry, repo, d)),
    )
    .await;
    for ((label, _, media_type), blob) in layers.into_iter().zip(blobs) {
        let parsed = match blob {
            Ok(bytes) => envelope::parse(&media_type, &bytes),
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => Err(EnvelopeError::Malformed {
                media_type: "envelope blob",
                reason: e.to_string(),
            }),
        };
        signatures.push((label, parsed));
    }
    Ok(Some(Discovered {
        manifest,
        signatures,
    }))
}
