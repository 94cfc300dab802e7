//! The verifier's config file: `validators:` and `policy:`, in the shape of
//! Connaisseur v3's application config.
//!
//! Loading is strict. Unknown keys, duplicate validator names, a rule naming
//! no existing validator, a `with` option the validator type does not know,
//! and duplicate patterns are all errors, each reported as
//! `FILE: FIELD: message`.

pub(crate) mod cosign;
pub(crate) mod k8s_keys;
mod load;
mod model;
pub(crate) mod notary;
pub(crate) mod notation;
mod notation_policy;
mod static_rule;

pub(crate) use cosign::cosign_selected_roots;
pub use load::{ConfigError, load_file, parse_str};
pub use model::Config;
pub(crate) use model::{ValidatorConfig, ValidatorKind};
