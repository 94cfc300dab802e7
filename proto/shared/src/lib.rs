//! What the two Portcullis binaries share besides the gRPC contract
//! (`portcullis-proto`). The gateway must not depend on the verifier (it
//! would pull in the cryptography), and the verifier has no business with
//! the gateway, so the code both need lives here, one concern per module:
//!
//! * [`startup`]: logging, the runtime, the shutdown signal, exit codes;
//! * [`config_error`]: the `FILE: FIELD: message` config error and the
//!   strict deserialisation that produces it;
//! * [`serving`]: a rustls server config from certificate, key and an
//!   optional client CA (mTLS), with errors naming the option and file;
//! * [`watch`]: the loop that notices rotated certificate files;
//! * [`kube_client`]: a Kubernetes client from a URL, CA and token file, or
//!   the in-cluster / kubeconfig defaults.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config_error;
pub mod kube_client;
pub mod serving;
pub mod startup;
pub mod watch;
