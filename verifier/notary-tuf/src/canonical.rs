//! Canonical JSON (as Notary signs it) and TUF key ids.
//!
//! Notary signs `json.MarshalCanonical(signed)` from `github.com/docker/go`,
//! and verifies by decoding `signed` into `map[string]interface{}` and
//! re-marshalling it canonically. In canonical mode that encoder:
//!
//! * sorts object keys by their raw UTF-8 bytes;
//! * writes no whitespace;
//! * escapes only `"` and `\` in strings, writing every other byte (control
//!   characters and non-ASCII included) as is;
//! * writes numbers as integers (`int64(f)`) and rejects non-integral ones.
//!
//! `olpc-cjson` (used here, as `tough` does) agrees on all of that for the
//! data Notary produces, with two differences that matter only for unusual
//! strings:
//!
//! * it normalises every string to Unicode NFC (Go does not), and
//! * it sorts object keys by their *escaped, quoted* form, which differs from
//!   Go's order only for keys containing bytes below `#` (0x23: control
//!   characters, space, `!`, `"`) or a backslash.
//!
//! The first difference would let two different documents share one
//! canonical form, so [`canonicalize`] refuses any value that does not
//! survive a round trip through its own canonical form unchanged (a string
//! that NFC changes, or a raw control character, which `serde_json` will not
//! re-read). The second can only make a genuine signature fail to verify
//! (fail closed). Neither occurs in metadata written by the notary CLI or
//! Docker: target names, role names, base64 and hex are ASCII without
//! control characters.

use olpc_cjson::CanonicalFormatter;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Serialise `value` as canonical JSON, byte-identical to Go's
/// `json.MarshalCanonical` for every value it accepts.
///
/// Fails for floating-point numbers (as OLPC canonical JSON requires) and for
/// values whose canonical form does not read back as the same value (see the
/// module documentation).
pub fn canonicalize(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(1024);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, CanonicalFormatter::new());
    value
        .serialize(&mut ser)
        .map_err(|e| CanonicalError::Serialize(e.to_string()))?;
    let reread: Value =
        serde_json::from_slice(&out).map_err(|e| CanonicalError::Reparse(e.to_string()))?;
    if &reread != value {
        return Err(CanonicalError::NotNfc);
    }
    Ok(out)
}

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// OLPC canonical JSON refuses it (floating-point numbers).
    #[error("cannot canonicalise: {0}")]
    Serialize(String),
    /// The canonical bytes do not read back.
    #[error("canonical form does not re-parse: {0}")]
    Reparse(String),
    /// A string changes under canonicalisation (not in Unicode NFC).
    #[error("a string changes under canonicalisation (not in Unicode NFC)")]
    NotNfc,
}

/// The canonical JSON of a TUF public key object as Notary hashes it for its
/// key id: `{"keytype":T,"keyval":{"private":null,"public":B64}}` where `B64`
/// is the standard base64 (with padding) of the public key bytes.
pub fn key_object_bytes(keytype: &str, public: &[u8]) -> Result<Vec<u8>, CanonicalError> {
    let obj = serde_json::json!({
        "keytype": keytype,
        "keyval": { "private": null, "public": STANDARD.encode(public) },
    });
    canonicalize(&obj)
}

/// The TUF key id of a key: the lowercase hex SHA-256 of
/// [`key_object_bytes`]. `None` if the key type string cannot be
/// canonicalised.
pub fn key_id(keytype: &str, public: &[u8]) -> Option<String> {
    key_object_bytes(keytype, public)
        .ok()
        .map(|b| hex::encode(Sha256::digest(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v: Value = serde_json::from_str(
            r#"{ "b": 1, "a": [ true, null, "x" ], "c": {"z":-2,"y":"q\"\\"} }"#,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(canonicalize(&v).unwrap()).unwrap(),
            r#"{"a":[true,null,"x"],"b":1,"c":{"y":"q\"\\","z":-2}}"#
        );
    }

    #[test]
    fn writes_html_characters_and_non_ascii_raw_like_go_canonical() {
        // Go's non-canonical encoder would write \u003c, \u003e, \u0026, \u2028;
        // its canonical mode, like OLPC, does not escape them.
        let v: Value = serde_json::from_str(r#"{"k":"<a>&b \u2028 é"}"#).unwrap();
        assert_eq!(
            canonicalize(&v).unwrap(),
            "{\"k\":\"<a>&b \u{2028} é\"}".as_bytes()
        );
    }

    #[test]
    fn refuses_floats() {
        let v: Value = serde_json::from_str(r#"{"k":1.5}"#).unwrap();
        assert!(canonicalize(&v).is_err());
        let v: Value = serde_json::from_str(r#"{"k":1.0}"#).unwrap();
        assert!(canonicalize(&v).is_err());
    }

    #[test]
    fn refuses_strings_that_nfc_would_change() {
        // "e" + COMBINING ACUTE ACCENT: NFC turns it into U+00E9, Go keeps it.
        let v: Value = serde_json::from_str(r#"{"k":"e\u0301"}"#).unwrap();
        assert!(canonicalize(&v).is_err());
        // Already-NFC non-ASCII is fine.
        let v: Value = serde_json::from_str(r#"{"k":"\u00e9"}"#).unwrap();
        assert!(canonicalize(&v).is_ok());
    }

    #[test]
    fn refuses_raw_control_characters() {
        let v: Value = serde_json::from_str(r#"{"k":"a\nb"}"#).unwrap();
        assert!(canonicalize(&v).is_err());
    }

    #[test]
    fn key_order_differs_from_go_only_below_0x23() {
        // Go sorts "a" < "a b" (prefix first); OLPC compares the quoted forms
        // `"a"` and `"a b"`, where the space (0x20) sorts before the quote (0x22).
        let v: Value = serde_json::from_str(r#"{"a":1,"a b":2,"ab":3}"#).unwrap();
        assert_eq!(
            String::from_utf8(canonicalize(&v).unwrap()).unwrap(),
            r#"{"a b":2,"a":1,"ab":3}"#
        );
    }

    #[test]
    fn key_object_includes_private_null() {
        assert_eq!(
            String::from_utf8(key_object_bytes("ecdsa", b"\x01\x02").unwrap()).unwrap(),
            r#"{"keytype":"ecdsa","keyval":{"private":null,"public":"AQI="}}"#
        );
    }
}
