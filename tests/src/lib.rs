//! Test harness for Portcullis end-to-end tests.
//!
//! Everything here starts real processes on 127.0.0.1: the
//! `portcullis-gateway` and `portcullis-verifier` binaries (built by
//! `cargo build --workspace` before the tests run), and, in later suites, a
//! real registry, Notary and Redis. Each process is killed when its handle
//! is dropped.

#![forbid(unsafe_code)]

pub mod certs;
pub mod config;
pub mod dns;
pub mod fake_kube;
pub mod faults;
pub mod mode_stack;
pub mod notary;
pub mod procs;
pub mod receiver;
pub mod redis;
pub mod registry;
pub mod review;
pub mod rogue;
pub mod signer;
pub mod static_files;
pub mod static_registry;
pub mod stub;
pub mod tuf;
pub mod verdicts;

pub use certs::TestCa;
pub use procs::{Gateway, GatewayOptions, Verifier, bin_path, free_port, verify_json};
pub use review::{Review, pod_spec};
