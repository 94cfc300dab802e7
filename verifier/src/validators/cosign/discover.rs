//! Finding an image's signatures and attestations in its registry, in both
//! formats at once:
//!
//! 1. legacy cosign v2: the `sha256-<hex>.sig` (and, when a rule requires
//!    attestations, `sha256-<hex>.att`) manifests in the same repository;
//! 2. cosign v3: Sigstore bundles attached as OCI 1.1 referrers, through the
//!    referrers API or, for registries without it, the referrers tag schema
//!    (`sha256-<hex>`).
//!
//! The lookups run in parallel, then all blobs in parallel. A referrer
//! counts only if its manifest's `subject` is this image: the fallback index
//! is an ordinary tag that anyone with push rights can rewrite.
//!
//! Any transient registry failure fails the whole discovery, so a flaky
//! registry is never mistaken for an unsigned image.

use futures::future::join_all;
use oci_client::manifest::{OciImageIndex, OciImageManifest};

use super::candidate::{
    Candidate, Content, DSSE_MEDIA_TYPE, SIMPLE_SIGNING_MEDIA_TYPE, from_attestation_layer,
    from_bundle, from_signature_layer, is_bundle_media_type,
};
use crate::registry::{RegistryClient, RegistryError};

/// The most layers or referrers read per image, against registries that
/// attach thousands.
pub(crate) const MAX_CANDIDATES: usize = 32;

/// What discovery found.
#[derive(Debug, Default)]
pub(crate) struct Discovered {
    /// Every readable signature and attestation.
    pub(crate) candidates: Vec<Candidate>,
    /// The image manifest bytes, fetched only when a message-signature
    /// bundle needs them.
    pub(crate) manifest: Option<bytes::Bytes>,
}

enum Pending {
    SigLayer(std::collections::BTreeMap<String, String>, String, String),
    AttLayer(std::collections::BTreeMap<String, String>, String, String),
    Bundle(String, String),
}

/// Looks up everything attached to `digest` in `registry/repo`.
pub(crate) async fn discover(
    client: &RegistryClient,
    registry: &str,
    repo: &str,
    digest: &str,
    with_attestations: bool,
) -> Result<Discovered, RegistryError> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let sig_tag = format!("sha256-{hex}.sig");
    let att_tag = format!("sha256-{hex}.att");
    let (sig, referrers, att) = tokio::join!(
        client.get_manifest(registry, repo, &sig_tag),
        client.get_referrers(registry, repo, digest),
        async {
            if with_attestations {
                client.get_manifest(registry, repo, &att_tag).await
            } else {
                Ok(None)
            }
        }
    );
    let mut pending = Vec::new();
    if let Some(sig) = sig? {
        for (i, layer) in layers(&sig.bytes, ".sig").into_iter().enumerate() {
            if layer.media_type == SIMPLE_SIGNING_MEDIA_TYPE {
                pending.push(Pending::SigLayer(
                    layer.annotations.unwrap_or_default(),
                    layer.digest,
                    format!(".sig layer {i}"),
                ));
            }
        }
    }
    if let Some(att) = att? {
        for (i, layer) in layers(&att.bytes, ".att").into_iter().enumerate() {
            if layer.media_type == DSSE_MEDIA_TYPE {
                pending.push(Pending::AttLayer(
                    layer.annotations.unwrap_or_default(),
                    layer.digest,
                    format!(".att layer {i}"),
                ));
            }
        }
    }
    let mut bundle_manifests = Vec::new();
    if let Some(index) = referrers? {
        match serde_json::from_slice::<OciImageIndex>(&index) {
            Ok(index) => {
                for entry in index.manifests.into_iter().take(MAX_CANDIDATES) {
                    // Registries may omit artifactType in the fallback
                    // index; then the manifest itself tells.
                    if entry
                        .artifact_type
                        .as_deref()
                        .is_none_or(is_bundle_media_type)
                    {
                        bundle_manifests.push(entry.digest);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(registry, repo, digest, error = %e, "unreadable referrers index; ignored")
            }
        }
    }
    let fetched = join_all(
        bundle_manifests
            .iter()
            .map(|d| client.get_manifest(registry, repo, d)),
    )
    .await;
    for (manifest_digest, result) in bundle_manifests.iter().zip(fetched) {
        let Some(manifest) = result? else {
            continue;
        };
        let Ok(parsed) = serde_json::from_slice::<OciImageManifest>(&manifest.bytes) else {
            tracing::warn!(registry, repo, referrer = %manifest_digest, "unreadable referrer manifest; ignored");
            continue;
        };
        if parsed.subject.as_ref().map(|s| s.digest.as_str()) != Some(digest) {
            tracing::warn!(registry, repo, referrer = %manifest_digest, "referrer's subject is not this image; ignored");
            continue;
        }
        let is_bundle = parsed
            .artifact_type
            .as_deref()
            .is_some_and(is_bundle_media_type)
            || is_bundle_media_type(&parsed.config.media_type)
            || parsed
                .layers
                .iter()
                .any(|l| is_bundle_media_type(&l.media_type));
        if !is_bundle {
            continue;
        }
        if let Some(layer) = parsed
            .layers
            .iter()
            .find(|l| is_bundle_media_type(&l.media_type))
        {
            pending.push(Pending::Bundle(
                layer.digest.clone(),
                format!("bundle {manifest_digest}"),
            ));
        }
    }
    pending.truncate(MAX_CANDIDATES * 2);
    let blobs = join_all(pending.iter().map(|p| {
        let blob_digest = match p {
            Pending::SigLayer(_, d, _) | Pending::AttLayer(_, d, _) | Pending::Bundle(d, _) => d,
        };
        client.get_blob(registry, repo, blob_digest)
    }))
    .await;
    let mut out = Discovered::default();
    for (p, blob) in pending.into_iter().zip(blobs) {
        let blob = match blob {
            Ok(b) => b,
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                tracing::warn!(registry, repo, error = %e, "signature blob unreadable; ignored");
                continue;
            }
        };
        let parsed = match p {
            Pending::SigLayer(annotations, _, label) => {
                from_signature_layer(&annotations, blob.to_vec(), label)
            }
            Pending::AttLayer(annotations, _, label) => {
                from_attestation_layer(&annotations, &blob, label)
            }
            Pending::Bundle(_, label) => from_bundle(&blob, label),
        };
        match parsed {
            Ok(candidate) => out.candidates.push(candidate),
            Err(e) => tracing::warn!(registry, repo, error = %e, "unreadable signature; ignored"),
        }
    }
    if out
        .candidates
        .iter()
        .any(|c| matches!(c.content, Content::MessageSignature { .. }))
    {
        out.manifest = client
            .get_manifest(registry, repo, digest)
            .await?
            .map(|m| m.bytes);
    }
    Ok(out)
}

/// The layers of a signature manifest (empty if unreadable).
fn layers(bytes: &[u8], what: &str) -> Vec<oci_client::manifest::OciDescriptor> {
    match serde_json::from_slice::<OciImageManifest>(bytes) {
        Ok(m) => m.layers.into_iter().take(MAX_CANDIDATES).collect(),
        Err(e) => {
            tracing::warn!(manifest = what, error = %e, "unreadable signature manifest; ignored");
            Vec::new()
        }
    }
}
