//! Inclusion in a transparency log without trusting the log's promise:
//! an RFC 6962 / RFC 9162 Merkle audit path from the entry to a root hash,
//! and the log's signed checkpoint (C2SP `signed-note` and
//! `tlog-checkpoint`) that commits to that root.
//!
//! * **Merkle path** ([`verify_inclusion`]): leaf hash `SHA-256(0x00 ‖
//!   body)`, node hash `SHA-256(0x01 ‖ left ‖ right)`, walked as RFC 9162
//!   §2.1.3.2 says from the leaf index and the tree size. The path must
//!   consume exactly to the root; a path for another leaf, another index or
//!   another tree does not reach the checkpoint's root.
//! * **Checkpoint** ([`verify_checkpoint`]): the note text (origin line,
//!   tree size, base64 root hash, optional extension lines) up to the blank
//!   line, then signature lines `— NAME base64(key id[4] ‖ signature)`.
//!   Lines whose name and key id are not the log's are ignored (witness
//!   cosignatures); a line that claims to be the log's must verify; at least
//!   one must. Key ids: Ed25519 (Rekor v2) `SHA-256(name ‖ 0x0A ‖ 0x01 ‖
//!   key)[:4]` with the name the log's origin; ECDSA (Rekor v1)
//!   `SHA-256(SPKI DER)[:4]`, the name not part of it. Ed25519 signs the
//!   text itself, ECDSA its SHA-256 (ASN.1 signature).

use aws_lc_rs::signature as sig;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use der::Decode as _;
use sha2::{Digest as _, Sha256};

/// A verified checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// The origin line (the log's identity).
    pub(crate) origin: String,
    /// The tree size it commits to.
    pub(crate) size: u64,
    /// The root hash of that tree.
    pub(crate) root: [u8; 32],
}

/// Why a proof or checkpoint does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InclusionError {
    /// The checkpoint is not a well-formed signed note.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// No line of the log's key verifies (or one of them fails).
    #[error("the checkpoint is not signed by the log's key")]
    Unsigned,
    /// The checkpoint is for another log.
    #[error("the checkpoint's origin `{0}` is not the log's")]
    Origin(String),
    /// The entry is not at or below the checkpoint's tree size, or the path
    /// does not lead to its root.
    #[error("the inclusion proof does not reach the checkpoint's root hash")]
    Proof,
}

/// A log's checkpoint key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NoteKey<'a> {
    /// Rekor v2: an Ed25519 key (raw 32 bytes) signing as `origin`.
    Ed25519 {
        /// The raw public key.
        key: &'a [u8],
        /// The log's origin (its base URL's host).
        origin: &'a str,
    },
    /// Rekor v1: the log's ECDSA key (SPKI DER); the origin line reads
    /// `HOST - TREEID`, checked against `host` when it is known.
    Ecdsa {
        /// The SPKI.
        spki_der: &'a [u8],
        /// The log's host, if the trust root names it.
        host: Option<&'a str>,
    },
}

/// `SHA-256(0x00 ‖ data)`.
pub(crate) fn leaf_hash(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// RFC 9162 §2.1.3.2: whether `path` proves `leaf` at `index` in the tree
/// of `size` leaves whose root is `root`.
pub(crate) fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: [u8; 32],
    path: &[[u8; 32]],
    root: &[u8; 32],
) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn, mut r) = (index, size - 1, leaf);
    for p in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// Parses `envelope` and verifies it is signed by `key`.
pub(crate) fn verify_checkpoint(
    envelope: &str,
    key: NoteKey<'_>,
) -> Result<Checkpoint, InclusionError> {
    let bad = |m: &str| InclusionError::Malformed(m.to_string());
    let (text, signatures) = envelope
        .split_once("\n\n")
        .ok_or_else(|| bad("no blank line before the signatures"))?;
    let text = format!("{text}\n");
    let mut lines = text.lines();
    let origin = lines
        .next()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| bad("no origin"))?
        .to_string();
    let size_line = lines.next().ok_or_else(|| bad("no tree size"))?;
    if size_line.is_empty()
        || (size_line.len() > 1 && size_line.starts_with('0'))
        || !size_line.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad("the tree size is not a decimal number"));
    }
    let size: u64 = size_line
        .parse()
        .map_err(|_| bad("the tree size is out of range"))?;
    let root: [u8; 32] = lines
        .next()
        .and_then(|l| STANDARD.decode(l).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("the root hash is not 32 bytes of base64"))?;
    // The log's key id and, for Ed25519 (C2SP), the name its lines carry.
    let (id, name): ([u8; 4], Option<&str>) = match key {
        NoteKey::Ed25519 {
            key,
            origin: expected,
        } => {
            if origin != expected {
                return Err(InclusionError::Origin(origin));
            }
            let mut h = Sha256::new();
            h.update(expected.as_bytes());
            h.update([b'\n', 0x01]);
            h.update(key);
            let full: [u8; 32] = h.finalize().into();
            ([full[0], full[1], full[2], full[3]], Some(expected))
        }
        NoteKey::Ecdsa { spki_der, host } => {
            // The log's authority as its base URL gives it, or without
            // the port (Rekor names itself by its configured hostname).
            if let Some(host) = host {
                let bare = host
                    .rsplit_once(':')
                    .filter(|(_, port)| {
                        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
                    })
                    .map_or(host, |(h, _)| h);
                let names_log = [host, bare]
                    .iter()
                    .any(|h| origin.starts_with(&format!("{h} - ")) || origin == *h);
                if !names_log {
                    return Err(InclusionError::Origin(origin));
                }
            }
            let full: [u8; 32] = Sha256::digest(spki_der).into();
            ([full[0], full[1], full[2], full[3]], None)
        }
    };
    let mut verified = false;
    for line in signatures.lines().filter(|l| !l.is_empty()) {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| bad("a signature line does not start with an em dash"))?;
        let (line_name, b64) = rest
            .rsplit_once(' ')
            .ok_or_else(|| bad("a signature line has no signature"))?;
        let Ok(raw) = STANDARD.decode(b64) else {
            continue;
        };
        if raw.len() < 5 || raw[..4] != id || name.is_some_and(|n| n != line_name) {
            continue;
        }
        if !signature_verifies(key, text.as_bytes(), &raw[4..]) {
            return Err(InclusionError::Unsigned);
        }
        verified = true;
    }
    if !verified {
        return Err(InclusionError::Unsigned);
    }
    Ok(Checkpoint { origin, size, root })
}

/// Whether `signature` by the log's key verifies over the note `text`.
fn signature_verifies(key: NoteKey<'_>, text: &[u8], signature: &[u8]) -> bool {
    match key {
        NoteKey::Ed25519 { key, .. } => sig::UnparsedPublicKey::new(&sig::ED25519, key)
            .verify(text, signature)
            .is_ok(),
        NoteKey::Ecdsa { spki_der, .. } => {
            let Ok(spki) = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(spki_der) else {
                return false;
            };
            let p384 = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())
                .is_some_and(|c| c.to_string() == "1.3.132.0.34");
            let alg: &'static dyn sig::VerificationAlgorithm = if p384 {
                &sig::ECDSA_P384_SHA384_ASN1
            } else {
                &sig::ECDSA_P256_SHA256_ASN1
            };
            sig::UnparsedPublicKey::new(alg, spki.subject_public_key.raw_bytes())
                .verify(text, signature)
                .is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The root of leaves `0..n` (`SHA-256` of each index as text), built
    /// the RFC 6962 way: split at the largest power of two below `n`.
    fn root(leaves: &[[u8; 32]]) -> [u8; 32] {
        match leaves.len() {
            1 => leaves[0],
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
            }
        }
    }

    /// The audit path of leaf `m` (RFC 6962 §2.1.1), leaf to root.
    fn path(leaves: &[[u8; 32]], m: usize) -> Vec<[u8; 32]> {
        if leaves.len() <= 1 {
            return Vec::new();
        }
        let mut k = 1;
        while k * 2 < leaves.len() {
            k *= 2;
        }
        if m < k {
            let mut p = path(&leaves[..k], m);
            p.push(root(&leaves[k..]));
            p
        } else {
            let mut p = path(&leaves[k..], m - k);
            p.push(root(&leaves[..k]));
            p
        }
    }

    #[test]
    fn every_leaf_of_every_small_tree_proves_and_no_other_does() {
        for n in 1..=17usize {
            let leaves: Vec<[u8; 32]> = (0..n)
                .map(|i| leaf_hash(i.to_string().as_bytes()))
                .collect();
            let r = root(&leaves);
            for m in 0..n {
                let p = path(&leaves, m);
                assert!(
                    verify_inclusion(m as u64, n as u64, leaves[m], &p, &r),
                    "{m} of {n}"
                );
                // Another leaf, another index, another size, a short path.
                let other = leaf_hash(b"other");
                assert!(!verify_inclusion(m as u64, n as u64, other, &p, &r));
                if n > 1 {
                    assert!(!verify_inclusion(
                        ((m + 1) % n) as u64,
                        n as u64,
                        leaves[m],
                        &p,
                        &r
                    ));
                    assert!(!verify_inclusion(
                        m as u64,
                        n as u64,
                        leaves[m],
                        &p[..p.len() - 1],
                        &r
                    ));
                }
                assert!(!verify_inclusion(n as u64, n as u64, leaves[m], &p, &r));
            }
        }
    }

    #[test]
    fn malformed_checkpoints_are_refused() {
        let key = NoteKey::Ed25519 {
            key: &[0u8; 32],
            origin: "log.example",
        };
        for text in [
            "",
            "log.example\n10\n",
            "log.example\nten\nAAAA\n\n\u{2014} log.example AAAA\n",
            "log.example\n010\nAAAA\n\n",
            "log.example\n10\nnot-base64\n\n",
        ] {
            assert!(
                matches!(
                    verify_checkpoint(text, key),
                    Err(InclusionError::Malformed(_))
                ),
                "{text:?}"
            );
        }
        let root = STANDARD.encode([7u8; 32]);
        let other_origin =
            format!("other.example\n10\n{root}\n\n\u{2014} other.example AAAAAAA=\n");
        assert_eq!(
            verify_checkpoint(&other_origin, key),
            Err(InclusionError::Origin("other.example".into()))
        );
        let unsigned = format!("log.example\n10\n{root}\n\n\u{2014} witness AAAAAAA=\n");
        assert_eq!(
            verify_checkpoint(&unsigned, key),
            Err(InclusionError::Unsigned)
        );
    }
}

#[cfg(test)]
mod hostile {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Arbitrary checkpoint text and proofs: an error or false, never a
        /// panic (tree sizes and indices at the extremes included).
        #[test]
        fn arbitrary_checkpoints_and_proofs_never_panic(
            text in ".{0,300}",
            index in proptest::prelude::any::<u64>(),
            size in proptest::prelude::any::<u64>(),
            path in proptest::collection::vec(proptest::prelude::any::<[u8; 32]>(), 0..70),
        ) {
            let _ = verify_checkpoint(&text, NoteKey::Ed25519 { key: &[1u8; 32], origin: "log.example" });
            let _ = verify_checkpoint(&text, NoteKey::Ecdsa { spki_der: b"not a key", host: None });
            let _ = verify_inclusion(index, size, [0u8; 32], &path, &[0u8; 32]);
        }
    }
}
