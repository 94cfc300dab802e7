//! Read-only access to the Kubernetes API (the `kube` crate), for the one
//! feature that needs more than the AdmissionReview carries: namespace
//! labels (`namespacedValidation`). Least privilege: `get` on namespaces
//! (see `deploy/kubernetes`).
//!
//! Namespace labels are cached for 30 s. Every failure is an error the
//! caller turns into "verify normally": nothing here can allow by itself.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;

pub(crate) use portcullis_shared::kube_client::KubeSettings as ClusterSettings;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClusterError {
    /// The API server answered with an error or could not be reached.
    #[error("kubernetes API: {0}")]
    Api(String),
    /// Took too long.
    #[error("kubernetes API did not answer in time")]
    Timeout,
}

/// A read-only Kubernetes client.
#[derive(Clone)]
pub(crate) struct Cluster {
    client: kube::Client,
    labels: moka::future::Cache<String, BTreeMap<String, String>>,
    timeout: Duration,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects (lazily: no request is made here).
    pub(crate) async fn connect(settings: &ClusterSettings) -> Result<Self, ClusterError> {
        let client = portcullis_shared::kube_client::connect(settings)
            .await
            .map_err(|e| ClusterError::Api(e.to_string()))?;
        Ok(Cluster {
            client,
            labels: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            timeout: Duration::from_secs(2),
        })
    }

    /// Reads one namespace.
    async fn namespace(&self, name: &str) -> Result<DynamicObject, ClusterError> {
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "Namespace"),
            "namespaces",
        );
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
        match tokio::time::timeout(self.timeout, api.get(name)).await {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(e)) => Err(ClusterError::Api(e.to_string())),
            Err(_) => Err(ClusterError::Timeout),
        }
    }

    /// The labels of `namespace` (cached 30 s).
    pub(crate) async fn namespace_labels(
        &self,
        namespace: &str,
    ) -> Result<BTreeMap<String, String>, ClusterError> {
        if let Some(labels) = self.labels.get(namespace).await {
            return Ok(labels);
        }
        let ns = self.namespace(namespace).await?;
        let labels = ns.metadata.labels.unwrap_or_default();
        self.labels
            .insert(namespace.to_string(), labels.clone())
            .await;
        Ok(labels)
    }
}
