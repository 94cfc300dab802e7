//! `portcullis-verifier sigstore verify-bundle`: verifies one Sigstore
//! bundle against an artifact (a file or a `sha256:` digest) or an in-toto
//! subject, speaking the CLI protocol of sigstore/sigstore-conformance
//! (`docs/cli_protocol.md`, the verify flows). It is a thin adapter over
//! the code that verifies images: the same bundle parser
//! (`cosign::candidate::from_bundle`), trusted-root loader
//! (`portcullis-sigstore-trust`), and `cosign::check::check` with its tlog,
//! timestamp, certificate and identity checks; only where the signed bytes
//! come from differs (the artifact instead of an image manifest).
//!
//! Exit status: 0 verified; 1 not verified (the reason on stderr); 2 usage
//! or input error.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use clap::{Args, Subcommand};
use sha2::{Digest as _, Sha256};

use crate::config::cosign::{
    Matcher, TransparencyRoots, TrustRoot, TrustRootKind, parse_public_key,
};
use crate::validators::cosign::candidate::from_bundle;
use crate::validators::cosign::check::{CheckOptions, check};

/// The `sigstore` subcommands.
#[derive(Debug, Subcommand)]
pub enum SigstoreCommand {
    /// Verify a Sigstore bundle against an artifact or digest (the
    /// sigstore-conformance `verify-bundle` flow).
    VerifyBundle(VerifyBundleArgs),
}

/// Options of `sigstore verify-bundle`.
#[derive(Debug, Args)]
pub struct VerifyBundleArgs {
    /// The Sigstore bundle (JSON, v0.1 to v0.3).
    #[arg(long)]
    pub bundle: PathBuf,
    /// The expected identity (SAN) of the signing certificate.
    #[arg(long, requires = "certificate_oidc_issuer", conflicts_with = "key")]
    pub certificate_identity: Option<String>,
    /// The expected OIDC issuer of the signing certificate.
    #[arg(long, requires = "certificate_identity", conflicts_with = "key")]
    pub certificate_oidc_issuer: Option<String>,
    /// A PEM public key to verify with instead of a certificate identity.
    #[arg(long, required_unless_present = "certificate_identity")]
    pub key: Option<PathBuf>,
    /// A trusted root (JSON) instead of the shipped public-good one.
    #[arg(long)]
    pub trusted_root: Option<PathBuf>,
    /// Use Sigstore's staging instance.
    #[arg(long)]
    pub staging: bool,
    /// The artifact: a file, or `sha256:<64 hex>` (which is not a file).
    pub file_or_digest: String,
}

/// Runs a `sigstore` subcommand.
pub async fn run_sigstore(command: SigstoreCommand) -> ExitCode {
    match command {
        SigstoreCommand::VerifyBundle(args) => match verify_bundle(&args).await {
            Ok(summary) => {
                eprintln!("OK: {summary}");
                ExitCode::SUCCESS
            }
            Err(Failed::Input(m)) => {
                eprintln!("error: {m}");
                ExitCode::from(2)
            }
            Err(Failed::Verification(m)) => {
                eprintln!("verification failed: {m}");
                ExitCode::from(1)
            }
        },
    }
}

/// Why `verify-bundle` did not succeed.
#[derive(Debug)]
enum Failed {
    /// Bad arguments or unreadable input.
    Input(String),
    /// The bundle does not verify.
    Verification(String),
}

/// The artifact to verify against.
struct Artifact {
    /// `sha256:<hex>`.
    digest: String,
    /// Its bytes, when given as a file.
    bytes: Option<Vec<u8>>,
}

/// Reads `FILE_OR_DIGEST` as the protocol says: a `sha256:` prefix, the
/// length of a hex SHA-256, hex digits, and not a path on disk make a
/// digest; anything else is a file.
fn artifact(arg: &str) -> Result<Artifact, Failed> {
    if let Some(hex) = arg.strip_prefix("sha256:")
        && hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && !std::path::Path::new(arg).exists()
    {
        return Ok(Artifact {
            digest: format!("sha256:{}", hex.to_ascii_lowercase()),
            bytes: None,
        });
    }
    let bytes = std::fs::read(arg)
        .map_err(|e| Failed::Input(format!("cannot read artifact {arg}: {e}")))?;
    Ok(Artifact {
        digest: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
        bytes: Some(bytes),
    })
}

async fn transparency(args: &VerifyBundleArgs) -> Result<TransparencyRoots, Failed> {
    let now = Utc::now();
    let trust = match (&args.trusted_root, args.staging) {
        (Some(path), _) => {
            let json = std::fs::read(path).map_err(|e| {
                Failed::Input(format!("cannot read trusted root {}: {e}", path.display()))
            })?;
            portcullis_sigstore_trust::parse_trusted_root(&json, now)
                .map_err(|e| Failed::Input(format!("trusted root {}: {e}", path.display())))?
        }
        (None, true) => {
            return Err(Failed::Input(
                "--staging needs --trusted-root: the staging trusted root is not shipped (see README, Sigstore conformance)".into(),
            ));
        }
        (None, false) => portcullis_sigstore_trust::public_good::load(now)
            .await
            .map_err(|e| Failed::Input(format!("public-good trusted root: {e}")))?,
    };
    Ok(TransparencyRoots {
        rekor_keys: trust.rekor_keys,
        ct_keys: trust.ct_keys,
        fulcio_certs: trust.fulcio_certs,
        rekor_v2_logs: trust.rekor_v2_logs,
        tsas: trust.tsas,
    })
}

fn trust_root(args: &VerifyBundleArgs) -> Result<TrustRoot, Failed> {
    let kind = match (
        &args.key,
        &args.certificate_identity,
        &args.certificate_oidc_issuer,
    ) {
        (Some(path), _, _) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| Failed::Input(format!("cannot read key {}: {e}", path.display())))?;
            let (key, spki_der) = parse_public_key(&pem)
                .map_err(|e| Failed::Input(format!("key {}: {e}", path.display())))?;
            TrustRootKind::Key { key, spki_der }
        }
        (None, Some(identity), Some(issuer)) => TrustRootKind::Keyless {
            issuer: Matcher::Exact(issuer.clone()),
            subject: Matcher::Exact(identity.clone()),
        },
        _ => {
            return Err(Failed::Input(
                "give --key, or --certificate-identity with --certificate-oidc-issuer".into(),
            ));
        }
    };
    Ok(TrustRoot {
        name: "verify-bundle".into(),
        kind,
    })
}

async fn verify_bundle(args: &VerifyBundleArgs) -> Result<String, Failed> {
    let root = trust_root(args)?;
    let transparency = transparency(args).await?;
    let artifact = artifact(&args.file_or_digest)?;
    let json = std::fs::read(&args.bundle)
        .map_err(|e| Failed::Input(format!("cannot read bundle {}: {e}", args.bundle.display())))?;
    let candidate = from_bundle(&json, args.bundle.display().to_string())
        .map_err(|e| Failed::Verification(e.to_string()))?;
    let options = CheckOptions {
        digest: &artifact.digest,
        // As sigstore-go's verifier: a log entry is required of every
        // signature the trusted root has a log for.
        require_tlog_for_keys: transparency.has_tlog(),
        transparency: &transparency,
        manifest: artifact.bytes.as_deref(),
        policy: Default::default(),
    };
    let pass =
        check(&candidate, &root, options).map_err(|f| Failed::Verification(format!("{f:?}")))?;
    Ok(format!("{:?} for {}", pass.claim, artifact.digest))
}
