//! Starting and stopping the real binaries.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::certs::TestCa;

/// The directory holding the built binaries: `PORTCULLIS_BIN_DIR`, or the
/// target profile directory this test binary was built into.
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PORTCULLIS_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// The path of a workspace binary; panics with a hint if it is not built.
pub fn bin_path(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` before the tests",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Polls until `addr` accepts TCP connections or `timeout` passes.
pub fn wait_for_tcp(addr: SocketAddr, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A child process that is killed when dropped. Its stdout and stderr go to
/// a log file.
pub struct Process {
    child: Option<Child>,
    name: String,
    log: PathBuf,
}

impl Process {
    /// Spawns `command`, logging to `log`.
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process {
            child: Some(child),
            name: name.to_string(),
            log,
        }
    }

    /// Spawns `command` with stdout and stderr in separate files.
    pub fn spawn_split(name: &str, mut command: Command, stdout: PathBuf, stderr: PathBuf) -> Self {
        let out = std::fs::File::create(&stdout).expect("log file");
        let err = std::fs::File::create(&stderr).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process {
            child: Some(child),
            name: name.to_string(),
            log: stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process has exited; returns its status if so.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.try_exit() {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `portcullis-verifier serve`.
pub struct Verifier {
    /// The process.
    pub process: Process,
    /// Its listen address.
    pub addr: SocketAddr,
    /// The config file it was started with.
    pub config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Verifier {
    /// Starts a verifier with `config` (YAML text) and extra `serve` args.
    pub fn start(config: &str, extra_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config).expect("write config");
        Self::start_at(dir, config_path, free_port(), extra_args)
    }

    /// Starts a verifier listening on `addr` (any 127.0.0.0/8 address).
    pub fn start_on(config: &str, addr: SocketAddr, extra_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config).expect("write config");
        Self::start_addr(dir, config_path, addr, extra_args)
    }

    fn start_at(dir: tempfile::TempDir, config: PathBuf, port: u16, extra_args: &[&str]) -> Self {
        Self::start_addr(dir, config, ([127, 0, 0, 1], port).into(), extra_args)
    }

    fn start_addr(
        dir: tempfile::TempDir,
        config: PathBuf,
        addr: SocketAddr,
        extra_args: &[&str],
    ) -> Self {
        let mut cmd = Command::new(bin_path("portcullis-verifier"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg(addr.to_string())
            .args(extra_args)
            .env("PORTCULLIS_LOG", "info")
            // No epoch leases unless a test asks (`--epoch-lease-ms`): without them no
            // gateway reuses an answer, so every admission reaches the
            // verifier, and start-up does not wait one lease.
            .env("PORTCULLIS_EPOCH_LEASE_MS", "0");
        let mut process = Process::spawn("verifier", cmd, dir.path().join("verifier.log"));
        if !wait_for_tcp(addr, Duration::from_secs(20)) {
            process.assert_running();
            panic!("verifier did not listen on {addr}:\n{}", process.log());
        }
        Verifier {
            process,
            addr,
            config,
            _dir: dir,
        }
    }

    /// `https://ADDR`.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// How to start a gateway.
#[derive(Debug, Clone, Default)]
pub struct GatewayOptions {
    /// `--verifier` URLs.
    pub verifiers: Vec<String>,
    /// Extra arguments.
    pub args: Vec<String>,
    /// Wait for /readyz before returning (otherwise only /healthz).
    pub wait_ready: bool,
    /// Start with `--client-ca` (a CA of its own, in `client_ca/`) and
    /// `--probe-listen`; the harness's client presents a certificate from
    /// that CA, as the API server would.
    pub client_auth: bool,
}

/// A running `portcullis-gateway` with an HTTPS client that trusts it.
pub struct Gateway {
    /// The process.
    pub process: Process,
    /// Its listen address.
    pub addr: SocketAddr,
    /// A client trusting the gateway's test CA.
    pub client: reqwest::Client,
    /// The CA that issued the serving certificate.
    pub ca: TestCa,
    /// The temp dir holding certs and logs.
    pub dir: tempfile::TempDir,
    /// With `client_auth`: the CA given as `--client-ca`, and the plain-HTTP
    /// `--probe-listen` address.
    pub client_auth: Option<(TestCa, SocketAddr)>,
}

impl Gateway {
    /// Starts a gateway and waits until it answers.
    pub async fn start(options: GatewayOptions) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new(dir.path(), "webhook");
        let leaf = ca.issue("gateway");
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut cmd = Command::new(bin_path("portcullis-gateway"));
        let mut builder = reqwest::Client::builder();
        let mut client_auth = None;
        if options.client_auth {
            let ca_dir = dir.path().join("client_ca");
            std::fs::create_dir_all(&ca_dir).expect("client CA dir");
            let client_ca = TestCa::new(&ca_dir, "apiserver client");
            let probe: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            cmd.arg("--client-ca")
                .arg(client_ca.cert_path())
                .arg("--probe-listen")
                .arg(probe.to_string());
            let leaf = client_ca.issue("kube-apiserver");
            builder = builder.identity(leaf.identity());
            client_auth = Some((client_ca, probe));
        }
        cmd.arg("--listen")
            .arg(addr.to_string())
            .arg("--tls-cert")
            .arg(&leaf.chain)
            .arg("--tls-key")
            .arg(&leaf.key)
            .arg("--verifier")
            .arg(options.verifiers.join(","));
        if !options.args.iter().any(|a| a == "--health-interval-ms") {
            cmd.arg("--health-interval-ms").arg("200");
        }
        cmd.args(&options.args).env("PORTCULLIS_LOG", "info");
        let process = Process::spawn("gateway", cmd, dir.path().join("gateway.log"));
        let client = builder
            .tls_certs_only([reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).expect("CA")])
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let mut gateway = Gateway {
            process,
            addr,
            client,
            ca,
            dir,
            client_auth,
        };
        let path = if options.wait_ready {
            "/readyz"
        } else {
            "/healthz"
        };
        gateway.wait_for(path, Duration::from_secs(20)).await;
        gateway
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Polls `GET path` until it answers 200.
    pub async fn wait_for(&mut self, path: &str, timeout: Duration) {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(r) = self
                .client
                .get(format!("{}{path}", self.url()))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            self.process.assert_running();
            assert!(
                Instant::now() < end,
                "gateway {path} not OK in time:\n{}",
                self.process.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// POSTs JSON to `path`; returns the status and the body as JSON (or as
    /// a JSON string when it is not JSON).
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.url()))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("json"))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// GETs `path`; returns the status and body text.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.url()))
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    /// The value of a metric line that starts with `prefix` (name and
    /// labels), summed over matching lines.
    pub async fn metric(&self, prefix: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Runs `portcullis-verifier verify --json` with `config` (YAML text) on
/// `images`; returns the exit code and the parsed results (empty when the
/// command printed no JSON, e.g. on a config error; stderr is then in the
/// panic message of callers that expect results).
pub fn verify_json(
    config: &str,
    images: &[&str],
    extra_args: &[&str],
) -> (i32, Vec<Value>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).expect("write config");
    let out = Command::new(bin_path("portcullis-verifier"))
        .arg("verify")
        .arg("--json")
        .arg("--config")
        .arg(&path)
        .args(extra_args)
        .args(images)
        .env("PORTCULLIS_LOG", "warn")
        .output()
        .expect("run verifier");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let results = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code().unwrap_or(-1), results, stderr)
}

impl Verifier {
    /// A gRPC client to this verifier.
    pub async fn client(
        &self,
    ) -> portcullis_proto::v1::verifier_client::VerifierClient<tonic::transport::Channel> {
        portcullis_proto::v1::verifier_client::VerifierClient::connect(self.url())
            .await
            .expect("connect to verifier")
    }

    /// Asks this verifier about `image` (no workload, default deadline).
    pub async fn verify(&self, image: &str) -> portcullis_proto::VerifyResponse {
        self.client()
            .await
            .verify(portcullis_proto::VerifyRequest {
                image: image.to_string(),
                ..Default::default()
            })
            .await
            .expect("verify")
            .into_inner()
    }

    /// Starts a verifier on a config file that already exists (so a test
    /// can change it and restart).
    pub fn start_with_file(config: &std::path::Path, extra_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_at(dir, config.to_path_buf(), free_port(), extra_args)
    }

    /// The verifier's metrics (needs `--metrics-listen`), as text.
    pub async fn metrics_text(&self, metrics_addr: SocketAddr) -> String {
        reqwest::get(format!("http://{metrics_addr}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default()
    }
}

/// Sums the values of metric lines starting with `prefix`.
pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
