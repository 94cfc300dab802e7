//! One admission, start to finish, under the gateway's modes:
//!
//! 1. DELETE/CONNECT and objects without images: allow.
//! 2. UPDATEs of objects being deleted that add no image, out-of-scope
//!    namespaces, unchanged UPDATEs: allow without verifying
//!    ([`super::shortcuts`], which says what each may skip and what it can
//!    never allow).
//! 3. Otherwise verify every image ([`super::judge`]), children of
//!    controllers included.
//! 4. `podsOnly` relaxes non-Pod kinds, and detection mode relaxes every
//!    denial, into an allow with warnings (never a patch for relaxed
//!    controllers).
//! 5. Alerts: admit/reject receivers; a synchronous receiver that fails
//!    turns the answer into a deny that says so.
//! 6. One audit record.

use std::sync::Arc;

use tokio::time::Instant;

use super::extract::{self, Extraction};
use super::outcome::Verdicts;
use super::review::{AdmissionRequest, AdmissionReviewResponse};
use super::shortcuts::{self, Skip};
use super::{AdmissionLimits, WebhookKind, allow_response, deny_response, judge, patch_for};
use crate::alerts::Alerter;
use crate::alerts::template::AlertContext;
use crate::audit::{AuditImage, AuditLog, AuditMode, AuditRecord};
use crate::cluster::Cluster;
use crate::config::{GatewayConfig, ResourceValidationMode};
use crate::metrics::GatewayMetrics;
use crate::pool::VerifierPool;

/// Kubernetes shows at most a few warnings of limited length; longer ones
/// are cut.
const MAX_WARNINGS: usize = 20;
const MAX_WARNING_LEN: usize = 240;

/// Everything an admission needs, built once at start-up.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    /// The verifiers.
    pub(crate) pool: Arc<VerifierPool>,
    /// Per-admission limits.
    pub(crate) limits: AdmissionLimits,
    /// The operating modes.
    pub(crate) config: Arc<GatewayConfig>,
    /// Read-only API access (namespace labels), if available.
    pub(crate) cluster: Option<Cluster>,
    /// Alert receivers.
    pub(crate) alerter: Alerter,
    /// The audit log.
    pub(crate) audit: AuditLog,
    /// Metrics.
    pub(crate) metrics: GatewayMetrics,
}

/// What was decided.
#[derive(Debug)]
pub(crate) struct Decision {
    /// The response to send.
    pub(crate) review: AdmissionReviewResponse,
    /// The per-image verdicts (empty when nothing was verified).
    pub(crate) verdicts: Verdicts,
    /// `allowed`, `denied`, `would_deny` or `skipped`.
    pub(crate) decision: &'static str,
}

fn cut(w: String) -> String {
    if w.len() <= MAX_WARNING_LEN {
        return w;
    }
    let mut end = MAX_WARNING_LEN - 3;
    while !w.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &w[..end])
}

fn warnings(lines: impl IntoIterator<Item = String>) -> Vec<String> {
    lines.into_iter().take(MAX_WARNINGS).map(cut).collect()
}

impl Admission {
    /// Decides on a parsed request; `started` is when it arrived.
    pub(crate) async fn decide(
        &self,
        request: AdmissionRequest,
        webhook: WebhookKind,
        started: Instant,
    ) -> Decision {
        let deadline = started + self.limits.deadline;
        let (decision, skip) = self.decide_inner(&request, webhook, deadline).await;
        let decision = self.alert(&request, decision, deadline).await;
        self.record(&request, webhook, &decision, skip, started);
        decision
    }

    async fn decide_inner(
        &self,
        request: &AdmissionRequest,
        webhook: WebhookKind,
        deadline: Instant,
    ) -> (Decision, Option<&'static str>) {
        let uid = request.uid.clone();
        let skipped = |reason: &'static str| {
            self.metrics
                .skipped
                .get_or_create(&vec![("reason", reason.to_string())])
                .inc();
            (
                Decision {
                    review: allow_response(uid.clone(), None, Vec::new()),
                    verdicts: Verdicts::default(),
                    decision: "skipped",
                },
                Some(reason),
            )
        };
        let object = match (&request.object, request.operation.as_str()) {
            (_, "DELETE" | "CONNECT") | (None, _) => return skipped("operation"),
            (Some(object), _) => object,
        };
        let deleting = shortcuts::is_deleting(request);
        let extraction = match extract::extract(&request.kind.kind, object) {
            Ok(e) => e,
            Err(_) if deleting && shortcuts::pod_spec_unchanged(request) => {
                return skipped(Skip::Deleting.label());
            }
            Err(e) => {
                return (
                    self.relax_or_deny(uid, Verdicts::default(), vec![e.to_string()], request),
                    None,
                );
            }
        };
        if extraction.sites.is_empty() {
            return skipped("no_images");
        }
        if deleting && shortcuts::is_unchanged(request, &extraction) {
            return skipped(Skip::Deleting.label());
        }
        let namespace = request.namespace.as_deref().unwrap_or_default();
        let scoping = self.config.namespaced_validation;
        if scoping.enabled
            && shortcuts::namespace_out_of_scope(self.cluster.as_ref(), namespace, scoping.mode)
                .await
        {
            return skipped(Skip::Namespace.label());
        }
        if self.config.automatic_unchanged_approval.enabled
            && shortcuts::is_unchanged(request, &extraction)
        {
            return skipped(Skip::Unchanged.label());
        }
        let verdicts = judge(&extraction, request, &self.pool, self.limits, deadline).await;
        (self.conclude(request, webhook, verdicts, &extraction), None)
    }

    /// True when the object is a workload controller under `podsOnly`.
    fn relaxed_kind(&self, request: &AdmissionRequest) -> bool {
        self.config.resource_validation_mode == ResourceValidationMode::PodsOnly
            && !matches!(request.kind.kind.as_str(), "Pod" | "EphemeralContainers")
    }

    fn conclude(
        &self,
        request: &AdmissionRequest,
        webhook: WebhookKind,
        verdicts: Verdicts,
        extraction: &Extraction,
    ) -> Decision {
        let uid = request.uid.clone();
        if !verdicts.all_allowed() {
            let lines = verdicts.deny_lines();
            return self.relax_or_deny(uid, verdicts, lines, request);
        }
        if self.relaxed_kind(request) {
            let note = format!(
                "podsOnly: {} is not enforced or patched; its Pods are",
                request.kind.kind
            );
            return Decision {
                review: allow_response(uid, None, warnings([note])),
                verdicts,
                decision: "allowed",
            };
        }
        let patch = match webhook {
            WebhookKind::Mutate => patch_for(&verdicts, extraction),
            WebhookKind::Validate => None,
        };
        let notes = warnings(verdicts.warning_lines());
        Decision {
            review: allow_response(uid, patch, notes),
            verdicts,
            decision: "allowed",
        }
    }

    /// A denial, unless detection mode or `podsOnly` turns it into an allow
    /// with warnings (and never a patch).
    fn relax_or_deny(
        &self,
        uid: String,
        verdicts: Verdicts,
        lines: Vec<String>,
        request: &AdmissionRequest,
    ) -> Decision {
        if self.config.detection_mode {
            self.metrics
                .would_deny
                .get_or_create(&vec![("kind", request.kind.kind.clone())])
                .inc();
            tracing::warn!(uid = %uid, denials = %lines.join("; "), "detection mode: would deny");
            let notes = lines
                .into_iter()
                .map(|l| format!("detection mode, would deny: {l}"));
            return Decision {
                review: allow_response(uid, None, warnings(notes)),
                verdicts,
                decision: "would_deny",
            };
        }
        if self.relaxed_kind(request) {
            let notes = lines.into_iter().map(|l| {
                format!(
                    "podsOnly: not enforced on {}, its Pods would be denied: {l}",
                    request.kind.kind
                )
            });
            return Decision {
                review: allow_response(uid, None, warnings(notes)),
                verdicts,
                decision: "allowed",
            };
        }
        Decision {
            review: deny_response(uid, &lines),
            verdicts,
            decision: "denied",
        }
    }

    /// Sends the alerts for this decision; a failed synchronous delivery
    /// becomes (or joins) a denial.
    async fn alert(
        &self,
        request: &AdmissionRequest,
        decision: Decision,
        deadline: Instant,
    ) -> Decision {
        if decision.decision == "skipped" {
            return decision;
        }
        let rejected = matches!(decision.decision, "denied" | "would_deny");
        let event = if rejected { "reject" } else { "admit" };
        if !self.alerter.wants(event) {
            return decision;
        }
        let message = if rejected {
            decision.verdicts.deny_lines().join("\n")
        } else {
            format!(
                "admitted: {}",
                decision
                    .verdicts
                    .iter()
                    .map(|(i, _)| i.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let ctx = AlertContext {
            event,
            message,
            images: decision.verdicts.iter().map(|(i, _)| i.clone()).collect(),
            namespace: request.namespace.clone().unwrap_or_default(),
            kind: request.kind.kind.clone(),
            name: request.name.clone().unwrap_or_default(),
            cluster: self.alerter.cluster().to_string(),
            uid: request.uid.clone(),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            priority: 3,
        };
        match self.alerter.send(ctx, deadline).await {
            Ok(()) => decision,
            Err(e) => {
                let mut lines = if decision.review.response.allowed {
                    Vec::new()
                } else {
                    decision.verdicts.deny_lines()
                };
                lines.push(format!(
                    "ALERT_DELIVERY_FAILED: {e} (failIfAlertSendingFails is set)"
                ));
                Decision {
                    review: deny_response(request.uid.clone(), &lines),
                    verdicts: decision.verdicts,
                    decision: "denied",
                }
            }
        }
    }

    fn record(
        &self,
        request: &AdmissionRequest,
        webhook: WebhookKind,
        decision: &Decision,
        skip: Option<&'static str>,
        started: Instant,
    ) {
        let images = decision
            .verdicts
            .iter()
            .map(|(image, r)| {
                let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
                AuditImage {
                    image: image.clone(),
                    allowed: r.is_allowed(),
                    digest: opt(&r.digest),
                    reason: r.reason_text(),
                    source: r
                        .source()
                        .as_str_name()
                        .trim_start_matches("SOURCE_")
                        .to_ascii_lowercase(),
                    rule: opt(&r.rule),
                    validator: opt(&r.validator),
                }
            })
            .collect();
        self.audit.record(&AuditRecord {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            uid: request.uid.clone(),
            namespace: request.namespace.clone().unwrap_or_default(),
            kind: request.kind.kind.clone(),
            name: request.name.clone().unwrap_or_default(),
            operation: request.operation.clone(),
            endpoint: webhook.name(),
            allowed: decision.review.response.allowed,
            decision: decision.decision,
            skip_reason: skip,
            mode: AuditMode {
                detection: self.config.detection_mode,
                resource_validation: match self.config.resource_validation_mode {
                    ResourceValidationMode::All => "all",
                    ResourceValidationMode::PodsOnly => "podsOnly",
                },
            },
            images,
            warnings: decision.review.response.warnings.clone(),
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        });
    }
}
