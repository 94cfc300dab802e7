//! Prometheus metrics of the gateway, rendered at `GET /metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label pairs.
pub(crate) type Labels = Vec<(&'static str, String)>;

/// Every gateway metric. Cloning shares the underlying values.
#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    /// `portcullis_admissions_total{endpoint, result}`: result is
    /// `allowed`, `denied` or `bad_request`.
    pub admissions: Family<Labels, Counter>,
    /// `portcullis_admission_duration_seconds{endpoint}`.
    pub admission_duration: Family<Labels, Histogram>,
    /// `portcullis_image_verdicts_total{reason}`.
    pub image_verdicts: Family<Labels, Counter>,
    /// `portcullis_verifier_calls_total{verifier, outcome}`: outcome is
    /// `ok`, `error`, `timeout` or `overloaded`.
    pub verifier_calls: Family<Labels, Counter>,
    /// `portcullis_verifier_retries_total{verifier}`: calls retried on the
    /// next verifier after this one failed.
    pub verifier_retries: Family<Labels, Counter>,
    /// `portcullis_verifier_healthy{verifier}`: 1 when healthy.
    pub verifier_healthy: Family<Labels, Gauge>,
    /// `portcullis_verifier_endpoints`: how many endpoints are known.
    pub verifier_endpoints: Gauge,
    /// `portcullis_tls_reloads_total{what}`.
    pub tls_reloads: Family<Labels, Counter>,
    /// `portcullis_would_deny_total{endpoint}`: denials turned into allows by
    /// detection mode.
    pub would_deny: Family<Labels, Counter>,
    /// `portcullis_skipped_total{reason}`: admissions allowed without
    /// verification (deleting, unchanged, namespace, no_images, operation).
    pub skipped: Family<Labels, Counter>,
    /// `portcullis_alerts_total{event, result}`: `sent`, `failed`, `dropped`.
    pub alerts: Family<Labels, Counter>,
    /// `portcullis_memo_hits_total`: images answered from the memo of
    /// verifier allows, without a call.
    pub memo_hits: Counter,
    /// `portcullis_memo_stored_total`: verifier allows remembered.
    pub memo_stored: Counter,
    /// `portcullis_memo_cleared_total`: times a verifier's remembered
    /// allows were dropped (its epoch changed, its lease was lost).
    pub memo_cleared: Counter,
}

fn duration_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

impl GatewayMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = GatewayMetrics {
            admissions: Family::default(),
            admission_duration: Family::new_with_constructor(duration_histogram),
            image_verdicts: Family::default(),
            verifier_calls: Family::default(),
            verifier_retries: Family::default(),
            verifier_healthy: Family::default(),
            verifier_endpoints: Gauge::default(),
            tls_reloads: Family::default(),
            would_deny: Family::default(),
            skipped: Family::default(),
            alerts: Family::default(),
            memo_hits: Counter::default(),
            memo_stored: Counter::default(),
            memo_cleared: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("portcullis");
        r.register(
            "admissions",
            "Admission requests by endpoint and result",
            m.admissions.clone(),
        );
        r.register(
            "admission_duration_seconds",
            "Time to answer an admission request",
            m.admission_duration.clone(),
        );
        r.register(
            "image_verdicts",
            "Per-image verdicts by reason code",
            m.image_verdicts.clone(),
        );
        r.register(
            "verifier_calls",
            "Verify calls by verifier and outcome",
            m.verifier_calls.clone(),
        );
        r.register(
            "verifier_retries",
            "Verify calls retried on another verifier",
            m.verifier_retries.clone(),
        );
        r.register(
            "verifier_healthy",
            "1 when the verifier answers its health check",
            m.verifier_healthy.clone(),
        );
        r.register(
            "verifier_endpoints",
            "Known verifier endpoints",
            m.verifier_endpoints.clone(),
        );
        r.register(
            "tls_reloads",
            "Certificate reloads from disk",
            m.tls_reloads.clone(),
        );
        r.register(
            "would_deny",
            "Denials allowed by detection mode",
            m.would_deny.clone(),
        );
        r.register(
            "skipped",
            "Admissions allowed without verification, by reason",
            m.skipped.clone(),
        );
        r.register(
            "alerts",
            "Alert deliveries by event and result",
            m.alerts.clone(),
        );
        r.register(
            "memo_hits",
            "Images answered from the memo of verifier allows",
            m.memo_hits.clone(),
        );
        r.register(
            "memo_stored",
            "Verifier allows remembered in the memo",
            m.memo_stored.clone(),
        );
        r.register(
            "memo_cleared",
            "Times a verifier's remembered allows were dropped",
            m.memo_cleared.clone(),
        );
        m
    }
}

/// Renders a registry in the Prometheus text format.
pub(crate) fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}
