//! Portcullis verifier: matches an image against the image policy, runs the
//! validator the matching rule names, and answers over gRPC.
//!
//! The request path: [`service`] (gRPC) → [`decision::Engine::decide`] →
//! [`reference::ImageRef::parse`] → [`policy::Policy::matching_rule`] →
//! [`validators::Validator::validate`] → [`decision::Outcome::to_response`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod cli;
pub mod config;
pub mod decision;
pub mod error;
pub mod metrics;
pub mod policy;
pub mod pull_secrets;
pub mod reference;
pub mod registry;
pub mod server;
pub mod service;
pub mod tls;
pub mod validators;
pub mod verdict;
