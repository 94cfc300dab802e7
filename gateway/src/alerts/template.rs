//! Alert payloads: built-in templates for Slack, Opsgenie, Microsoft Teams
//! and a generic webhook, and custom templates from files.
//!
//! A custom template is JSON text with `{{variable}}` placeholders; each is
//! replaced by the variable's value JSON-escaped (without quotes), so a
//! placeholder inside a JSON string stays valid JSON. Variables: `event`
//! (`admit` or `reject`), `message`, `images`, `namespace`, `kind`, `name`,
//! `cluster`, `uid`, `timestamp`, `priority`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// What an alert is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AlertContext {
    /// `admit` or `reject`.
    pub(crate) event: &'static str,
    /// A one-paragraph summary (the deny lines, or "admitted").
    pub(crate) message: String,
    /// The images of the request.
    pub(crate) images: Vec<String>,
    /// The namespace.
    pub(crate) namespace: String,
    /// The object's kind.
    pub(crate) kind: String,
    /// The object's name.
    pub(crate) name: String,
    /// The cluster identifier.
    pub(crate) cluster: String,
    /// The admission uid.
    pub(crate) uid: String,
    /// RFC 3339 time of the decision.
    pub(crate) timestamp: String,
    /// 1 (highest) … 5.
    pub(crate) priority: u8,
}

impl AlertContext {
    fn variables(&self) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("event", self.event.to_string()),
            ("message", self.message.clone()),
            ("images", self.images.join(", ")),
            ("namespace", self.namespace.clone()),
            ("kind", self.kind.clone()),
            ("name", self.name.clone()),
            ("cluster", self.cluster.clone()),
            ("uid", self.uid.clone()),
            ("timestamp", self.timestamp.clone()),
            ("priority", self.priority.to_string()),
        ])
    }

    fn title(&self) -> String {
        let verb = if self.event == "reject" {
            "rejected"
        } else {
            "admitted"
        };
        format!(
            "Portcullis {verb} {} {}/{} on {}",
            self.kind, self.namespace, self.name, self.cluster
        )
    }
}

/// A template: built-in or the text of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Template {
    /// Slack incoming webhook.
    Slack,
    /// Opsgenie Alert API.
    Opsgenie,
    /// Microsoft Teams incoming webhook (MessageCard).
    Teams,
    /// A plain JSON document with every variable.
    Generic,
    /// A custom template's text.
    Custom(String),
}

/// Why a template cannot be loaded or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TemplateError {
    /// The custom template file cannot be read.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The rendered custom template is not JSON.
    #[error("the rendered template is not JSON: {0}")]
    NotJson(String),
}

impl Template {
    /// The template named in the config (built-in name, else a file path).
    pub(crate) fn load(name: &str) -> Result<Self, TemplateError> {
        Ok(match name {
            "slack" => Template::Slack,
            "opsgenie" => Template::Opsgenie,
            "teams" => Template::Teams,
            "generic" => Template::Generic,
            path => Template::Custom(std::fs::read_to_string(path).map_err(|e| {
                TemplateError::Read {
                    path: path.to_string(),
                    message: e.to_string(),
                }
            })?),
        })
    }

    /// Renders the payload, then merges `extra` top-level fields.
    pub(crate) fn render(
        &self,
        ctx: &AlertContext,
        extra: &BTreeMap<String, Value>,
    ) -> Result<Value, TemplateError> {
        let mut payload = match self {
            Template::Slack => json!({
                "text": format!("*{}*\n{}", ctx.title(), ctx.message),
            }),
            Template::Opsgenie => json!({
                "message": ctx.title(),
                "description": ctx.message,
                "priority": format!("P{}", ctx.priority),
                "tags": ["portcullis", ctx.event, ctx.cluster],
                "details": {
                    "images": ctx.images.join(", "),
                    "namespace": ctx.namespace,
                    "uid": ctx.uid,
                    "timestamp": ctx.timestamp,
                },
            }),
            Template::Teams => json!({
                "@type": "MessageCard",
                "@context": "http://schema.org/extensions",
                "summary": ctx.title(),
                "title": ctx.title(),
                "themeColor": if ctx.event == "reject" { "d13438" } else { "2eb886" },
                "text": ctx.message,
            }),
            Template::Generic => json!({
                "event": ctx.event,
                "message": ctx.message,
                "images": ctx.images,
                "namespace": ctx.namespace,
                "kind": ctx.kind,
                "name": ctx.name,
                "cluster": ctx.cluster,
                "uid": ctx.uid,
                "timestamp": ctx.timestamp,
                "priority": ctx.priority,
            }),
            Template::Custom(text) => {
                let mut out = text.clone();
                for (name, value) in ctx.variables() {
                    // A string always serialises.
                    let escaped = serde_json::to_string(&value).unwrap_or_else(|_| "\"\"".into());
                    let inner = &escaped[1..escaped.len() - 1];
                    out = out.replace(&format!("{{{{{name}}}}}"), inner);
                }
                serde_json::from_str(&out).map_err(|e| TemplateError::NotJson(e.to_string()))?
            }
        };
        if let Value::Object(map) = &mut payload {
            for (k, v) in extra {
                map.insert(k.clone(), v.clone());
            }
        }
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> AlertContext {
        AlertContext {
            event: "reject",
            message: "evil:1: STATIC_DENY: \"quoted\"".into(),
            images: vec!["evil:1".into(), "nginx".into()],
            namespace: "team-a".into(),
            kind: "Pod".into(),
            name: "p".into(),
            cluster: "prod".into(),
            uid: "u-1".into(),
            timestamp: "2026-11-24T00:00:00Z".into(),
            priority: 2,
        }
    }

    #[test]
    fn builtins() {
        let v = Template::Slack.render(&ctx(), &BTreeMap::new()).unwrap();
        assert!(
            v["text"]
                .as_str()
                .unwrap()
                .contains("rejected Pod team-a/p on prod")
        );
        let v = Template::Opsgenie.render(&ctx(), &BTreeMap::new()).unwrap();
        assert_eq!(v["priority"], "P2");
        let v = Template::Teams.render(&ctx(), &BTreeMap::new()).unwrap();
        assert_eq!(v["@type"], "MessageCard");
        let extra = BTreeMap::from([("responders".to_string(), json!([{"type": "team"}]))]);
        let v = Template::Generic.render(&ctx(), &extra).unwrap();
        assert_eq!(v["images"], json!(["evil:1", "nginx"]));
        assert_eq!(v["responders"][0]["type"], "team");
    }

    #[test]
    fn custom_templates_escape_values() {
        let t = Template::Custom(
            r#"{"m": "{{message}}", "who": "{{namespace}}/{{name}}", "p": {{priority}}}"#.into(),
        );
        let v = t.render(&ctx(), &BTreeMap::new()).unwrap();
        assert_eq!(v["m"], "evil:1: STATIC_DENY: \"quoted\"");
        assert_eq!(v["who"], "team-a/p");
        assert_eq!(v["p"], 2);
        let broken = Template::Custom("{not json {{uid}}".into());
        assert!(broken.render(&ctx(), &BTreeMap::new()).is_err());
    }
}
