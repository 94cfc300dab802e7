//! Keeping `k8s://NAMESPACE/SECRET` trust-root keys current while serving.
//!
//! `serve` reads the Secrets once at start-up (a missing one is a start-up
//! error: `config::k8s_keys`). Then [`spawn`] re-reads them every
//! `--secret-refresh-secs` (default 30 s). When any key changed, the config
//! is parsed again with the new PEM and a new [`Engine`] is built over the
//! same caches and swapped in; calls in flight finish on the engine they
//! started with. The new key is part of the validator's config entry, so
//! every rule fingerprint changes: verdicts made under the old key miss at
//! once, in this verifier and in every other one sharing Redis.
//!
//! What a refresh can never do: trust a key it could not read. If a Secret
//! cannot be read (API unreachable, Secret or entry gone) or the new config
//! does not build, the engine in use is kept (the key that was verified at
//! start-up or at the last refresh), the failure is logged at error level
//! with the file and field, and the next tick tries again. A deleted Secret
//! therefore does not revoke its key: rotate by replacing the Secret's
//! `cosign.pub`, or remove the trust root from the config.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config;
use crate::decision::Engine;

/// How a new engine is built from a config (the caches and pull-secret
/// reader of the one it replaces).
pub(crate) struct Rebuild {
    /// The caches the engines share.
    pub(crate) caches: Arc<crate::cache::Caches>,
    /// The pull-secret reader, when enabled.
    pub(crate) pull_secrets: Option<crate::pull_secrets::PullSecrets>,
}

impl Rebuild {
    async fn engine(
        &self,
        config: config::Config,
    ) -> Result<Engine, crate::validators::BuildError> {
        let engine = Engine::new(config, self.caches.clone()).await?;
        Ok(match &self.pull_secrets {
            Some(reader) => engine.with_pull_secrets(reader.clone()),
            None => engine,
        })
    }
}

/// The config text as written (with `k8s://` references) and as last
/// resolved, and how to read the Secrets.
pub(crate) struct Watched {
    /// The config file's name, for messages.
    pub(crate) file: String,
    /// Its text as written.
    pub(crate) written: String,
    /// Its text with the keys in use substituted.
    pub(crate) resolved: String,
    /// The Kubernetes API client.
    pub(crate) client: kube::Client,
}

/// Re-reads the Secrets every `every` and swaps in a new engine when a key
/// changed (see the module doc).
pub(crate) fn spawn(
    mut watched: Watched,
    engine: Arc<ArcSwap<Engine>>,
    rebuild: Rebuild,
    every: Duration,
    leases: Arc<crate::lease::Leases>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let resolved = match config::k8s_keys::resolve(
                &watched.written,
                &watched.file,
                &watched.client,
            )
            .await
            {
                Ok(text) => text,
                Err(e) => {
                    tracing::error!(error = %e, "trust-root keys from Secrets: cannot read them; keeping the keys in use");
                    continue;
                }
            };
            if resolved == watched.resolved {
                continue;
            }
            let built = match config::parse_str(&resolved, &watched.file) {
                Ok(config) => rebuild.engine(config).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match built {
                Ok(new) => {
                    // Only once no gateway holds a lease at the old epoch.
                    leases.fence(|| engine.store(Arc::new(new))).await;
                    watched.resolved = resolved;
                    tracing::warn!(file = %watched.file, "trust-root keys from Secrets changed: now verifying with the new keys");
                }
                Err(e) => {
                    tracing::error!(error = %e, "trust-root keys from Secrets changed, but the config does not build with them; keeping the keys in use");
                }
            }
        }
    });
}
