//! The HTTPS endpoints: `POST /mutate`, `POST /validate`, `GET /healthz`,
//! `GET /readyz` and `GET /metrics`.
//!
//! Bad input never gets a 5xx: a wrong method is 405, a wrong content type
//! 415, an oversized body 413, and a malformed review 400 with a message.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use crate::admission::{self, WebhookKind};
use crate::metrics::{GatewayMetrics, render};

/// What the handlers share.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    /// The admission pipeline (verifiers, modes, alerts, audit).
    pub(crate) admission: Arc<crate::admission::pipeline::Admission>,
    /// The largest accepted body, in bytes.
    pub(crate) body_limit: usize,
    /// How long a request body may take to arrive (then 408): a client that
    /// trickles its body never holds a handler longer than this.
    pub(crate) body_timeout: std::time::Duration,
    /// Metrics handles.
    pub(crate) metrics: GatewayMetrics,
    /// The registry rendered at /metrics.
    pub(crate) registry: Arc<Registry>,
}

/// The router of the plain-HTTP probe listener (`--probe-listen`): health,
/// readiness and metrics, never the webhooks.
pub(crate) fn probe_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Builds the router of the webhook listener.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn mutate(State(state): State<AppState>, request: Request) -> Response {
    handle(state, WebhookKind::Mutate, request).await
}

async fn validate(State(state): State<AppState>, request: Request) -> Response {
    handle(state, WebhookKind::Validate, request).await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.admission.pool.any_healthy() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no verifier answers its health check\n",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state.registry),
    )
        .into_response()
}

fn plain_error(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message + "\n",
    )
        .into_response()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<bytes::Bytes, Response> {
    let too_large = || {
        plain_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let Ok(read) = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await else {
        return Err(plain_error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} ms",
                timeout.as_millis()
            ),
        ));
    };
    match read {
        Ok(bytes) => Ok(bytes),
        Err(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return Err(too_large());
                }
                source = err.source();
            }
            Err(plain_error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            ))
        }
    }
}

async fn handle(state: AppState, webhook: WebhookKind, request: Request) -> Response {
    let started = Instant::now();
    let endpoint = webhook.name();
    let count = |result: &str| {
        state
            .metrics
            .admissions
            .get_or_create(&vec![
                ("endpoint", endpoint.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
    };
    let (parts, body) = request.into_parts();
    if !is_json(&parts.headers) {
        count("bad_request");
        return plain_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content type must be application/json".to_string(),
        );
    }
    let body = match read_body(body, &parts.headers, state.body_limit, state.body_timeout).await {
        Ok(b) => b,
        Err(response) => {
            count("bad_request");
            return response;
        }
    };
    let request = match admission::parse_review(&body) {
        Ok(r) => r,
        Err(e) => {
            count("bad_request");
            return plain_error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let kind = request.kind.kind.clone();
    let namespace = request.namespace.clone().unwrap_or_default();
    let name = request.name.clone().unwrap_or_default();
    let operation = request.operation.clone();
    let decision = state.admission.decide(request, webhook, started).await;
    let allowed = decision.review.response.allowed;
    count(if allowed { "allowed" } else { "denied" });
    for (_, r) in decision.verdicts.iter() {
        state
            .metrics
            .image_verdicts
            .get_or_create(&vec![(
                "reason",
                portcullis_proto::reason_code(r.reason()).to_string(),
            )])
            .inc();
    }
    let elapsed = started.elapsed();
    state
        .metrics
        .admission_duration
        .get_or_create(&vec![("endpoint", endpoint.to_string())])
        .observe(elapsed.as_secs_f64());
    // Every decision is in the audit log; this line is for debugging.
    tracing::debug!(
        uid = %decision.review.response.uid,
        endpoint,
        kind = %kind,
        namespace = %namespace,
        name = %name,
        operation = %operation,
        allowed,
        images = %decision
            .verdicts
            .iter()
            .map(|(i, r)| admission::verdict_summary(i, r))
            .collect::<Vec<_>>()
            .join("; "),
        elapsed_us = elapsed.as_micros() as u64,
        "admission"
    );
    match serde_json::to_vec(&decision.review) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        // Serialising plain structs cannot fail; if it ever did, the API
        // server treats a 500 as a webhook failure (failurePolicy: Fail).
        Err(e) => plain_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the response: {e}"),
        ),
    }
}
