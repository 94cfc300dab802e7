//! The real Notary v1 stack (`tests/fixtures/notary/notary_env.py up`):
//! notary-signer, a plain notary-server, a notary-server behind token auth,
//! and the token endpoint. Shut down when dropped (its stdin closes).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::Value;

use crate::signer::{python, workspace_root};

/// A running Notary environment.
pub struct NotaryEnv {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// The `env.json` document (URLs, CA, token settings).
    pub env: Value,
    /// The environment's directory.
    pub dir: tempfile::TempDir,
}

fn script() -> std::path::PathBuf {
    workspace_root().join("tests/fixtures/notary/notary_env.py")
}

impl NotaryEnv {
    /// Starts the stack; with `require_credentials`, the token endpoint
    /// refuses anonymous requests.
    pub fn up(require_credentials: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(python());
        cmd.arg(script()).arg("up").arg(dir.path());
        if require_credentials {
            cmd.arg("--require-credentials");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start notary_env.py up");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read env line");
        let env: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("notary_env up failed ({e}): {line:?}"));
        NotaryEnv {
            stdin: child.stdin.take(),
            child: Some(child),
            env,
            dir,
        }
    }

    /// A string field of env.json.
    pub fn get(&self, key: &str) -> String {
        self.env[key]
            .as_str()
            .unwrap_or_else(|| panic!("env.json has no {key}"))
            .to_string()
    }

    /// The test CA (PEM text).
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.get("ca")).expect("CA")
    }

    /// `host:port` of the plain server.
    pub fn server_host(&self) -> String {
        self.get("server_url")
            .trim_start_matches("https://")
            .to_string()
    }

    /// Runs `notary_env.py sign` with extra arguments; returns its JSON.
    pub fn sign(&self, args: &[&str]) -> Value {
        let out = Command::new(python())
            .arg(script())
            .arg("sign")
            .arg(self.dir.path())
            .args(args)
            .output()
            .expect("run sign");
        assert!(
            out.status.success(),
            "sign {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("sign printed no JSON ({e}): {stdout}"))
    }

    /// Runs another one-shot subcommand (`rotate-root`, `remove`).
    pub fn run(&self, subcommand: &str, args: &[&str]) -> Value {
        let out = Command::new(python())
            .arg(script())
            .arg(subcommand)
            .arg(self.dir.path())
            .args(args)
            .output()
            .expect("run notary_env");
        assert!(
            out.status.success(),
            "{subcommand} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap_or(Value::Null)
    }
}

impl Drop for NotaryEnv {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            // Closing stdin asks it to stop; make sure it does.
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl NotaryEnv {
    /// GETs a JSON document from one of the environment's HTTPS endpoints.
    pub fn get_json(&self, url: &str) -> Value {
        let ca = self.ca_pem();
        let url = url.to_string();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let client = reqwest::Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA")])
                .build()
                .expect("client");
            client
                .get(&url)
                .send()
                .await
                .expect("GET")
                .json()
                .await
                .expect("JSON")
        })
    }

    /// The token endpoint's counters.
    pub fn token_stats(&self) -> Value {
        self.get_json(&self.get("token_stats_url"))
    }
}

/// The tampering HTTPS proxy of `notary_env.py proxy`, in front of a Notary
/// server (same test CA).
pub struct NotaryProxy {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// Its startup JSON (`url`, `stats_url`, `admin_mode_url`, ...).
    pub info: Value,
    ca: String,
}

impl NotaryProxy {
    /// Starts a passthrough proxy to `upstream`.
    pub fn start(env: &NotaryEnv, upstream: &str) -> Self {
        let mut child = Command::new(python())
            .arg(script())
            .arg("proxy")
            .arg("--upstream")
            .arg(upstream)
            .arg("--dir")
            .arg(env.dir.path())
            .args(["--mode", "passthrough", "--listen-port", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start proxy");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("proxy line");
        let info: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("proxy failed ({e}): {line:?}"));
        NotaryProxy {
            stdin: child.stdin.take(),
            child: Some(child),
            info,
            ca: env.ca_pem(),
        }
    }

    /// The proxy's base URL.
    pub fn url(&self) -> String {
        self.info["url"].as_str().expect("url").to_string()
    }

    fn admin(&self, url: String, post: bool) -> Value {
        let ca = self.ca.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let client = reqwest::Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA")])
                .build()
                .expect("client");
            let req = if post {
                client.post(&url)
            } else {
                client.get(&url)
            };
            let r = req.send().await.expect("proxy admin");
            assert!(r.status().is_success(), "proxy admin {url}: {}", r.status());
            r.json().await.unwrap_or(Value::Null)
        })
    }

    /// Switches the tampering mode for `role` (`*` for all).
    pub fn set_mode(&self, mode: &str, role: &str) {
        let role = role.replace('*', "%2A").replace('/', "%2F");
        self.admin(
            format!("{}/_proxy/mode?mode={mode}&role={role}", self.url()),
            true,
        );
    }

    /// Requests per path so far.
    pub fn stats(&self) -> Value {
        self.admin(format!("{}/_proxy/stats", self.url()), false)
    }
}

impl Drop for NotaryProxy {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
