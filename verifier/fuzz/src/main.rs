//! One AFL harness for every target: `PORTCULLIS_FUZZ_TARGET` names which
//! parser the input goes to (see `scripts/fuzz.sh` for the list). Each must
//! return, error or not, without panicking; a panic is a crash AFL saves.

use portcullis_verifier::fuzzing as f;

/// The targets by name.
const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("admission_review", admission_review),
    ("reference", f::reference),
    ("pattern", f::pattern),
    ("bundle", f::bundle),
    ("cosign_layers", f::cosign_layers),
    ("rekor_body", f::rekor_body),
    ("checkpoint", f::checkpoint),
    ("certificate", f::certificate),
    ("notation_envelope", f::notation_envelope),
    ("timestamp", f::timestamp),
    ("sealed_value", f::sealed_value),
    ("notary_metadata", f::notary_metadata),
    ("attestation_statement", f::attestation_statement),
    ("condition", f::condition),
];

/// An AdmissionReview as the gateway reads it: parse, then extract every
/// image (and build the pointers the JSON Patch uses).
fn admission_review(data: &[u8]) {
    if let Ok(request) = portcullis_gateway::parse_review(data)
        && let Some(object) = &request.object
    {
        let _ = portcullis_gateway::extract(&request.kind.kind, object);
    }
}

fn main() {
    let name = std::env::var("PORTCULLIS_FUZZ_TARGET").unwrap_or_default();
    let Some((_, target)) = TARGETS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!("PORTCULLIS_FUZZ_TARGET must be one of: {}", names.join(", "));
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        target(data);
    });
}
