//! One signature against one trust root, step by step as the trust policy
//! specification orders them, each step's failure enforced or logged as the
//! rule's level says:
//!
//! 1. **Integrity** (always enforced, [`integrity`]): the envelope parses,
//!    the chain meets the certificate requirements, the signature verifies
//!    with the leaf's key, and the payload's `targetArtifact` is this image
//!    (digest, media type and size).
//! 2. **Authenticity**: a certificate of the chain is one of the root's
//!    certificates (byte for byte), the root's store type matches the
//!    signing scheme (`ca` for `notary.x509`, `signingAuthority` for
//!    `notary.x509.signingAuthority`), and the leaf is a trusted identity.
//! 3. **Authentic timestamp**: for `notary.x509`, when the roots have TSA
//!    certificates and (`verifyTimestamp: always`, or the chain has expired
//!    under `afterCertExpiry`), the RFC 3161 countersignature must cover the
//!    signature, chain to a TSA root, and fall (with its accuracy) inside
//!    every chain certificate's validity; otherwise every certificate must
//!    be valid now. For signing authorities, the authentic signing time
//!    must lie inside every certificate's validity.
//! 4. **Expiry**: the envelope's own expiry is in the future.
//! 5. **Revocation** is not checked: OCSP and CRLs need the network to reach
//!    the CAs at admission time (see the README for what to do instead).

use chrono::{DateTime, Utc};

use super::chain::{self, Chain};
use super::envelope::{Scheme, SignerInfo};
use crate::config::notation::{Action, Actions, Identity, NotationRoot, StoreType};
use crate::policy::VerifyTimestamp;
use portcullis_proto::Reason;

use crate::config::notation::Requirements;

/// The image a signature must name.
#[derive(Debug, Clone)]
pub(crate) struct Target<'a> {
    /// `sha256:…`.
    pub(crate) digest: &'a str,
    /// The manifest's media type.
    pub(crate) media_type: &'a str,
    /// The manifest's size in bytes.
    pub(crate) size: u64,
}

/// A failed step, with the reason code it is reported under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The step's reason code.
    pub(crate) reason: Reason,
    /// What failed, naming the step.
    pub(crate) message: String,
}

impl Failure {
    fn new(reason: Reason, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
        }
    }

    /// How decisive the failure is when no signature counts: the most
    /// specific (latest step) failure is reported.
    pub(crate) fn rank(&self) -> u8 {
        match self.reason {
            Reason::SignatureInvalid => 1,
            Reason::DigestMismatch => 2,
            Reason::CertInvalid => 3,
            Reason::NoMatchingSignature => 4,
            Reason::IdentityMismatch => 5,
            Reason::TimestampInvalid => 6,
            Reason::Expired => 7,
            _ => 0,
        }
    }
}

/// A signature that passed integrity.
#[derive(Debug)]
pub(crate) struct Intact {
    /// Its content.
    pub(crate) info: SignerInfo,
    /// Its chain.
    pub(crate) chain: Chain,
}

/// The signed payload.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    target_artifact: Descriptor,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
}

/// Step 1: integrity.
pub(crate) fn integrity(info: SignerInfo, target: &Target<'_>) -> Result<Intact, Failure> {
    let chain = chain::check(&info.chain, info.alg)
        .map_err(|m| Failure::new(Reason::CertInvalid, format!("integrity: {m}")))?;
    if !chain::verify_signature(&chain, info.alg, &info.signed_bytes, &info.signature) {
        return Err(Failure::new(
            Reason::SignatureInvalid,
            format!(
                "integrity: the signature by {} does not verify",
                chain::subject(chain.leaf())
            ),
        ));
    }
    let payload: Payload = serde_json::from_slice(&info.payload).map_err(|e| {
        Failure::new(
            Reason::SignatureInvalid,
            format!("integrity: the payload is not a Notary Project payload: {e}"),
        )
    })?;
    let t = &payload.target_artifact;
    if t.digest != target.digest || t.media_type != target.media_type || t.size != target.size {
        return Err(Failure::new(
            Reason::DigestMismatch,
            format!(
                "integrity: the signature is for {} ({}, {} bytes), not this image {} ({}, {} bytes)",
                t.digest, t.media_type, t.size, target.digest, target.media_type, target.size
            ),
        ));
    }
    Ok(Intact { info, chain })
}

/// What checking against one root concluded.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Failures of logged steps.
    pub(crate) logged: Vec<String>,
    /// The time after which this outcome no longer holds (the earliest
    /// expiry or certificate end that was checked against now).
    pub(crate) valid_until: Option<DateTime<Utc>>,
}

impl Outcome {
    fn until(&mut self, t: DateTime<Utc>) {
        self.valid_until = Some(self.valid_until.map_or(t, |u| u.min(t)));
    }
}

/// Steps 2 to 4 for an intact signature against `root`.
pub(crate) fn against_root(
    intact: &Intact,
    root: &NotationRoot,
    tsa_roots: &[Vec<u8>],
    identities: &[Identity],
    req: &Requirements,
    now: DateTime<Utc>,
) -> Result<Outcome, Failure> {
    let mut out = Outcome::default();
    let actions: Actions = req.actions;
    let step = |action, failure: Option<Failure>, out: &mut Outcome| match (action, failure) {
        (_, None) | (Action::Skip, _) => Ok(()),
        (Action::Enforce, Some(f)) => Err(f),
        (Action::Log, Some(f)) => {
            out.logged.push(format!(
                "{}: {}",
                portcullis_proto::reason_code(f.reason),
                f.message
            ));
            Ok(())
        }
    };
    step(
        actions.authenticity,
        authenticity(intact, root, identities).err(),
        &mut out,
    )?;
    let timestamp = authentic_timestamp(intact, tsa_roots, req.verify_timestamp, now);
    let timestamp = match timestamp {
        Ok(Some(until)) => {
            out.until(until);
            None
        }
        Ok(None) => None,
        Err(f) => Some(f),
    };
    step(actions.authentic_timestamp, timestamp, &mut out)?;
    let expiry = match intact.info.expiry {
        Some(e) if e <= now => Some(Failure::new(
            Reason::Expired,
            format!("expiry: the signature expired at {e}"),
        )),
        Some(e) => {
            if actions.expiry == Action::Enforce {
                out.until(e);
            }
            None
        }
        None => None,
    };
    step(actions.expiry, expiry, &mut out)?;
    Ok(out)
}

fn authenticity(
    intact: &Intact,
    root: &NotationRoot,
    identities: &[Identity],
) -> Result<(), Failure> {
    let wanted = match intact.info.scheme {
        Scheme::X509 => StoreType::Ca,
        Scheme::SigningAuthority => StoreType::SigningAuthority,
    };
    if root.store != wanted {
        return Err(Failure::new(
            Reason::NoMatchingSignature,
            format!(
                "authenticity: a {} signature needs a `{}` trust root; `{}` is `{}`",
                intact.info.scheme.as_str(),
                wanted.as_str(),
                root.name,
                root.store.as_str()
            ),
        ));
    }
    let trusted = intact
        .chain
        .ders
        .iter()
        .any(|c| root.certs.iter().any(|t| t == c));
    if !trusted {
        return Err(Failure::new(
            Reason::NoMatchingSignature,
            format!(
                "authenticity: the chain of {} leads to no certificate of trust root `{}`",
                chain::subject(intact.chain.leaf()),
                root.name
            ),
        ));
    }
    let identity_ok = identities.iter().any(|i| match i {
        Identity::Any => true,
        Identity::Subject(attrs) => chain::subject_has(intact.chain.leaf(), attrs),
    });
    if !identity_ok {
        return Err(Failure::new(
            Reason::IdentityMismatch,
            format!(
                "authenticity: {} is not a trusted identity",
                chain::subject(intact.chain.leaf())
            ),
        ));
    }
    Ok(())
}

/// Step 3. `Ok(Some(t))`: passed on validity now, which holds until `t`.
fn authentic_timestamp(
    intact: &Intact,
    tsa_roots: &[Vec<u8>],
    mode: VerifyTimestamp,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, Failure> {
    let chain = &intact.chain;
    let fail = |m: String| {
        Failure::new(
            Reason::TimestampInvalid,
            format!("authentic timestamp: {m}"),
        )
    };
    if intact.info.scheme == Scheme::SigningAuthority {
        let t = intact.info.signing_time;
        return match chain.invalid_at(t) {
            Some(m) => Err(fail(format!("at the authentic signing time {t}, {m}"))),
            None => Ok(None),
        };
    }
    let expired = chain.validity().1 < now;
    let stamp = !tsa_roots.is_empty() && (mode == VerifyTimestamp::Always || expired);
    if !stamp {
        return match chain.invalid_at(now) {
            Some(m) => Err(Failure::new(
                Reason::CertInvalid,
                format!(
                    "authentic timestamp: without a timestamp the chain must be valid now; {m}"
                ),
            )),
            None => Ok(Some(chain.validity().1)),
        };
    }
    let Some(token) = &intact.info.timestamp else {
        return Err(fail(
            "the signature has no timestamp countersignature".into(),
        ));
    };
    let ts = portcullis_timestamp::verify(token, &intact.info.signature, tsa_roots)
        .map_err(|e| fail(e.to_string()))?;
    let (from, until) = chain.validity();
    if ts.earliest() < from || ts.latest() > until {
        return Err(fail(format!(
            "the timestamp {} (±{}s) is outside the signing chain's validity ({from} to {until})",
            ts.time,
            ts.accuracy.num_seconds()
        )));
    }
    Ok(None)
}
