//! Verifying a message signature against the SHA-256 of what was signed,
//! when the bytes themselves are not at hand: `verify-bundle` given a
//! `sha256:` digest instead of the artifact (the sigstore-conformance
//! DIGEST form), or an image whose manifest bytes were not fetched (the
//! image digest is the SHA-256 of the manifest). ECDSA and RSA sign a
//! digest, so this is the same check; Ed25519 signs the message itself and
//! cannot be verified this way.

use aws_lc_rs::digest::{Digest, SHA256};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA256_ASN1, RSA_PKCS1_2048_8192_SHA256,
    RSA_PSS_2048_8192_SHA256, UnparsedPublicKey, VerificationAlgorithm,
};

/// Whether `signature` by the key `spki_der` (SubjectPublicKeyInfo) verifies
/// over the message whose SHA-256 is `sha256`.
pub(crate) fn verifies(spki_der: &[u8], sha256: &[u8; 32], signature: &[u8]) -> bool {
    let Ok(digest) = Digest::import_less_safe(sha256, &SHA256) else {
        return false;
    };
    let algorithms: [&'static dyn VerificationAlgorithm; 4] = [
        &ECDSA_P256_SHA256_ASN1,
        &ECDSA_P384_SHA256_ASN1,
        &RSA_PKCS1_2048_8192_SHA256,
        &RSA_PSS_2048_8192_SHA256,
    ];
    algorithms.into_iter().any(|algorithm| {
        UnparsedPublicKey::new(algorithm, spki_der)
            .verify_digest(&digest, signature)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    use sha2::{Digest as _, Sha256};

    #[test]
    fn a_p256_signature_verifies_over_the_digest_of_its_message_only() {
        // A signer independent of the code under test: aws-lc-rs signs the
        // message (hashing it itself).
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let message = b"hello, conformance";
        let signature = pair.sign(&rng, message).unwrap();
        let spki = spki_of(pair.public_key().as_ref());
        let digest: [u8; 32] = Sha256::digest(message).into();
        assert!(verifies(&spki, &digest, signature.as_ref()));
        let other: [u8; 32] = Sha256::digest(b"another message").into();
        assert!(!verifies(&spki, &other, signature.as_ref()));
        assert!(!verifies(b"not a key", &digest, signature.as_ref()));
    }

    /// A P-256 SubjectPublicKeyInfo around an uncompressed point.
    fn spki_of(point: &[u8]) -> Vec<u8> {
        let mut der = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        der.extend_from_slice(point);
        der
    }
}
