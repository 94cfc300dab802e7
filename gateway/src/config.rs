//! The gateway's config file (`--config FILE`, YAML): the operating modes
//! that decide whether a platform team can roll Portcullis out safely. Key
//! names follow Connaisseur v3 so that users can migrate.
//!
//! ```yaml
//! detectionMode: false                 # denies become allows with warnings
//! resourceValidationMode: all          # or podsOnly
//! namespacedValidation: {enabled: false, mode: ignore}   # or validate
//! automaticChildApproval: {enabled: true}
//! automaticUnchangedApproval: {enabled: true}
//! auditLog: {path: "-"}                # "-" is stdout; or a file
//! alerting:
//!   clusterIdentifier: prod-eu-1
//!   admitRequest: {receivers: [...]}
//!   rejectRequest: {receivers: [...]}
//! ```
//!
//! Loading is strict: unknown keys and contradictions are errors naming the
//! file and the field.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The validated gateway config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct GatewayConfig {
    /// Denies become allows with warnings, logged and counted as "would
    /// deny".
    #[serde(default)]
    pub(crate) detection_mode: bool,
    /// Which resources are enforced.
    #[serde(default)]
    pub(crate) resource_validation_mode: ResourceValidationMode,
    /// Namespace scoping by label.
    #[serde(default)]
    pub(crate) namespaced_validation: NamespacedValidation,
    /// Accepted for Connaisseur compatibility; it skips nothing. A child
    /// (a Pod or ReplicaSet created by its controller) is verified like any
    /// object: its owner's template says nothing about whether the owner
    /// was verified under enforcement, and the verification costs a
    /// verdict-cache hit when it was (see `admission::shortcuts`).
    #[serde(default)]
    pub(crate) automatic_child_approval: Toggle,
    /// Approve UPDATEs that change no image.
    #[serde(default)]
    pub(crate) automatic_unchanged_approval: Toggle,
    /// Where the audit log goes.
    #[serde(default)]
    pub(crate) audit_log: AuditLog,
    /// Alert receivers.
    #[serde(default)]
    pub(crate) alerting: Alerting,
}

/// Which resources are enforced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub(crate) enum ResourceValidationMode {
    /// Every kind the webhook sends.
    #[default]
    #[serde(rename = "all")]
    All,
    /// Only Pods; workload controllers are allowed with warnings, no patch.
    #[serde(rename = "podsOnly")]
    PodsOnly,
}

/// On/off switch with Connaisseur's shape (`{enabled: bool}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Toggle {
    /// Whether it is on.
    pub(crate) enabled: bool,
}

impl Default for Toggle {
    fn default() -> Self {
        Toggle { enabled: true }
    }
}

/// Namespace scoping by the label `portcullis.dev/webhook`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NamespacedValidation {
    /// Whether the gateway checks namespace labels itself (the webhook's
    /// namespaceSelector does it first).
    #[serde(default)]
    pub(crate) enabled: bool,
    /// `ignore`: skip namespaces labelled `ignore`; `validate`: enforce only
    /// namespaces labelled `validate`.
    #[serde(default)]
    pub(crate) mode: NamespaceMode,
}

/// How the namespace label is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub(crate) enum NamespaceMode {
    /// Enforce everywhere but in namespaces labelled `ignore`.
    #[default]
    #[serde(rename = "ignore")]
    Ignore,
    /// Enforce only in namespaces labelled `validate`.
    #[serde(rename = "validate")]
    Validate,
}

/// The namespace label key.
pub(crate) const NAMESPACE_LABEL: &str = "portcullis.dev/webhook";

/// Audit log destination.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditLog {
    /// `-` for stdout, a file path, or `""` to turn it off.
    pub(crate) path: String,
}

impl Default for AuditLog {
    fn default() -> Self {
        AuditLog {
            path: "-".to_string(),
        }
    }
}

/// Alerting, in Connaisseur's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Alerting {
    /// Names the cluster in alerts.
    #[serde(default)]
    pub(crate) cluster_identifier: String,
    /// Receivers notified when a request is admitted.
    #[serde(default)]
    pub(crate) admit_request: Option<Receivers>,
    /// Receivers notified when a request is rejected (or, in detection mode,
    /// would be).
    #[serde(default)]
    pub(crate) reject_request: Option<Receivers>,
}

/// A list of receivers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Receivers {
    /// The receivers.
    pub(crate) receivers: Vec<Receiver>,
}

/// One alert receiver.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Receiver {
    /// `slack`, `opsgenie`, `teams`, `generic`, or a path to a template
    /// file.
    pub(crate) template: String,
    /// Where to POST.
    pub(crate) receiver_url: String,
    /// Priority (1 highest … 5), a template variable.
    #[serde(default = "default_priority")]
    pub(crate) priority: u8,
    /// Extra headers, `Name: value`.
    #[serde(default)]
    pub(crate) custom_headers: Vec<String>,
    /// Extra top-level fields merged into the JSON payload.
    #[serde(default)]
    pub(crate) payload_fields: BTreeMap<String, serde_json::Value>,
    /// Deliver synchronously within the admission deadline, and deny the
    /// request when delivery fails.
    #[serde(default)]
    pub(crate) fail_if_alert_sending_fails: bool,
}

fn default_priority() -> u8 {
    3
}

pub use portcullis_shared::config_error::ConfigError;

/// Reads and validates a gateway config file.
pub(crate) fn load_file(path: &Path) -> Result<GatewayConfig, ConfigError> {
    let text = portcullis_shared::config_error::read_file(path)?;
    parse_str(&text, &path.display().to_string())
}

/// Validates config text; `file` labels errors.
pub(crate) fn parse_str(text: &str, file: &str) -> Result<GatewayConfig, ConfigError> {
    let err = |field: &str, message: String| ConfigError {
        file: file.to_string(),
        field: field.to_string(),
        message,
    };
    let config: GatewayConfig = if text.trim().is_empty() {
        GatewayConfig::default()
    } else {
        portcullis_shared::config_error::deserialize_at(
            serde_yaml_ng::Deserializer::from_str(text),
            "",
            file,
        )?
    };
    let lists = [
        ("alerting.admitRequest", &config.alerting.admit_request),
        ("alerting.rejectRequest", &config.alerting.reject_request),
    ];
    for (at, receivers) in lists {
        for (i, r) in receivers
            .iter()
            .flat_map(|r| r.receivers.iter())
            .enumerate()
        {
            let field = |f: &str| format!("{at}.receivers[{i}].{f}");
            url_ok(&r.receiver_url).map_err(|m| err(&field("receiverUrl"), m))?;
            if !(1..=5).contains(&r.priority) {
                return Err(err(&field("priority"), "must be between 1 and 5".into()));
            }
            for (j, h) in r.custom_headers.iter().enumerate() {
                if h.split_once(':')
                    .is_none_or(|(name, _)| name.trim().is_empty())
                {
                    return Err(err(
                        &format!("{}[{j}]", field("customHeaders")),
                        "expected `Name: value`".into(),
                    ));
                }
            }
            match r.template.as_str() {
                "slack" | "opsgenie" | "teams" | "generic" => {}
                path => {
                    std::fs::read_to_string(path).map_err(|e| {
                        err(
                            &field("template"),
                            format!("not a built-in template (slack, opsgenie, teams, generic) and not a readable file: {e}"),
                        )
                    })?;
                }
            }
            if r.fail_if_alert_sending_fails && config.detection_mode {
                return Err(err(
                    &field("failIfAlertSendingFails"),
                    "cannot be combined with detectionMode: detection mode never denies, so a failed alert could not deny either"
                        .into(),
                ));
            }
        }
    }
    if config.audit_log.path != "-" && !config.audit_log.path.is_empty() {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.audit_log.path)
            .map_err(|e| {
                err(
                    "auditLog.path",
                    format!("cannot open {}: {e}", config.audit_log.path),
                )
            })?;
    }
    Ok(config)
}

fn url_ok(s: &str) -> Result<(), String> {
    let scheme = s.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some("https" | "http") if s.len() > "https://".len() => Ok(()),
        _ => Err(format!("{s:?} is not an http(s) URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_full_config() {
        let c = parse_str("", "g.yaml").unwrap();
        assert!(!c.detection_mode);
        assert!(c.automatic_child_approval.enabled);
        assert!(c.automatic_unchanged_approval.enabled);
        assert_eq!(c.audit_log.path, "-");
        let c = parse_str(
            r#"
detectionMode: true
resourceValidationMode: podsOnly
namespacedValidation: {enabled: true, mode: validate}
automaticChildApproval: {enabled: false}
alerting:
  clusterIdentifier: prod
  rejectRequest:
    receivers:
      - {template: slack, receiverUrl: "https://hooks.example/x", priority: 1, customHeaders: ["X-Token: t"]}
"#,
            "g.yaml",
        )
        .unwrap();
        assert!(c.detection_mode);
        assert_eq!(c.resource_validation_mode, ResourceValidationMode::PodsOnly);
        assert_eq!(c.namespaced_validation.mode, NamespaceMode::Validate);
        assert!(!c.automatic_child_approval.enabled);
    }

    #[test]
    fn errors_name_file_and_field() {
        let e = parse_str("detectionMode: true\nfoo: 1\n", "g.yaml").unwrap_err();
        assert_eq!((e.file.as_str(), e.field.as_str()), ("g.yaml", "foo"));
        let e = parse_str("resourceValidationMode: some\n", "g.yaml").unwrap_err();
        assert_eq!(e.field, "resourceValidationMode");
        let e = parse_str(
            "detectionMode: true\nalerting:\n  rejectRequest:\n    receivers:\n      - {template: slack, receiverUrl: 'https://x/y', failIfAlertSendingFails: true}\n",
            "g.yaml",
        )
        .unwrap_err();
        assert_eq!(
            e.field,
            "alerting.rejectRequest.receivers[0].failIfAlertSendingFails"
        );
        let e = parse_str(
            "alerting:\n  admitRequest:\n    receivers:\n      - {template: /nonexistent/t.json, receiverUrl: 'https://x/y'}\n",
            "g.yaml",
        )
        .unwrap_err();
        assert_eq!(e.field, "alerting.admitRequest.receivers[0].template");
        let e = parse_str(
            "alerting:\n  admitRequest:\n    receivers:\n      - {template: slack, receiverUrl: 'ftp://x'}\n",
            "g.yaml",
        )
        .unwrap_err();
        assert_eq!(e.field, "alerting.admitRequest.receivers[0].receiverUrl");
    }
}
