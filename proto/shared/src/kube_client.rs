//! A Kubernetes API client: from an explicit URL (with an optional CA bundle
//! and bearer-token file, reloaded by kube when it changes), or the
//! in-cluster service account / kubeconfig. Nothing is requested here.

use std::path::PathBuf;

/// How to reach the API server.
#[derive(Debug, Clone, Default)]
pub struct KubeSettings {
    /// The API server URL; `None` means in-cluster (service account) or
    /// kubeconfig discovery.
    pub api_url: Option<String>,
    /// CA bundle (PEM) of the API server, with `api_url`.
    pub ca: Option<PathBuf>,
    /// Bearer token file, with `api_url`.
    pub token_file: Option<PathBuf>,
}

/// Why no client could be made, naming the option at fault.
#[derive(Debug, thiserror::Error)]
pub enum KubeSetupError {
    /// `--kube-api-url` is not a URL.
    #[error("--kube-api-url {url}: {message}")]
    Url {
        /// The URL given.
        url: String,
        /// Why.
        message: String,
    },
    /// `--kube-ca` cannot be read or parsed.
    #[error("--kube-ca {path}: {message}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// No in-cluster or kubeconfig settings, or kube refused them.
    #[error("kubernetes client: {0}")]
    Client(String),
}

/// Makes the client.
pub async fn connect(settings: &KubeSettings) -> Result<kube::Client, KubeSetupError> {
    let config = match &settings.api_url {
        Some(url) => {
            let uri = url.parse::<http::Uri>().map_err(|e| KubeSetupError::Url {
                url: url.clone(),
                message: e.to_string(),
            })?;
            let mut config = kube::Config::new(uri);
            if let Some(ca) = &settings.ca {
                let ca_err = |message: String| KubeSetupError::Ca {
                    path: ca.display().to_string(),
                    message,
                };
                let pem = std::fs::read(ca).map_err(|e| ca_err(e.to_string()))?;
                let certs: Vec<Vec<u8>> = pem::parse_many(&pem)
                    .map_err(|e| ca_err(e.to_string()))?
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
        None => kube::Config::infer()
            .await
            .map_err(|e| KubeSetupError::Client(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(|e| KubeSetupError::Client(e.to_string()))
}
