//! Registry credentials from the workload's `imagePullSecrets`, read through
//! the Kubernetes API (opt-in: `serve --pull-secrets`). The gateway passes
//! the secret names and the namespace; the verifier reads the secrets
//! (`get` on secrets, nothing else) and uses their
//! `.dockerconfigjson`/`.dockercfg` credentials for the exact hosts they
//! name.
//!
//! Credentials never leave the verifier: they are kept in process only
//! (60 s), never written to Redis (verdicts carry none), and never logged
//! (`Credential`'s Debug hides the password). A secret that cannot be read
//! is skipped, so the registry's own answer (often 401) decides.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::config::cosign::parse_docker_config;
use crate::registry::Credentials;

pub(crate) use portcullis_shared::kube_client::KubeSettings;

/// Why a pull secret could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretError {
    /// The API did not answer in time.
    #[error("the API did not answer in time")]
    Timeout,
    /// The API refused or failed.
    #[error("kubernetes API: {0}")]
    Api(String),
    /// The secret holds no docker config.
    #[error("secret {0} has neither .dockerconfigjson nor .dockercfg")]
    NoDockerConfig(String),
    /// The docker config does not parse.
    #[error("{0}")]
    DockerConfig(String),
}

/// Reads and caches pull secrets.
#[derive(Clone)]
pub(crate) struct PullSecrets {
    client: kube::Client,
    cache: moka::future::Cache<String, Arc<Credentials>>,
}

impl std::fmt::Debug for PullSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullSecrets").finish_non_exhaustive()
    }
}

impl PullSecrets {
    /// Connects (lazily).
    pub(crate) async fn connect(
        settings: &KubeSettings,
    ) -> Result<Self, portcullis_shared::kube_client::KubeSetupError> {
        Ok(PullSecrets {
            client: portcullis_shared::kube_client::connect(settings).await?,
            cache: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        })
    }

    /// The credentials of `names` in `namespace`, merged (earlier secrets
    /// win for a host they share).
    pub(crate) async fn credentials(&self, namespace: &str, names: &[String]) -> Credentials {
        let mut out = Credentials::new();
        for name in names {
            let key = format!("{namespace}/{name}");
            let creds = match self.cache.get(&key).await {
                Some(c) => c,
                None => match self.read(namespace, name).await {
                    Ok(c) => {
                        let c = Arc::new(c);
                        self.cache.insert(key, c.clone()).await;
                        c
                    }
                    Err(e) => {
                        tracing::warn!(namespace, secret = %name, error = %e, "pull secret unreadable; skipped");
                        continue;
                    }
                },
            };
            for (host, credential) in creds.iter() {
                out.entry(host.clone())
                    .or_insert_with(|| credential.clone());
            }
        }
        out
    }

    async fn read(&self, namespace: &str, name: &str) -> Result<Credentials, SecretError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = tokio::time::timeout(Duration::from_secs(2), api.get(name))
            .await
            .map_err(|_| SecretError::Timeout)?
            .map_err(|e| SecretError::Api(e.to_string()))?;
        let data = secret.data.unwrap_or_default();
        let label = format!("secret {namespace}/{name}");
        if let Some(json) = data.get(".dockerconfigjson") {
            return parse_docker_config(&json.0, &label).map_err(SecretError::DockerConfig);
        }
        if let Some(legacy) = data.get(".dockercfg") {
            // The legacy format is the `auths` map itself.
            let wrapped = [b"{\"auths\":".as_slice(), &legacy.0, b"}"].concat();
            return parse_docker_config(&wrapped, &label).map_err(SecretError::DockerConfig);
        }
        Err(SecretError::NoDockerConfig(format!("{namespace}/{name}")))
    }
}
