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
use sha2::{Digest as _, Sha256};

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
        let credentials = match &self.pull_secrets {
            Some(ps) if !workload.pull_secrets.is_empty() => Some(
                ps.credentials(&workload.namespace, &workload.pull_secrets)
                    .await,
            ),
            _ => None,
        };
        let scope = CredentialScope::new(workload, credentials.as_ref());
        let rule = match self.select_rule(&image, deadline, &scope).await {
            Ok(rule) => rule,
            Err(e) => return Outcome::early(Some(image), e),
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
                self.cosign_cached(cosign, &image, rule, deadline, &scope)
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

    /// The rule for `image`. A tag next to a digest (`repo:tag@digest`)
    /// means nothing to the runtime, which pulls the digest: it may choose
    /// the rule only when that rule is the one the digest alone
    /// (`repo@digest`) would get anyway, or when it is confirmed to name
    /// this digest now: by the registry (the tag resolves to it, through the
    /// tag cache, for cosign rules) or by the rule's own signed data (a
    /// Notary rule denies a tag whose signed digest differs). Otherwise the
    /// reference is matched as `repo@digest`.
    async fn select_rule(
        &self,
        image: &ImageRef,
        deadline: tokio::time::Instant,
        scope: &CredentialScope<'_>,
    ) -> Result<&Arc<Rule>, VerifyError> {
        let normalized = image.to_string();
        let by_written = self.policy.matching_rule(&normalized);
        let (Some(tag), Some(digest)) = (image.tag(), image.digest()) else {
            return by_written.ok_or(VerifyError::NoMatchingRule(normalized));
        };
        let digest_form = format!("{}@{digest}", image.name());
        let by_digest = self.policy.matching_rule(&digest_form);
        let tag_rule = match (by_written, by_digest) {
            (Some(w), Some(d)) if Arc::ptr_eq(w, d) => return Ok(w),
            (Some(w), _) => w,
            (None, d) => return d.ok_or(VerifyError::NoMatchingRule(digest_form)),
        };
        let confirmed = match self.validators.get(&tag_rule.validator) {
            Some(Validator::Notary(_)) => true,
            Some(Validator::Cosign(cosign)) => {
                let tagged = image.without_digest();
                match self
                    .resolve_tag_cached(cosign, &tagged, deadline, scope)
                    .await
                {
                    Ok(resolved) => resolved == digest,
                    Err(e) => {
                        tracing::info!(image = %image, error = %e, "cannot confirm the tag; matching by digest");
                        false
                    }
                }
            }
            _ => false,
        };
        if confirmed {
            return Ok(tag_rule);
        }
        tracing::info!(image = %image, tag, "the tag is not confirmed to name this digest; matching by digest");
        by_digest.ok_or(VerifyError::NoMatchingRule(digest_form))
    }

    /// The digest `image`'s tag resolves to, through the tag cache.
    async fn resolve_tag_cached(
        &self,
        cosign: &CosignValidator,
        image: &ImageRef,
        deadline: tokio::time::Instant,
        scope: &CredentialScope<'_>,
    ) -> Result<String, VerifyError> {
        let ttl = self.caches.ttls.tag;
        let key = scope.key(
            cosign,
            image,
            format!("{}:{}", image.name(), image.tag().unwrap_or("latest")),
        );
        self.caches
            .tags
            .get_or_compute(&key, deadline, || async {
                cosign
                    .resolve(image, scope.credentials)
                    .await
                    .map(|d| (d, ttl))
            })
            .await
            .map(|(digest, _)| digest)
            .map_err(|e| (*e).clone())
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
        scope: &CredentialScope<'_>,
    ) -> (Result<Verified, VerifyError>, Source) {
        let ttls = self.caches.ttls;
        let digest = match image.digest() {
            Some(d) => d.to_string(),
            None => match self
                .resolve_tag_cached(cosign, image, deadline, scope)
                .await
            {
                Ok(digest) => digest,
                Err(e) => return (Err(e), Source::Fresh),
            },
        };
        let key = scope.key(cosign, image, cosign_verdict_key(cosign, rule, &digest));
        let verdict = self
            .caches
            .verdicts
            .get_or_compute(&key, deadline, || async {
                let result = cosign
                    .verify_digest(image, &digest, &rule.options, scope.credentials)
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

/// Whose registry credentials a lookup runs with. Verdicts and tag
/// resolutions made with a workload's pull-secret credentials (what they
/// allow, and above all what they deny: a 401 for a tenant without access)
/// are cached under that workload's identity (namespace and secret names),
/// never under the key other tenants read, so one tenant can neither keep
/// another's private image denied nor borrow its access.
struct CredentialScope<'a> {
    credentials: Option<&'a Credentials>,
    identity: String,
}

impl<'a> CredentialScope<'a> {
    fn new(workload: &Workload, credentials: Option<&'a Credentials>) -> Self {
        let identity = match credentials {
            Some(c) if !c.is_empty() => {
                let mut h = Sha256::new();
                h.update(b"portcullis.workload-credentials.v1\0");
                h.update(workload.namespace.as_bytes());
                let mut names = workload.pull_secrets.clone();
                names.sort();
                for name in names {
                    h.update(b"\0");
                    h.update(name.as_bytes());
                }
                hex::encode(h.finalize())
            }
            _ => String::new(),
        };
        CredentialScope {
            credentials,
            identity,
        }
    }

    /// `base` for lookups whose registry requests carry the workload's
    /// credentials (the validator has none of its own for the image's
    /// host), `base` scoped to the workload's identity; otherwise `base`.
    fn key(&self, cosign: &CosignValidator, image: &ImageRef, base: String) -> String {
        match self.credentials {
            Some(c) if cosign.would_use_workload_credential(image.registry(), c) => {
                format!("{base}|workload:{}", self.identity)
            }
            _ => base,
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
