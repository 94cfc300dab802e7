//! Integrity of shared-cache values: every value written to Redis carries
//! an HMAC-SHA256 under a key shared by the verifiers, computed over the
//! cache key *and* the value. A value that fails the check (forged, or a
//! genuine value replayed under another key) is ignored.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const DOMAIN: &[u8] = b"portcullis-cache-v1\0";
const TAG_LEN: usize = 32;

/// Why a sealed value was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Shorter than a tag.
    #[error("value too short to carry an integrity tag")]
    Truncated,
    /// The tag does not match key and value.
    #[error("integrity tag does not match")]
    BadTag,
}

fn mac(secret: &[u8], key: &str, value: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable_hmac());
    m.update(DOMAIN);
    m.update(&(key.len() as u64).to_be_bytes());
    m.update(key.as_bytes());
    m.update(value);
    m
}

#[cold]
fn unreachable_hmac() -> HmacSha256 {
    // `new_from_slice` only fails for fixed-size-key MACs; HMAC has none.
    <HmacSha256 as Mac>::new_from_slice(&[0u8; 32]).expect("HMAC takes any key length")
}

/// `tag ‖ value`, the tag binding `key` and `value`.
pub fn seal(secret: &[u8], key: &str, value: &[u8]) -> Vec<u8> {
    let tag = mac(secret, key, value).finalize().into_bytes();
    let mut out = Vec::with_capacity(TAG_LEN + value.len());
    out.extend_from_slice(&tag);
    out.extend_from_slice(value);
    out
}

/// Checks a sealed value read under `key`; returns the value.
pub fn open<'a>(secret: &[u8], key: &str, sealed: &'a [u8]) -> Result<&'a [u8], SealError> {
    if sealed.len() < TAG_LEN {
        return Err(SealError::Truncated);
    }
    let (tag, value) = sealed.split_at(TAG_LEN);
    mac(secret, key, value)
        .verify_slice(tag)
        .map_err(|_| SealError::BadTag)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let s = seal(b"k", "a", b"value");
        assert_eq!(open(b"k", "a", &s), Ok(&b"value"[..]));
        assert_eq!(open(b"other", "a", &s), Err(SealError::BadTag));
        let mut t = s.clone();
        *t.last_mut().unwrap() ^= 1;
        assert_eq!(open(b"k", "a", &t), Err(SealError::BadTag));
        assert_eq!(open(b"k", "a", &s[..10]), Err(SealError::Truncated));
    }

    #[test]
    fn replay_under_another_key_fails() {
        let s = seal(b"k", "verdict:a", b"allow");
        assert_eq!(open(b"k", "verdict:b", &s), Err(SealError::BadTag));
        // Length-prefixing keeps key/value boundaries apart.
        let s = seal(b"k", "ab", b"c");
        assert_eq!(
            open(b"k", "a", &[&s[..32], b"bc"].concat()),
            Err(SealError::BadTag)
        );
    }
}
