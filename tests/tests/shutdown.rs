//! SIGTERM stops the gateway and the verifier even when their stderr has no
//! reader any more (a log collector or a wrapper script that died first).
//! tracing-subscriber reports a failed log write with `eprintln!`, which
//! panics on the same broken stderr: that used to kill the task waiting for
//! the signal, and the process then ignored SIGTERM until SIGKILL.

use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use portcullis_e2e::procs::wait_for_tcp;
use portcullis_e2e::{TestCa, bin_path, free_port};

const POLICY: &str = r#"
validators:
  - name: allow
    type: static
    approve: true
policy:
  - pattern: "**"
    validator: allow
"#;

/// Spawns `command` with stderr on a pipe whose read end is then closed.
fn spawn_with_broken_stderr(mut command: Command) -> Child {
    let mut child = command
        .env("PORTCULLIS_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stderr.take());
    child
}

/// A `portcullis-verifier serve` command on a free port with the allow-all
/// policy in `dir` (leases off: no start-up wait), and its address.
fn verifier_command(dir: &std::path::Path) -> (Command, SocketAddr) {
    let config = dir.join("policy.yaml");
    std::fs::write(&config, POLICY).unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut command = Command::new(bin_path("portcullis-verifier"));
    command
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--epoch-lease-ms")
        .arg("0");
    (command, addr)
}

/// A `portcullis-gateway` command on a free port in front of the verifier
/// at `verifier`, with a certificate from a CA in `dir`, and its address.
fn gateway_command(dir: &std::path::Path, verifier: SocketAddr) -> (Command, SocketAddr) {
    let ca = TestCa::new(dir, "webhook");
    let leaf = ca.issue("gateway");
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut command = Command::new(bin_path("portcullis-gateway"));
    command
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--tls-cert")
        .arg(&leaf.chain)
        .arg("--tls-key")
        .arg(&leaf.key)
        .arg("--verifier")
        .arg(format!("http://{verifier}"));
    (command, addr)
}

/// Starts `command` with its output discarded and waits until `addr`
/// listens.
fn spawn_listening(mut command: Command, addr: SocketAddr) -> Child {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    assert!(
        wait_for_tcp(addr, Duration::from_secs(20)),
        "{addr} did not listen"
    );
    child
}

/// Sends SIGTERM and waits up to `limit` for the exit.
fn terminate(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn sigterm_stops_both_binaries_with_a_broken_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let (verifier, verifier_addr) = verifier_command(dir.path());
    let mut verifier = spawn_with_broken_stderr(verifier);
    assert!(
        wait_for_tcp(verifier_addr, Duration::from_secs(20)),
        "verifier did not listen"
    );

    let (gateway, gateway_addr) = gateway_command(dir.path(), verifier_addr);
    let mut gateway = spawn_with_broken_stderr(gateway);
    assert!(
        wait_for_tcp(gateway_addr, Duration::from_secs(20)),
        "gateway did not listen"
    );

    // The gateway drains for at most 10 s; a healthy stop takes far less.
    let gateway_exit = terminate(&mut gateway, Duration::from_secs(15));
    assert!(
        gateway_exit.is_some_and(|s| s.success()),
        "gateway did not stop on SIGTERM: {gateway_exit:?}"
    );
    let verifier_exit = terminate(&mut verifier, Duration::from_secs(15));
    assert!(
        verifier_exit.is_some_and(|s| s.success()),
        "verifier did not stop on SIGTERM: {verifier_exit:?}"
    );
}

/// A verifier stops promptly on SIGTERM while a gateway is connected to it,
/// although the gateway keeps a `grpc.health.v1` watch (a stream that never
/// ends by itself) open on it: the verifier turns NOT_SERVING first, the
/// gateway closes its watch, and open calls drain (for at most 10 s).
#[test]
fn sigterm_stops_a_verifier_a_gateway_is_watching() {
    let dir = tempfile::tempdir().unwrap();
    let (verifier, verifier_addr) = verifier_command(dir.path());
    let mut verifier = spawn_listening(verifier, verifier_addr);
    let (mut gateway, gateway_addr) = gateway_command(dir.path(), verifier_addr);
    let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
    let mut gateway = gateway
        .env("PORTCULLIS_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn gateway");
    assert!(
        wait_for_tcp(gateway_addr, Duration::from_secs(20)),
        "gateway did not listen"
    );
    // Until the gateway's watch is open (it logs each status it receives).
    let log_path = dir.path().join("gateway.log");
    let opened = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("verifier health watch")
    {
        assert!(
            Instant::now() < opened,
            "the gateway never watched the verifier"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let exit = terminate(&mut verifier, Duration::from_secs(5));
    assert!(
        exit.is_some_and(|s| s.success()),
        "verifier did not stop on SIGTERM within 5 s: {exit:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let _ = gateway.kill();
    let _ = gateway.wait();
}

/// A client that keeps a health watch open and ignores NOT_SERVING (an old
/// or hostile one) holds a stopping verifier up for the drain limit (10 s)
/// at most, never until SIGKILL.
#[test]
fn a_watch_that_never_closes_delays_a_stop_by_the_drain_limit_at_most() {
    let dir = tempfile::tempdir().unwrap();
    let (verifier, addr) = verifier_command(dir.path());
    let mut verifier = spawn_listening(verifier, addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut stream = rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        let mut stream = client
            .watch(tonic_health::pb::HealthCheckRequest {
                service: "portcullis.v1.Verifier".into(),
            })
            .await
            .expect("watch")
            .into_inner();
        let first = stream.message().await.expect("status").expect("a status");
        assert_eq!(first.status, 1, "SERVING");
        stream
    });
    let started = Instant::now();
    let exit = terminate(&mut verifier, Duration::from_secs(20));
    assert!(
        exit.is_some_and(|s| s.success()),
        "verifier did not stop within 20 s: {exit:?}"
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}");
    // The watch saw NOT_SERVING before the verifier gave up on it.
    let next = rt.block_on(stream.message());
    assert!(matches!(&next, Ok(Some(s)) if s.status == 2), "{next:?}");
}
