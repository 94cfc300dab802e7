//! Registry authentication: the `WWW-Authenticate` challenge (Bearer token
//! realm/service/scope, or Basic), credentials chosen by exact host, and a
//! token cache.
//!
//! Credentials go only to the host they belong to: Basic credentials are sent
//! to the registry host itself and to a token realm on the same host. The one
//! exception is Docker Hub, whose realm is `auth.docker.io`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

/// A username and password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credential {
    /// The user.
    pub(crate) username: String,
    /// The password or token.
    pub(crate) password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, not even in debug logs.
        f.debug_struct("Credential")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// The `Authorization: Basic` header value.
    pub(crate) fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Bearer realm=..,service=..,scope=..`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The service parameter, if any.
        service: Option<String>,
        /// The scope the registry asked for, if any.
        scope: Option<String>,
    },
    /// `Basic realm=..`.
    Basic,
}

/// Parses a `WWW-Authenticate` header value.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// Parses `k="v", k2=v2` auth-params; quoted values may contain commas.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i] == b',' || bytes[i] == b' ') {
            i += 1;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let key = s[key_start..i].trim().to_ascii_lowercase();
        i += 1;
        let value = if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
            let mut v = String::new();
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                v.push(bytes[i] as char);
                i += 1;
            }
            i += 1;
            v
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] != b',' {
                i += 1;
            }
            s[start..i].trim().to_string()
        };
        out.insert(key, value);
    }
    out
}

/// Whether Basic credentials for `registry` (host, optionally with port)
/// may be sent to a token realm on `realm_host`: the same host name (any
/// port), or Docker Hub's `auth.docker.io` for Docker Hub's hosts.
pub(crate) fn realm_may_receive_credentials(registry: &str, realm_host: &str) -> bool {
    let name = |h: &str| -> String {
        match h.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default().to_string(),
            None => h.rsplit_once(':').map_or(h, |(n, _)| n).to_string(),
        }
    };
    let registry = name(registry);
    let realm = name(realm_host);
    registry == realm
        || (matches!(
            registry.as_str(),
            "docker.io" | "registry-1.docker.io" | "notary.docker.io"
        ) && realm == "auth.docker.io")
}

/// Bearer tokens by (registry host, scope), until just before they expire.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
}

/// How long a token without `expires_in` is kept (the distribution spec's
/// default lifetime is 60 s).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tokens are dropped this long before they expire.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(10);

impl TokenCache {
    /// A cached token for `host` and `scope`, if still fresh.
    pub(crate) fn get(&self, host: &str, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().ok()?;
        let (token, expires) = tokens.get(&(host.to_string(), scope.to_string()))?;
        (Instant::now() < *expires).then(|| token.clone())
    }

    /// Stores a token that lives `expires_in` seconds (or the default).
    pub(crate) fn put(&self, host: &str, scope: &str, token: String, expires_in: Option<u64>) {
        let lifetime = expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        let expires = Instant::now() + lifetime.saturating_sub(TOKEN_EXPIRY_MARGIN);
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert((host.to_string(), scope.to_string()), (token, expires));
        }
    }
}

/// The JSON a token endpoint answers.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenResponse {
    /// The token (distribution spec).
    #[serde(default)]
    pub(crate) token: Option<String>,
    /// The token (OAuth2 name).
    #[serde(default)]
    pub(crate) access_token: Option<String>,
    /// Lifetime in seconds.
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull".into()),
            })
        );
        let c = parse_challenge(r#"Bearer realm="https://r/t",scope="repository:a:pull,push""#)
            .unwrap();
        assert!(
            matches!(c, Challenge::Bearer { scope: Some(s), .. } if s == "repository:a:pull,push")
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn credentials_stay_on_their_host() {
        assert!(realm_may_receive_credentials("ghcr.io", "ghcr.io"));
        assert!(realm_may_receive_credentials("docker.io", "auth.docker.io"));
        assert!(!realm_may_receive_credentials(
            "ghcr.io",
            "attacker.example"
        ));
        assert!(!realm_may_receive_credentials(
            "registry.example.com",
            "example.com"
        ));
    }

    #[test]
    fn credential_debug_hides_password() {
        let c = Credential {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
