//! The audit log: one JSON line per admission decision, to stdout or a
//! file, written by a background task so that a slow disk never delays
//! admission. This is what a security team greps after an incident.
//!
//! Schema (every field always present; `null` where unknown):
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `time` | string | RFC 3339 time of the decision |
//! | `uid` | string | AdmissionReview request uid |
//! | `namespace`, `kind`, `name`, `operation` | string | the object |
//! | `endpoint` | string | `mutate` or `validate` |
//! | `allowed` | bool | the answer sent to the API server |
//! | `decision` | string | `allowed`, `denied`, `would_deny` (detection mode), or `skipped` |
//! | `skip_reason` | string/null | why nothing was verified: `deleting`, `unchanged`, `namespace`, `no_images`, `operation` |
//! | `mode` | object | `{"detection": bool, "resource_validation": "all"/"podsOnly"}` |
//! | `images` | array | per image: `image`, `allowed`, `digest`, `reason`, `source` (`fresh`, `cache_l1`, `cache_l2`, `coalesced`, `stale`, `gateway`, `gateway_memo`), `rule`, `validator` |
//! | `warnings` | array of string | warnings sent with the answer |
//! | `latency_ms` | number | time to decide |

use std::io::Write;

use serde::Serialize;

/// One image's line in the audit record.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct AuditImage {
    /// The image as written.
    pub(crate) image: String,
    /// Its verdict.
    pub(crate) allowed: bool,
    /// The verified digest, or null.
    pub(crate) digest: Option<String>,
    /// `CODE (detail)`.
    pub(crate) reason: String,
    /// Where the verdict came from.
    pub(crate) source: String,
    /// The matched rule, or null.
    pub(crate) rule: Option<String>,
    /// The validator, or null.
    pub(crate) validator: Option<String>,
}

/// The modes in force.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct AuditMode {
    /// Detection mode.
    pub(crate) detection: bool,
    /// `all` or `podsOnly`.
    pub(crate) resource_validation: &'static str,
}

/// One admission decision.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct AuditRecord {
    /// RFC 3339.
    pub(crate) time: String,
    /// Request uid.
    pub(crate) uid: String,
    /// Namespace.
    pub(crate) namespace: String,
    /// Kind.
    pub(crate) kind: String,
    /// Name.
    pub(crate) name: String,
    /// CREATE, UPDATE, ...
    pub(crate) operation: String,
    /// `mutate` or `validate`.
    pub(crate) endpoint: &'static str,
    /// The answer.
    pub(crate) allowed: bool,
    /// `allowed`, `denied`, `would_deny`, `skipped`.
    pub(crate) decision: &'static str,
    /// Why verification was skipped, if it was.
    pub(crate) skip_reason: Option<&'static str>,
    /// Modes.
    pub(crate) mode: AuditMode,
    /// Per image.
    pub(crate) images: Vec<AuditImage>,
    /// Warnings returned.
    pub(crate) warnings: Vec<String>,
    /// Decision latency.
    pub(crate) latency_ms: f64,
}

/// Where audit lines go.
#[derive(Debug, Clone)]
pub(crate) struct AuditLog {
    tx: Option<tokio::sync::mpsc::Sender<String>>,
}

impl AuditLog {
    /// `-` is stdout, `""` is off, anything else a file (appended).
    pub(crate) fn open(path: &str) -> std::io::Result<Self> {
        if path.is_empty() {
            return Ok(AuditLog { tx: None });
        }
        let sink: Box<dyn Write + Send> = if path == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )
        };
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, sink);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4096);
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || {
                // Write what is queued, then flush once: one write per
                // batch rather than per decision under load, and every
                // line out as soon as the queue drains.
                while let Some(line) = rx.blocking_recv() {
                    let _ = writeln!(out, "{line}");
                    while let Ok(more) = rx.try_recv() {
                        let _ = writeln!(out, "{more}");
                    }
                    // A failed write is dropped; senders never block.
                    let _ = out.flush();
                }
            })?;
        Ok(AuditLog { tx: Some(tx) })
    }

    /// Records one decision (dropped, with a warning, if the writer is far
    /// behind).
    pub(crate) fn record(&self, record: &AuditRecord) {
        let Some(tx) = &self.tx else {
            return;
        };
        match serde_json::to_string(record) {
            Ok(line) => {
                if tx.try_send(line).is_err() {
                    tracing::warn!(uid = %record.uid, "audit log writer is behind; a record was dropped");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode an audit record"),
        }
    }
}
