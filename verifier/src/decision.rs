//! The decision path shared by the gRPC service and the `verify` command:
//! parse the reference, match the policy, run the validator.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use portcullis_proto::{Reason, Source, Verdict, VerifyResponse};

use crate::cache::{CachedVerdict, Caches, verdict_key};
use crate::config::{Config, Mode};
use crate::error::VerifyError;
use crate::policy::{Policy, Rule};
use crate::pull_secrets::PullSecrets;
use crate::reference::ImageRef;
use crate::validators::cosign::{CosignValidator, Credentials};
use crate::validators::{BuildError, Request, Validator, Validators, Verified};

/// The policy and validators, built once from the config.
#[derive(Debug)]
pub struct Engine {
    policy: Policy,
    validators: Validators,
    caches: Arc<Caches>,
    pull_secrets: Option<PullSecrets>,
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

/// The outcome of deciding on one image.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The parsed reference, if it parsed.
    pub image: Option<ImageRef>,
    /// The matched rule, if any.
    pub rule: Option<Arc<Rule>>,
    /// Allowed (with what was verified) or denied (with why).
    pub result: Result<Verified, VerifyError>,
    /// Where the answer came from.
    pub source: Source,
}

impl Engine {
    /// Builds the engine from a validated config, over `caches`.
    pub async fn new(config: Config, caches: Arc<Caches>) -> Result<Self, BuildError> {
        Ok(Engine {
            validators: Validators::from_configs(&config.validators, &caches.metrics).await?,
            policy: config.policy,
            caches,
            pull_secrets: None,
        })
    }

    /// Reads workloads' pull secrets for registry credentials.
    pub fn with_pull_secrets(mut self, pull_secrets: PullSecrets) -> Self {
        self.pull_secrets = Some(pull_secrets);
        self
    }

    /// The caches.
    pub fn caches(&self) -> &Arc<Caches> {
        &self.caches
    }

    /// The verdict-cache key under which a cosign `rule`'s verdict for
    /// `digest` is stored (`None` for rules of other validators, whose
    /// verdicts are not cached).
    pub fn verdict_cache_key(&self, rule: &Rule, digest: &str) -> Option<String> {
        match self.validators.get(&rule.validator) {
            Some(Validator::Cosign(cosign)) => Some(cosign_verdict_key(cosign, rule, digest)),
            _ => None,
        }
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
        let normalized = image.to_string();
        let Some(rule) = self.policy.matching_rule(&normalized) else {
            return Outcome::early(Some(image), VerifyError::NoMatchingRule(normalized));
        };
        let Some(validator) = self.validators.get(&rule.validator) else {
            // The loader guarantees every rule names a validator.
            let e = VerifyError::Internal(format!("validator `{}` is not built", rule.validator));
            return Outcome::early(Some(image), e);
        };
        let request = Request {
            image: &image,
            rule,
            options: &rule.options,
            now,
        };
        let (result, source) = match validator {
            Validator::Cosign(cosign) => {
                let credentials = match &self.pull_secrets {
                    Some(ps) if !workload.pull_secrets.is_empty() => Some(
                        ps.credentials(&workload.namespace, &workload.pull_secrets)
                            .await,
                    ),
                    _ => None,
                };
                self.cosign_cached(cosign, &image, rule, deadline, credentials.as_ref())
                    .await
            }
            other => (
                other
                    .validate(&rule.validator, request, &self.caches, deadline)
                    .await,
                Source::Fresh,
            ),
        };
        Outcome {
            rule: Some(rule.clone()),
            image: Some(image),
            result,
            source,
        }
    }

    /// Cosign through the caches: tag → digest (short TTL), then the verdict
    /// keyed by the rule fingerprint and the digest. Transient failures are
    /// returned, never cached.
    async fn cosign_cached(
        &self,
        cosign: &CosignValidator,
        image: &ImageRef,
        rule: &Rule,
        deadline: tokio::time::Instant,
        credentials: Option<&Credentials>,
    ) -> (Result<Verified, VerifyError>, Source) {
        let ttls = self.caches.ttls;
        let digest = match (image.digest(), image.tag()) {
            (Some(d), _) => d.to_string(),
            (None, tag) => {
                let key = format!("{}:{}", image.name(), tag.unwrap_or("latest"));
                let resolved = self
                    .caches
                    .tags
                    .get_or_compute(&key, deadline, || async {
                        cosign
                            .resolve(image, credentials)
                            .await
                            .map(|d| (d, ttls.tag))
                    })
                    .await;
                match resolved {
                    Ok((digest, _)) => digest,
                    Err(e) => return (Err((*e).clone()), Source::Fresh),
                }
            }
        };
        let key = cosign_verdict_key(cosign, rule, &digest);
        let verdict = self
            .caches
            .verdicts
            .get_or_compute(&key, deadline, || async {
                let result = cosign
                    .verify_digest(image, &digest, &rule.options, credentials)
                    .await;
                match CachedVerdict::from_result(&result) {
                    Some(v) => {
                        let ttl = if v.allowed {
                            ttls.verdict
                        } else {
                            ttls.negative
                        };
                        Ok((v, ttl))
                    }
                    None => Err(result.err().unwrap_or(VerifyError::Internal(
                        "transient failure without error".into(),
                    ))),
                }
            })
            .await;
        match verdict {
            Ok((v, source)) => (v.into_result(), source),
            Err(e) => (Err((*e).clone()), Source::Fresh),
        }
    }
}

impl Outcome {
    fn early(image: Option<ImageRef>, error: VerifyError) -> Self {
        Outcome {
            image,
            rule: None,
            result: Err(error),
            source: Source::Fresh,
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
        }
    }
}

/// The verdict-cache key of a cosign verdict: the rule, the validator's
/// loaded trust material and the digest.
fn cosign_verdict_key(cosign: &CosignValidator, rule: &Rule, digest: &str) -> String {
    verdict_key(&cosign.verdict_fingerprint(&rule.fingerprint), digest)
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
