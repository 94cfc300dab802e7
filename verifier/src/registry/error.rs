//! Registry failures, split into transient and definitive ones.

/// Why a registry request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RegistryError {
    /// 401/403 after authenticating (or a token endpoint refusing us).
    #[error("registry {host} refused our credentials")]
    AuthFailed {
        /// The registry host.
        host: String,
    },
    /// 5xx, 429 or another unexpected status: may go away on retry.
    #[error("registry {host} answered HTTP {status}")]
    Status {
        /// The registry host.
        host: String,
        /// The HTTP status.
        status: u16,
    },
    /// Connection refused/reset, TLS failure, DNS failure.
    #[error("registry {host} unreachable: {reason}")]
    Connect {
        /// The registry host.
        host: String,
        /// What failed.
        reason: String,
    },
    /// The host's circuit is open after repeated transient failures
    /// (`registry/guard.rs`); not asked at all.
    #[error("registry {host} failed repeatedly; not asked for a moment (circuit open)")]
    CircuitOpen {
        /// The registry host.
        host: String,
    },
    /// No answer in time.
    #[error("registry {host} did not answer in time")]
    Timeout {
        /// The registry host.
        host: String,
    },
    /// The registry sent something that is not what we asked for (bad
    /// digest, oversized or unparsable body).
    #[error("registry {host} sent invalid data: {reason}")]
    Invalid {
        /// The registry host.
        host: String,
        /// What is wrong.
        reason: String,
    },
}

impl RegistryError {
    /// True for failures that may go away on retry (5xx, 429, timeouts,
    /// connection errors). These are never cached as verdicts.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            RegistryError::Status { status, .. } => {
                *status == 429 || *status >= 500 || *status == 408
            }
            RegistryError::Connect { .. }
            | RegistryError::Timeout { .. }
            | RegistryError::CircuitOpen { .. } => true,
            RegistryError::AuthFailed { .. } | RegistryError::Invalid { .. } => false,
        }
    }

    /// The `host, status` detail for reason codes.
    pub(crate) fn detail(&self) -> String {
        match self {
            RegistryError::AuthFailed { host } => host.clone(),
            RegistryError::Status { host, status } => format!("{host}, {status}"),
            RegistryError::Connect { host, .. } => format!("{host}, connection failed"),
            RegistryError::Timeout { host } => format!("{host}, timeout"),
            RegistryError::CircuitOpen { host } => format!("{host}, circuit open"),
            RegistryError::Invalid { host, .. } => format!("{host}, invalid response"),
        }
    }
}
