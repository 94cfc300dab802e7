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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::config::cosign::parse_docker_config;
use crate::registry::Credentials;

/// How to reach the API server.
#[derive(Debug, Clone, Default)]
pub(crate) struct KubeSettings {
    /// API server URL; `None`: in-cluster service account or kubeconfig.
    pub(crate) api_url: Option<String>,
    /// CA bundle (PEM) for `api_url`.
    pub(crate) ca: Option<PathBuf>,
    /// Bearer token file for `api_url`.
    pub(crate) token_file: Option<PathBuf>,
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
    pub(crate) async fn connect(settings: &KubeSettings) -> Result<Self, String> {
        let config = match &settings.api_url {
            Some(url) => {
                let uri = url
                    .parse()
                    .map_err(|e| format!("--kube-api-url {url}: {e}"))?;
                let mut config = kube::Config::new(uri);
                if let Some(ca) = &settings.ca {
                    let pem = std::fs::read(ca)
                        .map_err(|e| format!("--kube-ca {}: {e}", ca.display()))?;
                    let certs = pem::parse_many(&pem)
                        .map_err(|e| format!("--kube-ca {}: {e}", ca.display()))?
                        .into_iter()
                        .map(|p| p.contents().to_vec())
                        .collect();
                    config.root_cert = Some(certs);
                }
                if let Some(token) = &settings.token_file {
                    config.auth_info.token_file = Some(token.display().to_string());
                }
                config
            }
            None => kube::Config::infer().await.map_err(|e| e.to_string())?,
        };
        Ok(PullSecrets {
            client: kube::Client::try_from(config).map_err(|e| e.to_string())?,
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

    async fn read(&self, namespace: &str, name: &str) -> Result<Credentials, String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = tokio::time::timeout(Duration::from_secs(2), api.get(name))
            .await
            .map_err(|_| "the API did not answer in time".to_string())?
            .map_err(|e| e.to_string())?;
        let data = secret.data.unwrap_or_default();
        let label = format!("secret {namespace}/{name}");
        if let Some(json) = data.get(".dockerconfigjson") {
            return parse_docker_config(&json.0, &label);
        }
        if let Some(legacy) = data.get(".dockercfg") {
            // The legacy format is the `auths` map itself.
            let wrapped = [b"{\"auths\":".as_slice(), &legacy.0, b"}"].concat();
            return parse_docker_config(&wrapped, &label);
        }
        Err(format!(
            "{label} has neither .dockerconfigjson nor .dockercfg"
        ))
    }
}
