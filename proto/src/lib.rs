//! The gRPC contract between the Portcullis gateway and its verifiers.
//!
//! The messages live in `proto/portcullis/v1/verifier.proto`; this crate
//! compiles them with tonic/prost and adds the few helpers both sides share:
//! the stable text of a reason code, and the fail-closed reading of a verdict.

#![forbid(unsafe_code)]

/// Generated code for package `portcullis.v1`.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("portcullis.v1");
}

pub use v1::{Reason, Source, Verdict, VerifyRequest, VerifyResponse};

/// The text users grep for a reason: its proto name without the `REASON_`
/// prefix, e.g. `NO_MATCHING_RULE`.
pub fn reason_code(reason: Reason) -> &'static str {
    let name = reason.as_str_name();
    name.strip_prefix("REASON_").unwrap_or(name)
}

/// Reads a raw reason number from the wire. Unknown numbers (from a newer
/// verifier) read as `REASON_UNSPECIFIED`.
pub fn reason_from_wire(raw: i32) -> Reason {
    Reason::try_from(raw).unwrap_or(Reason::Unspecified)
}

impl VerifyResponse {
    /// True only for an explicit `VERDICT_ALLOWED`. Unknown or unspecified
    /// verdicts read as a denial, so a garbled answer never admits an image.
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allowed as i32
    }

    /// `CODE (detail)` or just `CODE` when there is no detail, e.g.
    /// `THRESHOLD_NOT_MET (1 of 2)`.
    pub fn reason_text(&self) -> String {
        let code = reason_code(self.reason());
        if self.reason_detail.is_empty() {
            code.to_string()
        } else {
            format!("{code} ({})", self.reason_detail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_code_strips_prefix() {
        assert_eq!(reason_code(Reason::NoMatchingRule), "NO_MATCHING_RULE");
        assert_eq!(reason_code(Reason::Timeout), "TIMEOUT");
    }

    #[test]
    fn unknown_verdict_is_denial() {
        let r = VerifyResponse {
            verdict: 99,
            ..Default::default()
        };
        assert!(!r.is_allowed());
        let r = VerifyResponse::default();
        assert!(!r.is_allowed());
    }

    #[test]
    fn reason_text_with_detail() {
        let r = VerifyResponse {
            reason: Reason::ThresholdNotMet as i32,
            reason_detail: "1 of 2".into(),
            ..Default::default()
        };
        assert_eq!(r.reason_text(), "THRESHOLD_NOT_MET (1 of 2)");
        let r = VerifyResponse {
            reason: 12345,
            ..Default::default()
        };
        assert_eq!(r.reason_text(), "UNSPECIFIED");
    }
}
