//! The gRPC `Verifier` service.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use portcullis_proto::v1::verifier_server::Verifier;
use portcullis_proto::v1::{LeaseRequest, LeaseResponse};
use portcullis_proto::{Reason, Source, VerifyRequest, VerifyResponse};
use tonic::{Request, Response, Status};

use crate::decision::{Outcome, SharedEngine, Workload};
use crate::error::VerifyError;
use crate::lease::Leases;

/// The longest image reference accepted over gRPC.
const MAX_IMAGE_LEN: usize = 4096;

/// Serves `portcullis.v1.Verifier/Verify` from an [`Engine`].
#[derive(Debug, Clone)]
pub(crate) struct VerifierService {
    engine: SharedEngine,
    /// The policy-epoch leases granted to gateways.
    leases: Arc<Leases>,
    /// Used when the caller sends no `grpc-timeout`.
    default_deadline: Duration,
}

impl VerifierService {
    /// Serves `engine`; calls without a deadline get `default_deadline`.
    pub(crate) fn new(
        engine: SharedEngine,
        leases: Arc<Leases>,
        default_deadline: Duration,
    ) -> Self {
        VerifierService {
            engine,
            leases,
            default_deadline,
        }
    }
}

#[tonic::async_trait]
impl Verifier for VerifierService {
    async fn verify(
        &self,
        request: Request<VerifyRequest>,
    ) -> Result<Response<VerifyResponse>, Status> {
        let deadline = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .unwrap_or(self.default_deadline);
        // Answer a little before the caller gives up, so that it receives
        // our TIMEOUT (and whatever else we know) rather than nothing.
        let deadline = deadline.saturating_sub((deadline / 20).min(Duration::from_millis(100)));
        let req = request.into_inner();
        if req.image.len() > MAX_IMAGE_LEN {
            return Err(Status::invalid_argument("image reference too long"));
        }
        let started = std::time::Instant::now();
        let workload = Workload {
            namespace: req.namespace.clone(),
            pull_secrets: req.image_pull_secrets.clone(),
        };
        let until = tokio::time::Instant::now() + deadline;
        // The engine in use now; a refresh of Secret keys swaps it between
        // calls, never during one.
        let engine = self.engine.load_full();
        let outcome = match tokio::time::timeout_at(
            until,
            engine.decide(&req.image, Utc::now(), until, &workload),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => Outcome::early(None, VerifyError::Timeout),
        };
        let mut response = outcome.to_response();
        response.epoch = engine.epoch();
        engine
            .caches()
            .metrics
            .verifications
            .get_or_create(&vec![
                (
                    "validator",
                    if response.validator.is_empty() {
                        "none".to_string()
                    } else {
                        response.validator.clone()
                    },
                ),
                (
                    "result",
                    // `audit_only`: allowed although checks that the rule's
                    // level only logs failed (counted apart from clean allows).
                    match (response.is_allowed(), response.reason()) {
                        (true, Reason::AuditOnly) => "audit_only",
                        (true, _) => "allowed",
                        (false, _) => "denied",
                    }
                    .to_string(),
                ),
                (
                    "source",
                    response
                        .source()
                        .as_str_name()
                        .trim_start_matches("SOURCE_")
                        .to_ascii_lowercase(),
                ),
            ])
            .inc();
        // Fresh verifications are worth a line; cache hits (the vast
        // majority under load) only at debug level.
        if response.source() == Source::Fresh && !response.warnings.is_empty() {
            tracing::warn!(
                uid = %req.request_uid,
                namespace = %req.namespace,
                image = %req.image,
                allowed = response.is_allowed(),
                reason = %response.reason_text(),
                warnings = ?response.warnings,
                "verify: allowed with logged failures"
            );
        } else if response.source() == Source::Fresh {
            tracing::info!(
                uid = %req.request_uid,
                namespace = %req.namespace,
                image = %req.image,
                allowed = response.is_allowed(),
                reason = %response.reason_text(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "verify"
            );
        } else {
            tracing::debug!(
                uid = %req.request_uid,
                image = %req.image,
                allowed = response.is_allowed(),
                source = ?response.source(),
                "verify"
            );
        }
        Ok(Response::new(response))
    }

    async fn lease(
        &self,
        _request: Request<LeaseRequest>,
    ) -> Result<Response<LeaseResponse>, Status> {
        match self.leases.grant(|| self.engine.load().epoch()) {
            Some((epoch, length)) => Ok(Response::new(LeaseResponse {
                epoch,
                lease_ms: u32::try_from(length.as_millis()).unwrap_or(u32::MAX),
            })),
            None => Err(Status::failed_precondition(
                "no lease: leases are off, or the policy is changing",
            )),
        }
    }
}

/// Parses a gRPC `grpc-timeout` header value (`<digits><unit>`, unit one of
/// `H M S m u n`, at most 8 digits).
pub(crate) fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts() {
        assert_eq!(
            parse_grpc_timeout("8000m"),
            Some(Duration::from_millis(8000))
        );
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(parse_grpc_timeout("123456789m"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }
}
