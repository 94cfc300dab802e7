//! A real `redis-server` on 127.0.0.1 (standalone, with a password, or a
//! 3-node Cluster), for the shared-cache tests.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::procs::{Process, free_port, wait_for_tcp};

/// A running Redis (one node, or a cluster).
pub struct Redis {
    /// The node processes.
    pub nodes: Vec<Process>,
    /// Node addresses.
    pub addrs: Vec<SocketAddr>,
    /// The password, if any.
    pub password: Option<String>,
    dir: tempfile::TempDir,
}

fn spawn_node(dir: &std::path::Path, port: u16, extra: &[&str]) -> Process {
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
    ])
    .arg("--dir")
    .arg(dir)
    .args(extra);
    let mut p = Process::spawn("redis", cmd, dir.join(format!("redis-{port}.log")));
    if !wait_for_tcp(([127, 0, 0, 1], port).into(), Duration::from_secs(10)) {
        p.assert_running();
        panic!("redis did not listen on {port}");
    }
    p
}

impl Redis {
    /// Starts a standalone Redis, optionally with `requirepass`.
    pub fn start(password: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut extra = Vec::new();
        if let Some(pw) = password {
            extra.extend(["--requirepass", pw]);
        }
        let node = spawn_node(dir.path(), port, &extra);
        Redis {
            nodes: vec![node],
            addrs: vec![([127, 0, 0, 1], port).into()],
            password: password.map(str::to_string),
            dir,
        }
    }

    /// Starts a 3-node Redis Cluster and waits for `cluster_state:ok`.
    pub fn start_cluster() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("nodes-{port}.conf"));
            let conf = conf.display().to_string();
            nodes.push(spawn_node(
                dir.path(),
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf,
                    "--cluster-node-timeout",
                    "2000",
                ],
            ));
            addrs.push(SocketAddr::from(([127, 0, 0, 1], port)));
        }
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(addrs.iter().map(ToString::to_string))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = addrs.iter().all(|a| {
                Command::new("redis-cli")
                    .args(["-p", &a.port().to_string(), "cluster", "info"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
            });
            if ok {
                break;
            }
            assert!(Instant::now() < end, "cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        Redis {
            nodes,
            addrs,
            password: None,
            dir,
        }
    }

    /// `redis://` URLs of the nodes (with the password).
    pub fn urls(&self) -> Vec<String> {
        self.addrs
            .iter()
            .map(|a| match &self.password {
                Some(pw) => format!("redis://default:{pw}@{a}"),
                None => format!("redis://{a}"),
            })
            .collect()
    }

    /// Runs a `redis-cli` command against the first node; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-p", &self.addrs[0].port().to_string()]);
        if self.addrs.len() > 1 {
            cmd.arg("-c");
        }
        if let Some(pw) = &self.password {
            cmd.args(["--no-auth-warning", "-a", pw]);
        }
        let out = cmd.args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Kills every node (SIGKILL).
    pub fn kill(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
    }

    /// Restarts a killed standalone node on the same port.
    pub fn restart(&mut self) {
        assert_eq!(self.addrs.len(), 1, "restart is for standalone");
        let port = self.addrs[0].port();
        let mut extra = Vec::new();
        let pw = self.password.clone();
        if let Some(pw) = &pw {
            extra.extend(["--requirepass", pw.as_str()]);
        }
        self.nodes = vec![spawn_node(self.dir.path(), port, &extra)];
    }
}
