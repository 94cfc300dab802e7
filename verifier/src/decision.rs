//! The decision path shared by the gRPC service and the `verify` command:
//! parse the reference, match the policy rule, call the rule's validator
//! (behind its cache layer). No validator is named here: every scheme is a
//! [`Validator`], built and held by name in [`Validators`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use portcullis_proto::{Reason, Source, Verdict, VerifyResponse};
use sha2::{Digest as _, Sha256};

use crate::cache::Caches;
use crate::config::Config;
use crate::error::VerifyError;
use crate::metrics::VerifierMetrics;
use crate::policy::{Mode, Policy, Rule};
use crate::pull_secrets::PullSecrets;
use crate::reference::ImageRef;
use crate::validators::{BuildEnv, BuildError, Call, Validator, Validators, WorkloadCredentials};
use crate::verdict::{Judgement, Reuse, Verified};

/// The policy and validators, built once from the config.
#[derive(Debug)]
pub struct Engine {
    policy: Policy,
    validators: Validators,
    caches: Arc<Caches>,
    pull_secrets: Option<PullSecrets>,
    /// This build's policy epoch (random; see `lease.rs`).
    epoch: u64,
}

/// Who asks: the workload's namespace and `imagePullSecrets` names (used
/// only with `--pull-secrets`).
#[derive(Debug, Clone, Default)]
pub struct Workload {
    /// The namespace.
    pub namespace: String,
    /// The names of the workload's image pull secrets.
    pub pull_secrets: Vec<String>,
}

/// The engine being served, swappable while serving (a refresh of
/// `k8s://` trust-root keys builds a new one: `secret_keys`).
pub type SharedEngine = Arc<arc_swap::ArcSwap<Engine>>;

/// Wraps `engine` for the gRPC server (`serve`).
pub fn shared(engine: Engine) -> SharedEngine {
    Arc::new(arc_swap::ArcSwap::from_pointee(engine))
}

/// The outcome of deciding on one image.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The parsed reference, if it parsed.
    pub image: Option<ImageRef>,
    /// The matched rule, if any.
    pub rule: Option<Arc<Rule>>,
    /// Allowed (with what was verified) or denied (with why).
    pub(crate) result: Result<Verified, VerifyError>,
    /// Where the answer came from.
    pub source: Source,
    /// How long the answer may be reused as it stands.
    pub(crate) reuse: Reuse,
}

impl Engine {
    /// Builds the engine from a validated config, over `caches`.
    pub async fn new(config: Config, caches: Arc<Caches>) -> Result<Self, BuildError> {
        let metrics: VerifierMetrics = caches.metrics.clone();
        let env = BuildEnv {
            metrics: &metrics,
            caches: &caches,
        };
        Ok(Engine {
            validators: Validators::build_all(&config.validators, &env).await?,
            policy: config.policy,
            caches,
            pull_secrets: None,
            epoch: random_epoch(),
        })
    }

    /// The policy epoch this engine answers under: drawn at random when it
    /// is built, so a rebuilt policy (or a restarted process) never shares
    /// one with the engine it replaces.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Reads workloads' pull secrets for registry credentials.
    pub(crate) fn with_pull_secrets(mut self, pull_secrets: PullSecrets) -> Self {
        self.pull_secrets = Some(pull_secrets);
        self
    }

    /// The caches.
    pub fn caches(&self) -> &Arc<Caches> {
        &self.caches
    }

    /// The verdict-cache key under which `rule`'s verdict for `digest` is
    /// stored (`None` for validators whose verdicts are not cached).
    pub fn verdict_cache_key(&self, rule: &Rule, digest: &str) -> Option<String> {
        self.validators
            .get(&rule.validator)?
            .verdict_key(rule, digest)
    }

    /// Decides on one image as written in a manifest, finishing before
    /// `deadline` where it can (the caller enforces it).
    pub async fn decide(
        &self,
        written: &str,
        now: DateTime<Utc>,
        deadline: tokio::time::Instant,
        workload: &Workload,
    ) -> Outcome {
        let image = match ImageRef::parse(written) {
            Ok(image) => image,
            Err(e) => return Outcome::early(None, VerifyError::from(e)),
        };
        let credentials = self.workload_credentials(workload).await;
        let call = Call {
            now,
            deadline,
            workload: credentials.as_ref(),
        };
        let (rule, rule_reuse) = match self.select_rule(&image, &call).await {
            Ok(selected) => selected,
            Err(e) => return Outcome::early(Some(image), e),
        };
        let Some(validator) = self.validators.get(&rule.validator) else {
            // The loader guarantees every rule names a validator.
            let e = VerifyError::Internal(format!("validator `{}` is not built", rule.validator));
            return Outcome::early(Some(image), e);
        };
        let (judgement, tag_reuse) = match validator.resolve_expiring(&image, &call).await {
            Ok((digest, tag_reuse)) => (
                validator
                    .verify(&image, digest.as_deref(), rule, &call)
                    .await,
                tag_reuse,
            ),
            Err(e) => (Judgement::fresh(Err(e)), Reuse::Never),
        };
        // The answer holds no longer than the tag resolutions it rests on
        // and the time the verdict itself holds until.
        let held = match &judgement.result {
            Ok(v) => v.valid_until.map_or(Reuse::WhilePolicyHolds, |t| {
                Reuse::Until(u64::try_from(t.timestamp_millis()).unwrap_or(0))
            }),
            Err(_) => Reuse::Never,
        };
        Outcome {
            rule: Some(rule.clone()),
            image: Some(image),
            result: judgement.result,
            source: judgement.source,
            reuse: judgement.reuse.min(rule_reuse).min(tag_reuse).min(held),
        }
    }

    /// The workload's registry credentials (with `--pull-secrets` and
    /// secrets named), with its identity for cache keys: a hash of the
    /// namespace and the secret names.
    async fn workload_credentials(&self, workload: &Workload) -> Option<WorkloadCredentials> {
        let ps = self.pull_secrets.as_ref()?;
        if workload.pull_secrets.is_empty() {
            return None;
        }
        let credentials = ps
            .credentials(&workload.namespace, &workload.pull_secrets)
            .await;
        if credentials.is_empty() {
            return None;
        }
        let mut h = Sha256::new();
        h.update(b"portcullis.workload-credentials.v1\0");
        h.update(workload.namespace.as_bytes());
        let mut names = workload.pull_secrets.clone();
        names.sort();
        for name in names {
            h.update(b"\0");
            h.update(name.as_bytes());
        }
        Some(WorkloadCredentials {
            credentials,
            identity: hex::encode(h.finalize()),
        })
    }

    /// The rule for `image`. A tag next to a digest (`repo:tag@digest`)
    /// means nothing to the runtime, which pulls the digest: it may choose
    /// the rule only when that rule is the one the digest alone
    /// (`repo@digest`) would get anyway, or when it is confirmed to name
    /// this digest now: by the rule's validator itself (it binds tags to
    /// digests through signed data, as Notary does) or by the registry (the
    /// validator resolves the tag, through the tag cache, to this digest).
    /// Otherwise the reference is matched as `repo@digest`.
    /// Also says how long the choice holds: until the tag resolution it
    /// rests on expires, if one decided it.
    async fn select_rule(
        &self,
        image: &ImageRef,
        call: &Call<'_>,
    ) -> Result<(&Arc<Rule>, Reuse), VerifyError> {
        let normalized = image.to_string();
        let by_written = self.policy.matching_rule(&normalized);
        let (Some(tag), Some(digest)) = (image.tag(), image.digest()) else {
            return by_written
                .map(|r| (r, Reuse::WhilePolicyHolds))
                .ok_or(VerifyError::NoMatchingRule(normalized));
        };
        let digest_form = format!("{}@{digest}", image.name());
        let by_digest = self.policy.matching_rule(&digest_form);
        let tag_rule = match (by_written, by_digest) {
            (Some(w), Some(d)) if Arc::ptr_eq(w, d) => return Ok((w, Reuse::WhilePolicyHolds)),
            (Some(w), _) => w,
            (None, d) => {
                return d
                    .map(|r| (r, Reuse::WhilePolicyHolds))
                    .ok_or(VerifyError::NoMatchingRule(digest_form));
            }
        };
        let (confirmed, reuse) = match self.validators.get(&tag_rule.validator) {
            Some(v) if v.binds_tags() => (true, Reuse::WhilePolicyHolds),
            Some(v) => match v.resolve_expiring(&image.without_digest(), call).await {
                Ok((resolved, reuse)) => (resolved.as_deref() == Some(digest), reuse),
                Err(e) => {
                    tracing::info!(image = %image, error = %e, "cannot confirm the tag; matching by digest");
                    (false, Reuse::Never)
                }
            },
            None => (false, Reuse::Never),
        };
        if confirmed {
            return Ok((tag_rule, reuse));
        }
        tracing::info!(image = %image, tag, "the tag is not confirmed to name this digest; matching by digest");
        by_digest
            .map(|r| (r, reuse))
            .ok_or(VerifyError::NoMatchingRule(digest_form))
    }
}

/// A random epoch; should the system's random source fail, the clock in
/// nanoseconds mixed with the process id, which differs between builds
/// just as well.
fn random_epoch() -> u64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_ok() {
        return u64::from_le_bytes(bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

impl Outcome {
    /// A denial decided before any validator answered (not reusable).
    pub(crate) fn early(image: Option<ImageRef>, error: VerifyError) -> Self {
        Outcome {
            image,
            rule: None,
            result: Err(error),
            source: Source::Fresh,
            reuse: Reuse::Never,
        }
    }

    /// For how long (milliseconds from now) the gateway may answer this
    /// exact request with this answer: only an enforced allow with nothing
    /// to show (no warnings, not audit-only, not stale), and no longer than
    /// [`Reuse`] says. `u32::MAX` for "while the policy holds" (the gateway
    /// caps it).
    pub(crate) fn reuse_ms(&self, now_ms: u64) -> u32 {
        let Ok(v) = &self.result else { return 0 };
        let reusable_kind = matches!(v.reason, Reason::Verified | Reason::StaticAllow);
        if !reusable_kind || !v.warnings.is_empty() || self.source == Source::Stale {
            return 0;
        }
        match self.reuse {
            Reuse::Never => 0,
            Reuse::WhilePolicyHolds => u32::MAX,
            Reuse::Until(t) => u32::try_from(t.saturating_sub(now_ms)).unwrap_or(u32::MAX - 1),
        }
    }

    /// True when the image is allowed.
    pub fn allowed(&self) -> bool {
        self.result.is_ok()
    }

    /// The verified digest, if any.
    pub fn digest(&self) -> Option<&str> {
        self.result.as_ref().ok().and_then(|v| v.digest.as_deref())
    }

    /// The pinned reference (`host/repo[:tag]@digest`), if a digest was verified.
    pub fn pinned_reference(&self) -> Option<String> {
        Some(self.image.as_ref()?.pinned(self.digest()?))
    }

    /// The reason code.
    pub fn reason(&self) -> Reason {
        match &self.result {
            Ok(v) => v.reason,
            Err(e) => e.reason(),
        }
    }

    /// The human message.
    pub fn message(&self) -> String {
        match &self.result {
            Ok(v) => v.message.clone(),
            Err(e) => e.to_string(),
        }
    }

    /// Converts to the wire response.
    pub fn to_response(&self) -> VerifyResponse {
        let (verdict, detail, transient) = match &self.result {
            Ok(_) => (Verdict::Allowed, String::new(), false),
            Err(e) => (Verdict::Denied, e.detail(), e.is_transient()),
        };
        VerifyResponse {
            verdict: verdict as i32,
            digest: self.digest().unwrap_or_default().to_string(),
            reference: self.pinned_reference().unwrap_or_default(),
            rule: self
                .rule
                .as_ref()
                .map(|r| r.pattern.written().to_string())
                .unwrap_or_default(),
            validator: self
                .rule
                .as_ref()
                .map(|r| r.validator.clone())
                .unwrap_or_default(),
            reason: self.reason() as i32,
            reason_detail: detail,
            message: self.message(),
            source: self.source as i32,
            transient,
            pin: self
                .rule
                .as_ref()
                .is_some_and(|r| r.options.mode == Mode::Mutate),
            normalized: self
                .image
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            warnings: self
                .result
                .as_ref()
                .map(|v| v.warnings.clone())
                .unwrap_or_default(),
            epoch: 0,
            reuse_ms: self.reuse_ms(u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    async fn engine() -> Engine {
        Engine::new(
            parse_str(
                r#"
validators:
  - {name: allow, type: static, approve: true}
  - {name: deny, type: static, approve: false}
policy:
  - {pattern: "docker.io/library/*:*", validator: allow}
  - {pattern: "docker.io/library/bad:*", validator: deny}
"#,
                "t.yaml",
            )
            .unwrap(),
            Arc::new(Caches::local()),
        )
        .await
        .unwrap()
    }

    fn soon() -> tokio::time::Instant {
        tokio::time::Instant::now() + std::time::Duration::from_secs(5)
    }

    #[tokio::test]
    async fn static_allow_has_no_digest() {
        let o = engine()
            .await
            .decide("nginx:1.25", Utc::now(), soon(), &Workload::default())
            .await;
        assert!(o.allowed());
        let r = o.to_response();
        assert_eq!(r.reason(), Reason::StaticAllow);
        assert_eq!(r.digest, "");
        assert_eq!(r.reference, "");
        assert_eq!(r.rule, "docker.io/library/*:*");
        assert_eq!(r.validator, "allow");
        assert_eq!(r.normalized, "docker.io/library/nginx:1.25");
    }

    #[tokio::test]
    async fn static_deny_names_rule() {
        let r = engine()
            .await
            .decide("bad:1", Utc::now(), soon(), &Workload::default())
            .await
            .to_response();
        assert_eq!(r.reason(), Reason::StaticDeny);
        assert!(
            r.message.contains("docker.io/library/bad:*"),
            "{}",
            r.message
        );
        assert!(!r.is_allowed());
        assert!(!r.transient);
    }

    #[tokio::test]
    async fn no_rule_and_invalid() {
        let r = engine()
            .await
            .decide("quay.io/x/y:1", Utc::now(), soon(), &Workload::default())
            .await
            .to_response();
        assert_eq!(r.reason(), Reason::NoMatchingRule);
        let r = engine()
            .await
            .decide("Not Valid", Utc::now(), soon(), &Workload::default())
            .await
            .to_response();
        assert_eq!(r.reason(), Reason::InvalidReference);
        assert_eq!(r.normalized, "");
    }
}
