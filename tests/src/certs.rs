//! A throw-away CA and leaf certificates for loopback TLS.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// A test CA that issues leaf certificates for 127.0.0.1 / localhost.
pub struct TestCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
    dir: PathBuf,
}

/// PEM files of an issued leaf certificate.
#[derive(Debug, Clone)]
pub struct LeafFiles {
    /// The leaf certificate (PEM).
    pub cert: PathBuf,
    /// Leaf + CA chain (PEM).
    pub chain: PathBuf,
    /// The private key (PKCS#8 PEM).
    pub key: PathBuf,
}

impl TestCa {
    /// Creates a CA and writes `ca.crt` into `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA cert");
        let cert_pem = cert.pem();
        std::fs::write(dir.join("ca.crt"), &cert_pem).expect("write CA");
        TestCa {
            cert_pem,
            issuer: Issuer::new(params, key),
            dir: dir.to_path_buf(),
        }
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The path of `ca.crt`.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Issues a leaf for 127.0.0.1 and localhost (server and client auth)
    /// and writes `<name>.crt`, `<name>.chain.crt` and `<name>.key`.
    pub fn issue(&self, name: &str) -> LeafFiles {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        let files = LeafFiles {
            cert: self.dir.join(format!("{name}.crt")),
            chain: self.dir.join(format!("{name}.chain.crt")),
            key: self.dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write cert");
        std::fs::write(&files.chain, format!("{}{}", cert.pem(), self.cert_pem))
            .expect("write chain");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }
}

impl LeafFiles {
    /// The certificate and key as a client identity for reqwest.
    pub fn identity(&self) -> reqwest::Identity {
        let mut pem = std::fs::read(&self.cert).expect("read cert");
        pem.extend(std::fs::read(&self.key).expect("read key"));
        reqwest::Identity::from_pem(&pem).expect("client identity")
    }
}
