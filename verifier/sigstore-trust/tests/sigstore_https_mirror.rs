//! The `https://` mirror path, end to end on loopback: a TUF repository made
//! by `tests/fixtures/tuf/mktuf.py`, served over TLS with a certificate from
//! a test CA. The CA is made trusted through `SSL_CERT_FILE`, which the
//! platform verifier (rustls-native-certs) reads on Linux; this binary holds
//! a single test so that setting it affects nothing else.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use chrono::Utc;
use portcullis_sigstore_trust::{TrustRootError, load_via_tuf, parse_trusted_root};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn python() -> String {
    std::env::var("PORTCULLIS_PYTHON").unwrap_or_else(|_| {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local/venv/bin/python");
        venv.display().to_string()
    })
}

fn fixtures() -> PathBuf {
    std::env::var_os("PORTCULLIS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures"))
}

fn run_python(args: &[&str]) -> String {
    let out = Command::new(python()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Tls {
    ca_pem: String,
    config: Arc<rustls::ServerConfig>,
}

/// A CA and a server certificate for 127.0.0.1 issued by it.
fn tls(name: &str) -> Tls {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("portcullis test CA {name}"),
    );
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf_params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
    .unwrap();
    Tls {
        ca_pem: ca.pem(),
        config: Arc::new(config),
    }
}

/// Serves `root` over HTTPS on loopback (GET only, Connection: close).
async fn serve_https(root: PathBuf, config: Arc<rustls::ServerConfig>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let root = root.clone();
            tokio::spawn(async move {
                let Ok(mut sock) = acceptor.accept(sock).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let file = root.join(path.trim_start_matches('/'));
                let (status, body) = match (path.contains(".."), tokio::fs::read(&file).await) {
                    (false, Ok(body)) => ("200 OK", body),
                    _ => ("404 Not Found", b"not found".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("https://127.0.0.1:{}", addr.port())
}

#[test]
fn https_mirror_verifies_the_server_certificate() {
    let tmp = TempDir::new().unwrap();
    let pki = tmp.path().join("pki");
    run_python(&[
        fixtures().join("cosign/sigtool.py").to_str().unwrap(),
        "pki",
        pki.to_str().unwrap(),
    ]);
    let repo = tmp.path().join("repo");
    let summary: Value = serde_json::from_str(&run_python(&[
        fixtures().join("tuf/mktuf.py").to_str().unwrap(),
        "--out",
        repo.to_str().unwrap(),
        "--trusted-root",
        pki.join("trusted_root.json").to_str().unwrap(),
        "--key-type",
        "ecdsa",
    ]))
    .unwrap();
    let root = std::fs::read(summary["root"].as_str().unwrap()).unwrap();

    let trusted = tls("trusted");
    let untrusted = tls("untrusted");
    let ca_file = tmp.path().join("ca.pem");
    std::fs::write(&ca_file, &trusted.ca_pem).unwrap();
    // SAFETY: set before any thread of this test binary exists (the runtime
    // is built below, and this binary has one test).
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca_file) };

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let good = serve_https(repo.clone(), trusted.config.clone()).await;
        let trust = load_via_tuf(
            &root,
            &format!("{good}/metadata/"),
            &format!("{good}/targets/"),
            None,
            Utc::now(),
        )
        .await
        .unwrap();
        let expected = std::fs::read(pki.join("trusted_root.json")).unwrap();
        assert_eq!(trust, parse_trusted_root(&expected, Utc::now()).unwrap());

        // A server whose certificate chains to a CA the system does not trust.
        let bad = serve_https(repo.clone(), untrusted.config.clone()).await;
        let err = load_via_tuf(
            &root,
            &format!("{bad}/metadata/"),
            &format!("{bad}/targets/"),
            None,
            Utc::now(),
        )
        .await
        .unwrap_err();
        eprintln!("untrusted server: {err}");
        match &err {
            TrustRootError::Fetch { url, message } => {
                assert!(url.starts_with(&bad), "{url}");
                assert!(message.to_lowercase().contains("certificate"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    });
}
