//! A real OCI registry (Debian `docker-registry`, distribution 2.8) on
//! 127.0.0.1, over plain HTTP or TLS, with its access log kept so tests can
//! count the requests the verifier made.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::certs::TestCa;
use crate::procs::{Process, free_port, wait_for_tcp};

/// A running registry.
pub struct Registry {
    /// The process.
    pub process: Process,
    /// `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    /// Whether it serves TLS.
    pub tls: bool,
    /// The CA its certificate chains to (TLS only).
    pub ca_path: Option<PathBuf>,
    access_log: PathBuf,
    /// Its temp dir (storage, config, logs).
    pub dir: tempfile::TempDir,
}

/// One access-log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// HTTP method.
    pub method: String,
    /// Request path and query.
    pub path: String,
    /// Response status.
    pub status: u16,
    /// The client's user agent.
    pub user_agent: String,
}

impl Registry {
    /// Starts a plain-HTTP registry.
    pub fn start_plain() -> Self {
        Self::start(None)
    }

    /// Starts a registry; with `ca`, over TLS with a leaf from that CA.
    pub fn start(ca: Option<&TestCa>) -> Self {
        Self::start_with(ca, "")
    }

    /// Starts a registry with extra top-level YAML (e.g. an `auth:`
    /// section).
    pub fn start_with(ca: Option<&TestCa>, extra_yaml: &str) -> Self {
        Self::start_on(ca, extra_yaml, None)
    }

    /// Like [`Registry::start_with`], storing in `storage` (so a second
    /// registry, say one with auth, can serve what a first one stored).
    pub fn start_on(
        ca: Option<&TestCa>,
        extra_yaml: &str,
        storage: Option<&std::path::Path>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = storage
            .map(std::path::Path::to_path_buf)
            .unwrap_or_else(|| dir.path().join("data"));
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let tls = match ca {
            Some(ca) => {
                let leaf = ca.issue(&format!("registry-{port}"));
                format!(
                    "\n  tls:\n    certificate: {}\n    key: {}",
                    leaf.chain.display(),
                    leaf.key.display()
                )
            }
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  accesslog:\n    disabled: false\n  level: warn\nstorage:\n  cache: {{blobdescriptor: inmemory}}\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp:\n  addr: {addr}{tls}\n{extra_yaml}\n",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let access_log = dir.path().join("access.log");
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve").arg(&config_path);
        // stdout carries the access log; stderr the application log.
        let mut process = Process::spawn_split(
            "registry",
            cmd,
            access_log.clone(),
            dir.path().join("registry.log"),
        );
        if !wait_for_tcp(addr, Duration::from_secs(20)) {
            process.assert_running();
            panic!("registry did not listen on {addr}");
        }
        Registry {
            process,
            addr,
            tls: ca.is_some(),
            ca_path: ca.map(|c| c.cert_path()),
            access_log,
            dir,
        }
    }

    /// Where it stores blobs and manifests.
    pub fn storage(&self) -> PathBuf {
        let config =
            std::fs::read_to_string(self.dir.path().join("config.yml")).unwrap_or_default();
        config
            .lines()
            .find_map(|l| l.split("rootdirectory: ").nth(1))
            .map(|s| PathBuf::from(s.trim_end_matches('}').trim()))
            .unwrap_or_default()
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The access log so far.
    pub fn accesses(&self) -> Vec<Access> {
        let text = std::fs::read_to_string(&self.access_log).unwrap_or_default();
        text.lines().filter_map(parse_access).collect()
    }

    /// The requests made by the verifier (its user agent) so far.
    pub fn verifier_requests(&self) -> Vec<Access> {
        self.accesses()
            .into_iter()
            .filter(|a| a.user_agent.starts_with("portcullis-verifier"))
            .collect()
    }
}

/// Parses a combined-log-format line.
fn parse_access(line: &str) -> Option<Access> {
    let mut quoted = line.split('"');
    let _prefix = quoted.next()?;
    let request = quoted.next()?;
    let after = quoted.next()?;
    let _referer = quoted.next()?;
    let _sep = quoted.next()?;
    let user_agent = quoted.next()?.to_string();
    let mut parts = request.split(' ');
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let status = after.split_whitespace().next()?.parse().ok()?;
    Some(Access {
        method,
        path,
        status,
        user_agent,
    })
}

impl Registry {
    fn client(&self) -> reqwest::Client {
        let mut b = reqwest::Client::builder();
        if let Some(ca) = &self.ca_path {
            let pem = std::fs::read(ca).expect("CA");
            b = b.tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("CA")]);
        }
        b.build().expect("client")
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// Fetches a manifest as JSON, with its media type.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> (serde_json::Value, String) {
        let r = self
            .client()
            .get(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header(
                "accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            )
            .send()
            .await
            .expect("GET manifest");
        assert!(
            r.status().is_success(),
            "GET {repo}:{reference}: {}",
            r.status()
        );
        let media_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (r.json().await.expect("manifest JSON"), media_type)
    }

    /// Stores a manifest under `reference`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        manifest: &serde_json::Value,
        media_type: &str,
    ) {
        let r = self
            .client()
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("content-type", media_type)
            .body(serde_json::to_vec(manifest).expect("json"))
            .send()
            .await
            .expect("PUT manifest");
        assert!(
            r.status().is_success(),
            "PUT {repo}:{reference}: {}",
            r.status()
        );
    }
}

/// Registry config enabling htpasswd basic auth for `user`:`password`, the
/// bcrypt hash made by python `bcrypt` into `dir/htpasswd`.
pub fn htpasswd_auth(dir: &std::path::Path, user: &str, password: &str) -> String {
    let hash = Command::new(crate::signer::python())
        .args([
            "-c",
            &format!(
                "import bcrypt; print(bcrypt.hashpw(b'{password}', bcrypt.gensalt(rounds=4)).decode())"
            ),
        ])
        .output()
        .expect("bcrypt");
    assert!(
        hash.status.success(),
        "bcrypt: {}",
        String::from_utf8_lossy(&hash.stderr)
    );
    let htpasswd = dir.join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("{user}:{}", String::from_utf8_lossy(&hash.stdout)),
    )
    .expect("write htpasswd");
    format!(
        "auth:\n  htpasswd:\n    realm: portcullis-test\n    path: {}\n",
        htpasswd.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_combined_log() {
        let a = parse_access(
            r#"127.0.0.1 - - [24/Nov/2026:16:55:51 +0000] "GET /v2/team/app/manifests/v1 HTTP/1.1" 200 401 "" "portcullis-verifier/0.1.0""#,
        )
        .unwrap();
        assert_eq!(a.method, "GET");
        assert_eq!(a.path, "/v2/team/app/manifests/v1");
        assert_eq!(a.status, 200);
        assert_eq!(a.user_agent, "portcullis-verifier/0.1.0");
    }
}
