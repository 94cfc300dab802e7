//! Alert delivery: on admit and/or reject events, POST a JSON payload to
//! each configured receiver.
//!
//! Delivery is asynchronous, with a bounded timeout (3 s) and a bounded
//! number of deliveries in flight (64; beyond that, alerts are dropped and
//! counted), so a slow receiver never delays admission. A receiver with
//! `failIfAlertSendingFails` is delivered synchronously within the
//! admission deadline instead, and a failed delivery turns the decision
//! into a deny that says so.

pub(crate) mod template;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::{Alerting, Receiver};
use crate::metrics::GatewayMetrics;
use template::{AlertContext, Template, TemplateError};

/// How long one delivery may take when asynchronous.
const ASYNC_TIMEOUT: Duration = Duration::from_secs(3);
/// Deliveries in flight at most.
const MAX_IN_FLIGHT: usize = 64;

/// A receiver, ready to send.
#[derive(Debug, Clone)]
struct Ready {
    config: Receiver,
    template: Template,
}

/// Sends alerts.
#[derive(Debug, Clone)]
pub(crate) struct Alerter {
    cluster: String,
    admit: Arc<Vec<Ready>>,
    reject: Arc<Vec<Ready>>,
    http: reqwest::Client,
    in_flight: Arc<Semaphore>,
    metrics: GatewayMetrics,
}

/// A synchronous delivery that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alert to {url} failed: {reason}")]
pub(crate) struct DeliveryError {
    /// The receiver URL.
    pub(crate) url: String,
    /// Why.
    pub(crate) reason: Failure,
}

/// Why one delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Failure {
    /// The payload could not be rendered.
    #[error("{0}")]
    Render(#[from] TemplateError),
    /// The receiver could not be reached.
    #[error("{0}")]
    Transport(String),
    /// The receiver answered with an error status.
    #[error("HTTP {0}")]
    Status(u16),
    /// No answer before the admission deadline (synchronous receivers).
    #[error("no answer before the admission deadline")]
    Deadline,
    /// No answer in time (asynchronous receivers).
    #[error("timed out")]
    Timeout,
}

/// Why the alerter cannot be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum AlertSetupError {
    /// A receiver's template.
    #[error("{0}")]
    Template(String),
    /// The HTTP client.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

impl Alerter {
    /// Builds the alerter from the config (templates were checked at load).
    pub(crate) fn new(config: &Alerting, metrics: GatewayMetrics) -> Result<Self, AlertSetupError> {
        let ready =
            |list: &Option<crate::config::Receivers>| -> Result<Vec<Ready>, AlertSetupError> {
                list.iter()
                    .flat_map(|r| r.receivers.iter())
                    .map(|r| {
                        Ok(Ready {
                            template: Template::load(&r.template)
                                .map_err(|e| AlertSetupError::Template(e.to_string()))?,
                            config: r.clone(),
                        })
                    })
                    .collect()
            };
        Ok(Alerter {
            cluster: config.cluster_identifier.clone(),
            admit: Arc::new(ready(&config.admit_request)?),
            reject: Arc::new(ready(&config.reject_request)?),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .build()
                .map_err(|e| AlertSetupError::Http(e.to_string()))?,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            metrics,
        })
    }

    /// The cluster identifier, for contexts.
    pub(crate) fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Whether any receiver listens for `event`.
    pub(crate) fn wants(&self, event: &str) -> bool {
        !self.receivers(event).is_empty()
    }

    fn receivers(&self, event: &str) -> &[Ready] {
        if event == "reject" {
            &self.reject
        } else {
            &self.admit
        }
    }

    /// Sends `ctx` (priority is set per receiver): synchronous receivers are
    /// awaited until `deadline`; the others are sent in the background.
    /// Returns the first synchronous failure.
    pub(crate) async fn send(
        &self,
        ctx: AlertContext,
        deadline: Instant,
    ) -> Result<(), DeliveryError> {
        let mut first_error = None;
        for receiver in self.receivers(ctx.event) {
            let mut ctx = ctx.clone();
            ctx.priority = receiver.config.priority;
            if receiver.config.fail_if_alert_sending_fails {
                let timeout = deadline.saturating_duration_since(Instant::now());
                let result = tokio::time::timeout(timeout, deliver(&self.http, receiver, &ctx))
                    .await
                    .unwrap_or(Err(Failure::Deadline));
                self.count(ctx.event, &result);
                if let Err(reason) = result
                    && first_error.is_none()
                {
                    first_error = Some(DeliveryError {
                        url: receiver.config.receiver_url.clone(),
                        reason,
                    });
                }
            } else {
                let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                    tracing::warn!(receiver = %receiver.config.receiver_url, "too many alerts in flight; dropped one");
                    self.metrics
                        .alerts
                        .get_or_create(&vec![
                            ("event", ctx.event.to_string()),
                            ("result", "dropped".to_string()),
                        ])
                        .inc();
                    continue;
                };
                let http = self.http.clone();
                let receiver = receiver.clone();
                let this = self.clone();
                tokio::spawn(async move {
                    let result =
                        tokio::time::timeout(ASYNC_TIMEOUT, deliver(&http, &receiver, &ctx))
                            .await
                            .unwrap_or(Err(Failure::Timeout));
                    if let Err(e) = &result {
                        tracing::warn!(receiver = %receiver.config.receiver_url, error = %e, "alert delivery failed");
                    }
                    this.count(ctx.event, &result);
                    drop(permit);
                });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn count(&self, event: &str, result: &Result<(), Failure>) {
        self.metrics
            .alerts
            .get_or_create(&vec![
                ("event", event.to_string()),
                (
                    "result",
                    if result.is_ok() { "sent" } else { "failed" }.to_string(),
                ),
            ])
            .inc();
    }
}

async fn deliver(
    http: &reqwest::Client,
    receiver: &Ready,
    ctx: &AlertContext,
) -> Result<(), Failure> {
    let payload = receiver
        .template
        .render(ctx, &receiver.config.payload_fields)?;
    let mut request = http.post(&receiver.config.receiver_url).json(&payload);
    for header in &receiver.config.custom_headers {
        if let Some((name, value)) = header.split_once(':') {
            request = request.header(name.trim(), value.trim());
        }
    }
    let response = request
        .send()
        .await
        .map_err(|e| Failure::Transport(e.to_string()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(Failure::Status(response.status().as_u16()))
    }
}
