//! A verifier and a gateway started with a gateway config file and an audit
//! log, for the end-to-end tests of the gateway's modes and shortcuts.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::procs::{Gateway, GatewayOptions, Verifier};
use crate::review::Review;

/// A running verifier + gateway pair.
pub struct ModeStack {
    _verifier: Verifier,
    /// The gateway.
    pub gw: Gateway,
    audit: PathBuf,
    _dir: tempfile::TempDir,
}

impl ModeStack {
    /// A verifier with `policy` (verifier YAML) and a gateway with `config`
    /// (gateway YAML; an audit log is added) and `extra` flags.
    pub async fn start(policy: &str, config: &str, extra: Vec<String>) -> Self {
        Self::start_with(policy, config, extra, &[]).await
    }

    /// [`ModeStack::start`], with extra verifier flags.
    pub async fn start_with(
        policy: &str,
        config: &str,
        extra: Vec<String>,
        verifier_args: &[&str],
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let audit = dir.path().join("audit.jsonl");
        let config_path = dir.path().join("gateway.yaml");
        std::fs::write(
            &config_path,
            format!("{config}\nauditLog: {{path: {}}}\n", audit.display()),
        )
        .expect("write gateway config");
        let verifier = Verifier::start(policy, verifier_args);
        let mut args = vec!["--config".to_string(), config_path.display().to_string()];
        args.extend(extra);
        let gw = Gateway::start(GatewayOptions {
            verifiers: vec![verifier.url()],
            args,
            wait_ready: true,
            ..Default::default()
        })
        .await;
        ModeStack {
            _verifier: verifier,
            gw,
            audit,
            _dir: dir,
        }
    }

    /// POSTs `review` to `/mutate`; the answer must be HTTP 200.
    pub async fn mutate(&self, review: &Review) -> Value {
        let (status, body) = self.gw.post_json("/mutate", &review.json).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The audit records so far, once there are at least `at_least` (the
    /// writer is asynchronous; gives up after 5 s and returns what is there).
    pub async fn audit(&self, at_least: usize) -> Vec<Value> {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let records = self.records();
            if records.len() >= at_least || Instant::now() > end {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The audit record of the review with `uid` (waits up to 5 s for it).
    pub async fn audit_of(&self, uid: &str) -> Value {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(record) = self.records().into_iter().find(|r| r["uid"] == uid) {
                return record;
            }
            assert!(Instant::now() < end, "no audit record for {uid}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit JSON"))
            .collect()
    }
}
