//! Portcullis verifier: matches an image against the image policy, runs the
//! validator the matching rule names, and answers over gRPC.
//!
//! The request path: `service` (gRPC) → [`Engine::decide`] →
//! [`ImageRef::parse`] → [`Policy::matching_rule`] → the rule's validator
//! behind its cache layer (`validators`) → [`Outcome::to_response`]. See
//! ARCHITECTURE.md for the layering of the modules.
//!
//! The public surface is what the binary, the benches and the end-to-end
//! tests need: the engine, config parsing, the server, the CLI and the
//! shared-cache primitives. Everything else is crate-private.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "bench-internals")]
pub mod bench_internals;
mod bundle_verify;
mod cache;
mod cli;
mod config;
mod decision;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod lease;
mod metrics;
mod migrate;
mod policy;
mod pull_secrets;
mod reference;
mod registry;
mod secret_keys;
mod server;
mod service;
mod tls;
mod validators;
mod verdict;

pub use bundle_verify::{SigstoreCommand, VerifyBundleArgs, run_sigstore};
pub use cache::redis::{L2, L2Error, Lease, RedisSettings};
pub use cache::seal;
pub use cache::{CachedVerdict, Caches, Computed, Sizing, Tiered, Ttls, verdict_key};
pub use cli::{
    CacheArgs, Cli, Command, MigrateArgs, ServeArgs, StartError, VerifyArgs, run_migrate,
    run_serve, run_verify,
};
pub use config::{Config, ConfigError, load_file, parse_str};
pub use decision::{Engine, Outcome, SharedEngine, Workload, shared};
pub use lease::Leases;
pub use metrics::VerifierMetrics;
pub use policy::{
    AttestationRequirement, Mode, Pattern, PatternError, Policy, PolicyError, Rule, RuleOptions,
    VerificationLevel, VerifyTimestamp,
};
pub use reference::{ImageRef, ReferenceError};
pub use server::serve;
pub use tls::{Reloading, TlsError, TlsFiles};
pub use validators::BuildError;
