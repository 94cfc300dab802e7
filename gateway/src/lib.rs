//! Portcullis gateway: the stateless HTTPS admission webhook.
//!
//! The request path: `http` (axum) → [`parse_review`] →
//! `admission::pipeline` (modes and shortcuts) → [`extract`] → the distinct
//! images fanned out through [`VerifierPool::verify`] under one deadline →
//! `admission::outcome` builds the deny message or the patch. The gateway
//! knows no cryptography. See ARCHITECTURE.md.
//!
//! The public surface is what the binary, the benches and the end-to-end
//! tests need; everything else is crate-private.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admission;
mod alerts;
mod audit;
mod cli;
mod cluster;
mod config;
mod discovery;
mod http;
mod memo;
mod metrics;
mod pool;
mod run;
mod tls;

pub use admission::extract::{ContainerKind, ExtractError, Extraction, ImageSite, extract};
pub use admission::review::{AdmissionRequest, GroupVersionKind};
pub use admission::{BadReview, parse_review};
pub use alerts::AlertSetupError;
pub use cli::Cli;
pub use config::ConfigError;
pub use discovery::{DnsError, TargetError};
pub use memo::MemoSettings;
pub use metrics::GatewayMetrics;
pub use pool::{Balance, PoolError, PoolSettings, VerifierPool};
pub use portcullis_shared::serving::TlsError;
pub use run::{StartError, run};
