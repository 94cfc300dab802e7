//! A small OCI distribution client, built for the fewest requests.
//!
//! Why not `oci-client`'s client: it pings `GET /v2/` before requests on
//! registries that need no token (seven of thirteen requests in our spike),
//! hides token failures, and has no per-request timeouts. This client
//! authenticates only when challenged, caches bearer tokens per host and
//! repository scope, remembers which hosts lack the referrers API, verifies
//! the digest of everything fetched by digest, caps body sizes, and bounds
//! every request in time. `oci-client`'s manifest types are used to parse
//! what is fetched.
//!
//! * `https` is the default; plain `http` only for hosts the config marks
//!   insecure.
//! * Credentials are chosen by exact host; see [`auth`]. They never travel
//!   over plain `http`: an insecure registry is only ever asked
//!   anonymously, and a token realm must be `https` (plain `http` only for a
//!   registry that is itself configured as `http`, and then without
//!   credentials).
//! * `docker.io` is served by `registry-1.docker.io`.
//! * Redirects (blob storage) are followed at most 5 times, never from
//!   `https` down to `http`, and never carry our `Authorization` header to
//!   another scheme, host or port (reqwest strips it there).
//! * Deny messages carry a short cause ("connection refused", "TLS
//!   handshake failed", a status code); the raw upstream detail (error
//!   chains, realm URLs) goes to the verifier's log only, so a deny message
//!   is no oracle for probing internal addresses.

pub(crate) mod auth;
pub(crate) mod error;
mod guard;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use sha2::{Digest as _, Sha256};

pub(crate) use auth::Credential;

/// Registry credentials by exact host.
pub(crate) type Credentials = HashMap<String, Credential>;
use auth::{Challenge, TokenCache, TokenResponse, parse_challenge, realm_may_receive_credentials};
pub(crate) use error::RegistryError;

/// Manifest media types we ask for (and accept) when resolving a tag.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest accepted.
pub(crate) const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// The largest signature/attestation blob accepted.
pub(crate) const MAX_BLOB_BYTES: usize = 4 * 1024 * 1024;

/// How to reach registries.
#[derive(Debug, Clone)]
pub(crate) struct RegistrySettings {
    /// Extra CA certificates (PEM) trusted for registry TLS, on top of the
    /// system roots.
    pub(crate) extra_ca_pem: Option<String>,
    /// Credentials by exact registry host.
    pub(crate) credentials: HashMap<String, Credential>,
    /// Hosts reached over plain HTTP (explicitly marked insecure).
    pub(crate) insecure_hosts: HashSet<String>,
    /// Bound on each HTTP request.
    pub(crate) request_timeout: Duration,
    /// Bound on connecting.
    pub(crate) connect_timeout: Duration,
    /// Where requests are counted (by host and status).
    pub(crate) metrics: crate::metrics::VerifierMetrics,
}

/// A fetched manifest.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    /// The body.
    pub(crate) bytes: bytes::Bytes,
    /// `sha256:<hex>` of the body.
    pub(crate) digest: String,
    /// The `Content-Type` the registry served it with (manifests).
    pub(crate) media_type: Option<String>,
}

/// The registry client. One per validator: it owns the validator's
/// credentials, CA and token cache, and is shared by all its requests.
#[derive(Debug)]
pub(crate) struct RegistryClient {
    http: reqwest::Client,
    credentials: HashMap<String, Credential>,
    insecure_hosts: HashSet<String>,
    tokens: TokenCache,
    /// Hosts that answered Basic challenges.
    basic_hosts: Mutex<HashSet<String>>,
    /// Hosts whose referrers API answered 404 (use the tag schema).
    no_referrers_api: Mutex<HashSet<String>>,
    request_timeout: Duration,
    metrics: crate::metrics::VerifierMetrics,
    /// Per-host concurrency bound and circuit breaker, shared with the
    /// client's workload views.
    hosts: std::sync::Arc<guard::Hosts>,
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientBuildError {
    /// The CA bundle does not parse.
    #[error("invalid CA certificate bundle: {0}")]
    Ca(String),
    /// reqwest refused the settings.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// The API host serving images named with `registry`.
pub(crate) fn api_host(registry: &str) -> &str {
    if registry == crate::reference::DOCKER_HUB {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl RegistryClient {
    /// Builds a client.
    pub(crate) fn new(settings: RegistrySettings) -> Result<Self, ClientBuildError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(32)
            .tcp_nodelay(true)
            .user_agent(concat!("portcullis-verifier/", env!("CARGO_PKG_VERSION")))
            .redirect(redirect_policy());
        if let Some(pem) = &settings.extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| ClientBuildError::Ca(e.to_string()))?;
            if certs.is_empty() {
                return Err(ClientBuildError::Ca("no certificate in the bundle".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| ClientBuildError::Http(e.to_string()))?;
        Ok(RegistryClient {
            http,
            credentials: settings.credentials,
            insecure_hosts: settings.insecure_hosts,
            tokens: TokenCache::default(),
            basic_hosts: Mutex::default(),
            no_referrers_api: Mutex::default(),
            request_timeout: settings.request_timeout,
            metrics: settings.metrics,
            hosts: std::sync::Arc::default(),
        })
    }

    /// A client for one request that also has `extra` credentials (a
    /// workload's pull secrets) for hosts the config has none for. It shares
    /// the connection pool but not the token cache, so tokens obtained with
    /// one workload's credentials never serve another's requests.
    pub(crate) fn with_extra_credentials(
        &self,
        extra: &HashMap<String, Credential>,
    ) -> RegistryClient {
        let mut credentials = extra.clone();
        credentials.extend(self.credentials.clone());
        RegistryClient {
            http: self.http.clone(),
            credentials,
            insecure_hosts: self.insecure_hosts.clone(),
            tokens: TokenCache::default(),
            basic_hosts: Mutex::default(),
            no_referrers_api: Mutex::new(
                self.no_referrers_api
                    .lock()
                    .map(|h| h.clone())
                    .unwrap_or_default(),
            ),
            request_timeout: self.request_timeout,
            metrics: self.metrics.clone(),
            hosts: self.hosts.clone(),
        }
    }

    fn base_url(&self, registry: &str) -> String {
        let scheme = if self.is_insecure(registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}", api_host(registry))
    }

    /// Whether `registry` is reached over plain HTTP (explicitly configured).
    fn is_insecure(&self, registry: &str) -> bool {
        self.insecure_hosts.contains(registry)
    }

    /// The credential for `registry`, unless it is reached over plain HTTP:
    /// credentials never travel in clear text.
    fn credential_for(&self, registry: &str) -> Option<&Credential> {
        let credential = self.credentials.get(registry)?;
        if self.is_insecure(registry) {
            tracing::debug!(registry, "not sending credentials to a plain-HTTP registry");
            return None;
        }
        Some(credential)
    }

    /// Sends one request for `path` (under `/v2/<repo>/`), answering a 401
    /// challenge once. Returns the final response, whatever its status.
    async fn send(
        &self,
        registry: &str,
        repo: &str,
        method: Method,
        path: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let url = format!("{}/v2/{repo}/{path}", self.base_url(registry));
        let scope = format!("repository:{repo}:pull");
        self.send_url(registry, &url, &scope, method, accept).await
    }

    /// GETs `url` on the server known as `host` (for credentials and
    /// tokens), authenticating for `scope` when challenged. `None` on 404.
    /// Used for Notary trust data, which lives outside the registry API.
    pub(crate) async fn get_url(
        &self,
        host: &str,
        url: &str,
        scope: &str,
        max: usize,
    ) -> Result<Option<bytes::Bytes>, RegistryError> {
        let response = self.send_url(host, url, scope, Method::GET, None).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if !s.is_success() => Err(status_error(host, s)),
            _ => Ok(Some(read_capped(host, response, max).await?)),
        }
    }

    /// Sends one request to `url`, answering a 401 challenge once.
    async fn send_url(
        &self,
        registry: &str,
        url: &str,
        scope: &str,
        method: Method,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let scope = scope.to_string();
        let url = url.to_string();
        let credential = self.credential_for(registry);
        let mut authorization = self
            .tokens
            .get(registry, &scope)
            .map(|t| format!("Bearer {t}"));
        if authorization.is_none()
            && credential.is_some()
            && self.basic_hosts.lock().is_ok_and(|h| h.contains(registry))
        {
            authorization = credential.map(Credential::basic_header);
        }
        let response = self
            .request(
                registry,
                method.clone(),
                &url,
                accept,
                authorization.as_deref(),
            )
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let authorization = match challenge {
            Some(Challenge::Bearer { realm, service, .. }) => {
                let token = self
                    .fetch_token(registry, &realm, service.as_deref(), &scope)
                    .await?;
                format!("Bearer {token}")
            }
            Some(Challenge::Basic) => {
                let Some(credential) = credential else {
                    return Err(RegistryError::AuthFailed {
                        host: registry.to_string(),
                    });
                };
                if let Ok(mut hosts) = self.basic_hosts.lock() {
                    hosts.insert(registry.to_string());
                }
                credential.basic_header()
            }
            None => {
                return Err(RegistryError::AuthFailed {
                    host: registry.to_string(),
                });
            }
        };
        let response = self
            .request(registry, method, &url, accept, Some(&authorization))
            .await?;
        if matches!(
            response.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(RegistryError::AuthFailed {
                host: registry.to_string(),
            });
        }
        Ok(response)
    }

    /// Sends one request; a 429 or 503 whose `Retry-After` asks for at most
    /// [`MAX_RETRY_AFTER`] is retried once after that wait. Longer waits are
    /// not taken (the answer is the transient failure at once), and the
    /// caller's deadline, which bounds every registry call, cancels a wait
    /// that would outlast it: a retry never happens past the admission
    /// deadline.
    async fn request(
        &self,
        registry: &str,
        method: Method,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let response = self
            .request_once(registry, method.clone(), url, accept, authorization)
            .await?;
        let Some(wait) = retry_after(&response) else {
            return Ok(response);
        };
        tracing::debug!(
            registry,
            url,
            wait_ms = wait.as_millis() as u64,
            "registry asked to retry after"
        );
        drop(response);
        tokio::time::sleep(wait).await;
        self.request_once(registry, method, url, accept, authorization)
            .await
    }

    /// Counts a request in `portcullis_registry_requests_total{host, status}`.
    fn count_request(&self, registry: &str, status: &str) {
        self.metrics
            .registry_requests
            .get_or_create(&vec![
                ("host", registry.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
    }

    async fn request_once(
        &self,
        registry: &str,
        method: Method,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let host = self.hosts.get(registry);
        if host.is_open() {
            self.count_request(registry, "circuit_open");
            return Err(RegistryError::CircuitOpen {
                host: registry.to_string(),
            });
        }
        let _slot = host.slot().await;
        let result = self
            .request_unguarded(registry, method, url, accept, authorization)
            .await;
        host.record(match &result {
            Ok(r) => r.status().is_server_error() || r.status() == StatusCode::TOO_MANY_REQUESTS,
            Err(e) => e.is_transient(),
        });
        result
    }

    async fn request_unguarded(
        &self,
        registry: &str,
        method: Method,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut request = self.http.request(method, url).timeout(self.request_timeout);
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }

        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.count_request(registry, if e.is_timeout() { "timeout" } else { "error" });
                return Err(transport_error(registry, &e));
            }
        };
        self.count_request(registry, response.status().as_str());
        tracing::debug!(
            registry,
            url,
            status = response.status().as_u16(),
            "registry request"
        );
        Ok(response)
    }

    /// Fetches a bearer token from `realm`, with Basic credentials when the
    /// realm is on the registry's own host.
    async fn fetch_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, RegistryError> {
        if let Some(token) = self.tokens.get(registry, scope) {
            return Ok(token);
        }
        let realm_url = reqwest::Url::parse(realm).map_err(|e| {
            tracing::warn!(registry, realm, error = %e, "unparsable token realm");
            RegistryError::Invalid {
                host: registry.to_string(),
                reason: "unparsable token realm".into(),
            }
        })?;
        // A realm is `https`; plain `http` only for a registry configured as
        // `http` itself (and then, like it, without credentials).
        let realm_ok = match realm_url.scheme() {
            "https" => true,
            "http" => self.is_insecure(registry),
            _ => false,
        };
        if !realm_ok {
            tracing::warn!(registry, realm, "token realm is not https; refusing it");
            return Err(RegistryError::Invalid {
                host: registry.to_string(),
                reason: format!("token realm scheme `{}` refused", realm_url.scheme()),
            });
        }
        let realm_host = realm_url.host_str().unwrap_or_default().to_string();
        let realm_https = realm_url.scheme() == "https";
        let mut request = self
            .http
            .get(realm_url)
            .timeout(self.request_timeout)
            .query(&[("scope", scope)]);
        if let Some(service) = service {
            request = request.query(&[("service", service)]);
        }
        if let Some(credential) = self.credential_for(registry) {
            if realm_https
                && (realm_may_receive_credentials(registry, &realm_host)
                    || realm_may_receive_credentials(api_host(registry), &realm_host))
            {
                request = request.header(header::AUTHORIZATION, credential.basic_header());
            } else {
                tracing::warn!(
                    registry,
                    realm,
                    "token realm is on another host; not sending credentials to it"
                );
            }
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(registry, &e))?;
        let status = response.status();
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(RegistryError::AuthFailed {
                host: registry.to_string(),
            });
        }
        if !status.is_success() {
            return Err(RegistryError::Status {
                host: registry.to_string(),
                status: status.as_u16(),
            });
        }
        let body = read_capped(registry, response, 64 * 1024).await?;
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            tracing::warn!(registry, error = %e, "unparsable token response");
            RegistryError::Invalid {
                host: registry.to_string(),
                reason: "unparsable token response".into(),
            }
        })?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .ok_or_else(|| RegistryError::Invalid {
                host: registry.to_string(),
                reason: "token response has no token".into(),
            })?;
        self.tokens
            .put(registry, scope, token.clone(), parsed.expires_in);
        Ok(token)
    }

    /// Resolves a tag to its manifest digest with `HEAD` (which Docker Hub
    /// does not count as a pull), falling back to `GET` and hashing the body
    /// when the registry sends no `Docker-Content-Digest`. `None` when the
    /// tag does not exist.
    pub(crate) async fn resolve_tag(
        &self,
        registry: &str,
        repo: &str,
        tag: &str,
    ) -> Result<Option<String>, RegistryError> {
        let path = format!("manifests/{tag}");
        let response = self
            .send(registry, repo, Method::HEAD, &path, Some(MANIFEST_ACCEPT))
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if !s.is_success() => return Err(status_error(registry, s)),
            _ => {}
        }
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(d) = header_digest.filter(|d| is_sha256_digest(d)) {
            return Ok(Some(d));
        }
        Ok(self
            .get_manifest(registry, repo, tag)
            .await?
            .map(|m| m.digest))
    }

    /// Fetches a manifest by tag or digest. `None` on 404. When `reference`
    /// is a digest, the body must hash to it.
    pub(crate) async fn get_manifest(
        &self,
        registry: &str,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Fetched>, RegistryError> {
        let path = format!("manifests/{reference}");
        let response = self
            .send(registry, repo, Method::GET, &path, Some(MANIFEST_ACCEPT))
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if !s.is_success() => return Err(status_error(registry, s)),
            _ => {}
        }
        let media_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let bytes = read_capped(registry, response, MAX_MANIFEST_BYTES).await?;
        let digest = sha256_digest(&bytes);
        if reference.starts_with("sha256:") && reference != digest {
            return Err(RegistryError::Invalid {
                host: registry.to_string(),
                reason: format!("manifest {reference} has digest {digest}"),
            });
        }
        Ok(Some(Fetched {
            bytes,
            digest,
            media_type,
        }))
    }

    /// Fetches a blob, checking that it hashes to `digest`.
    pub(crate) async fn get_blob(
        &self,
        registry: &str,
        repo: &str,
        digest: &str,
    ) -> Result<bytes::Bytes, RegistryError> {
        let invalid = |reason: String| RegistryError::Invalid {
            host: registry.to_string(),
            reason,
        };
        if !is_sha256_digest(digest) {
            return Err(invalid(format!("unsupported blob digest {digest:?}")));
        }
        let path = format!("blobs/{digest}");
        let response = self.send(registry, repo, Method::GET, &path, None).await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Err(invalid(format!("blob {digest} is missing"))),
            s if !s.is_success() => return Err(status_error(registry, s)),
            _ => {}
        }
        let bytes = read_capped(registry, response, MAX_BLOB_BYTES).await?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(invalid(format!("blob {digest} has digest {actual}")));
        }
        Ok(bytes)
    }

    /// The referrers of `digest` as an OCI image index: from the referrers
    /// API, or, where the registry lacks it, from the referrers tag schema
    /// (`sha256-<hex>`). `None` when there are none.
    pub(crate) async fn get_referrers(
        &self,
        registry: &str,
        repo: &str,
        digest: &str,
    ) -> Result<Option<bytes::Bytes>, RegistryError> {
        let skip_api = self
            .no_referrers_api
            .lock()
            .is_ok_and(|h| h.contains(registry));
        if !skip_api {
            let path = format!("referrers/{digest}");
            let response = self
                .send(
                    registry,
                    repo,
                    Method::GET,
                    &path,
                    Some("application/vnd.oci.image.index.v1+json"),
                )
                .await?;
            match response.status() {
                s if s.is_success() => {
                    return Ok(Some(
                        read_capped(registry, response, MAX_MANIFEST_BYTES).await?,
                    ));
                }
                // 404 (or 405/400 from registries that do not route the
                // path): the API is not supported; use the tag schema.
                StatusCode::NOT_FOUND
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::BAD_REQUEST => {
                    if let Ok(mut hosts) = self.no_referrers_api.lock() {
                        hosts.insert(registry.to_string());
                    }
                }
                s => return Err(status_error(registry, s)),
            }
        }
        let tag = digest.replacen(':', "-", 1);
        Ok(self
            .get_manifest(registry, repo, &tag)
            .await?
            .map(|m| m.bytes))
    }
}

/// `sha256:` followed by 64 lower-case hex digits.
/// The longest `Retry-After` honoured: longer requests fail at once as
/// transient (`REGISTRY_UNAVAILABLE`), rather than holding an admission.
pub(crate) const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// The wait a 429 or 503 asks for, if it carries a `Retry-After` in
/// seconds (RFC 9110 §10.2.3; an HTTP date is not used) of at most
/// [`MAX_RETRY_AFTER`].
fn retry_after(response: &reqwest::Response) -> Option<std::time::Duration> {
    if !matches!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        return None;
    }
    let seconds: u64 = response
        .headers()
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let wait = std::time::Duration::from_secs(seconds);
    (wait <= MAX_RETRY_AFTER).then_some(wait)
}

pub(crate) fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn status_error(registry: &str, status: StatusCode) -> RegistryError {
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        RegistryError::AuthFailed {
            host: registry.to_string(),
        }
    } else {
        RegistryError::Status {
            host: registry.to_string(),
            status: status.as_u16(),
        }
    }
}

/// The redirect policy: at most 5 hops, never from `https` down to plain
/// `http`. (reqwest itself drops `Authorization` whenever the scheme, host
/// or port changes.)
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 5 {
            return attempt.error("more than 5 redirects");
        }
        let downgrade = attempt.url().scheme() != "https"
            && attempt.previous().iter().any(|u| u.scheme() == "https");
        if downgrade {
            return attempt.error("redirect from https to plain http refused");
        }
        attempt.follow()
    })
}

/// A transport failure as a short, stable cause; the whole error chain (which
/// names URLs and addresses) goes to the log only.
fn transport_error(registry: &str, e: &reqwest::Error) -> RegistryError {
    if e.is_timeout() {
        return RegistryError::Timeout {
            host: registry.to_string(),
        };
    }
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain = format!("{chain}: {s}");
        source = s.source();
    }
    tracing::warn!(registry, error = %chain, "registry request failed");
    let lower = chain.to_ascii_lowercase();
    let reason = if e.is_redirect() {
        "redirect refused"
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        "TLS handshake failed"
    } else if lower.contains("dns") || lower.contains("resolve") || lower.contains("lookup") {
        "name lookup failed"
    } else if lower.contains("refused") {
        "connection refused"
    } else if lower.contains("reset") || lower.contains("closed") || lower.contains("eof") {
        "connection closed"
    } else {
        "connection failed"
    };
    RegistryError::Connect {
        host: registry.to_string(),
        reason: reason.to_string(),
    }
}

/// Reads a body, refusing more than `max` bytes.
async fn read_capped(
    registry: &str,
    mut response: reqwest::Response,
    max: usize,
) -> Result<bytes::Bytes, RegistryError> {
    let too_big = || RegistryError::Invalid {
        host: registry.to_string(),
        reason: format!("response larger than {max} bytes"),
    };
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_big());
    }
    let mut out = bytes::BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > max {
                    return Err(too_big());
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out.freeze()),
            Err(e) => return Err(transport_error(registry, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_api_host() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn digests() {
        assert!(is_sha256_digest(&sha256_digest(b"x")));
        assert!(!is_sha256_digest("sha256:ABC"));
        assert!(!is_sha256_digest("sha512:00"));
    }

    #[test]
    fn transient_split() {
        let s = |status| RegistryError::Status {
            host: "h".into(),
            status,
        };
        assert!(s(500).is_transient());
        assert!(s(503).is_transient());
        assert!(s(429).is_transient());
        assert!(!s(404).is_transient());
        assert!(!RegistryError::AuthFailed { host: "h".into() }.is_transient());
        assert!(RegistryError::Timeout { host: "h".into() }.is_transient());
    }
}
