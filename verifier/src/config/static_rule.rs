//! `type: static`: a fixed allow (`approve: true`) or deny.

use serde::Deserialize;

use super::model::{RuleOptionsCheck, ValidatorKind};
use crate::policy::RuleOptions;
use portcullis_shared::config_error::{ConfigError, deserialize_at};

/// The validated `static` config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StaticSpec {
    /// `approve: true` allows, `false` denies.
    pub(crate) approve: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatic {
    name: String,
    #[serde(rename = "type")]
    _type: String,
    approve: bool,
}

/// Parses a `type: static` entry (at `at` of `file`).
pub(crate) fn parse(
    value: serde_yaml_ng::Value,
    at: &str,
    file: &str,
) -> Result<(String, ValidatorKind), ConfigError> {
    let raw: RawStatic = deserialize_at(value, at, file)?;
    Ok((
        raw.name,
        ValidatorKind::Static(StaticSpec {
            approve: raw.approve,
        }),
    ))
}

impl RuleOptionsCheck for StaticSpec {
    fn type_name(&self) -> &'static str {
        "static"
    }

    fn options(&self) -> &'static [&'static str] {
        &[]
    }

    fn check_rule(&self, _options: &RuleOptions) -> Result<(), (String, String)> {
        Ok(())
    }
}
