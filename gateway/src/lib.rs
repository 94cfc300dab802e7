//! Portcullis gateway: the stateless HTTPS admission webhook.
//!
//! The request path: [`http`] (axum) → [`admission::parse_review`] →
//! [`admission::extract::extract`] → [`admission::decide`] fans the distinct
//! images out through [`pool::VerifierPool::verify`] under one deadline →
//! [`admission::outcome::Verdicts`] builds the deny message or the patch.
//! The gateway knows no cryptography.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod alerts;
pub mod audit;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod discovery;
pub mod http;
pub mod metrics;
pub mod pool;
pub mod run;
pub mod tls;
