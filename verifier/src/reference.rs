//! Image references: parsing and normalisation as Docker does it.
//!
//! `nginx` becomes `docker.io/library/nginx:latest`; a first component that
//! contains `.` or `:`, is `localhost`, or has upper-case letters is a
//! registry host (and must be followed by a path). Tags, digests and
//! tag+digest are kept.
//!
//! **One image has one meaning: the one the container runtime pulls.** So
//! the host is canonicalised before anything matches or fetches it
//! ([`canonical_host`]): host names are case-insensitive (`GHCR.IO` is
//! `ghcr.io`), `:443` is the HTTPS default (`ghcr.io:443` is `ghcr.io`), and
//! `index.docker.io` and `registry-1.docker.io` are Docker Hub
//! (`docker.io`). The path is case-sensitive and must be lower case (an
//! upper-case path is `INVALID_REFERENCE`, as the runtime refuses it).
//!
//! The grammar follows the distribution project's reference grammar:
//! path components are `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`, tags are
//! `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, digests `algorithm:hex`. The whole
//! name (host and path) is at most 255 characters.

use std::fmt;

/// The registry host Docker uses for unqualified names.
pub(crate) const DOCKER_HUB: &str = "docker.io";
/// Other names of Docker Hub's registry: the legacy index and the API host
/// the runtime actually connects to.
const DOCKER_HUB_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];
const MAX_NAME_LEN: usize = 255;
const MAX_INPUT_LEN: usize = 4096;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why a reference is invalid. The text is shown to users in deny messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The reference is empty.
    #[error("the image reference is empty")]
    Empty,
    /// The reference is longer than any valid reference can be.
    #[error("the image reference is longer than {MAX_INPUT_LEN} characters")]
    TooLong,
    /// The registry host part is malformed.
    #[error("invalid registry host {0:?}")]
    InvalidHost(String),
    /// A repository path component is malformed.
    #[error(
        "invalid repository path component {0:?} (lower-case letters, digits and separators only)"
    )]
    InvalidPathComponent(String),
    /// The tag is malformed.
    #[error("invalid tag {0:?}")]
    InvalidTag(String),
    /// The digest is malformed.
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    /// Host and path together exceed 255 characters.
    #[error("the repository name is longer than {MAX_NAME_LEN} characters")]
    NameTooLong,
}

impl ImageRef {
    /// Parses and normalises a reference as written in a manifest.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if input.len() > MAX_INPUT_LEN {
            return Err(ReferenceError::TooLong);
        }
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((n, d)) => (n, Some(parse_digest(d)?)),
            None => (input, None),
        };
        // The tag is after the last ':' that follows the last '/'.
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                let tag = &name_and_tag[at + 1..];
                if !is_valid_tag(tag) {
                    return Err(ReferenceError::InvalidTag(tag.to_string()));
                }
                (&name_and_tag[..at], Some(tag.to_string()))
            }
            None => (name_and_tag, None),
        };
        let (registry, path) = split_host(name)?;
        let mut repository = String::with_capacity(path.len() + 8);
        if registry == DOCKER_HUB && !path.contains('/') {
            repository.push_str("library/");
        }
        repository.push_str(path);
        for component in repository.split('/') {
            if !is_valid_component(component) {
                return Err(ReferenceError::InvalidPathComponent(component.to_string()));
            }
        }
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong);
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry host, with port if any (e.g. `docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path (e.g. `library/nginx`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if the reference has one (a digest-only reference has none).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest given in the reference, if any (`sha256:<hex>`).
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The same reference without its digest (tag kept; `latest` if it had
    /// neither), for resolving the tag.
    pub fn without_digest(&self) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(self.tag.clone().unwrap_or_else(|| "latest".to_string())),
            digest: None,
        }
    }

    /// `registry/repository`, e.g. `docker.io/library/nginx`. This is also
    /// the GUN of Docker Content Trust.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The reference pinned to `digest`, keeping the tag as Connaisseur does:
    /// `registry/repository[:tag]@digest`.
    pub fn pinned(&self, digest: &str) -> String {
        match &self.tag {
            Some(tag) => format!("{}/{}:{tag}@{digest}", self.registry, self.repository),
            None => format!("{}/{}@{digest}", self.registry, self.repository),
        }
    }
}

impl fmt::Display for ImageRef {
    /// The normalised form: `registry/repository[:tag][@digest]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Splits `name` into registry host and path, applying Docker's rule for
/// when the first component is a host.
fn split_host(name: &str) -> Result<(String, &str), ReferenceError> {
    match name.split_once('/') {
        Some((first, rest)) if looks_like_host(first) => {
            if !is_valid_host(first) {
                return Err(ReferenceError::InvalidHost(first.to_string()));
            }
            let host = canonical_host(first);
            // A host recognised only by its upper case (`MYHOST/app`) would,
            // lower-cased, read as a Docker Hub namespace: two meanings for
            // one string. Refused.
            if !looks_like_host(&host) {
                return Err(ReferenceError::InvalidHost(first.to_string()));
            }
            Ok((host, rest))
        }
        _ => Ok((DOCKER_HUB.to_string(), name)),
    }
}

/// The canonical spelling of a registry host (`host[:port]`, as validated
/// by the reference grammar, or as written in a pattern or config): lower
/// case, without the default HTTPS port `:443`, and `docker.io` for Docker
/// Hub's other names. Wildcards in patterns are left alone.
pub(crate) fn canonical_host(host: &str) -> String {
    let lower = host.to_ascii_lowercase();
    let without_port = match lower.strip_suffix(":443") {
        // `[v6]:443` and `name:443`; never the last group of a bare v6
        // literal (those are always bracketed in references).
        Some(rest) if !rest.is_empty() && (!rest.starts_with('[') || rest.ends_with(']')) => {
            rest.to_string()
        }
        _ => lower,
    };
    if DOCKER_HUB_ALIASES.contains(&without_port.as_str()) {
        DOCKER_HUB.to_string()
    } else {
        without_port
    }
}

/// Docker's test: a first component is a host if it contains `.` or `:`, is
/// `localhost`, or is not all lower case.
pub(crate) fn looks_like_host(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn is_valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        // IPv6 literal: [addr]:port?
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => return is_valid_port(port),
                None => return false,
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if port.is_some_and(|p| !is_valid_port(p)) {
        return false;
    }
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_valid_port(port: &str) -> bool {
    !port.is_empty()
        && port.len() <= 5
        && port.chars().all(|c| c.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn is_valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__", or one or more "-".
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes[1..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// Accepts `sha256:<64 lower hex>`, `sha384:<96>` and `sha512:<128>`.
fn parse_digest(d: &str) -> Result<String, ReferenceError> {
    let invalid = || ReferenceError::InvalidDigest(d.to_string());
    let (algorithm, hex) = d.split_once(':').ok_or_else(invalid)?;
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(invalid()),
    };
    if hex.len() != expected_len
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(invalid());
    }
    Ok(d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:a154797b8300165956ee1f16d98f3a1426301c1168f0462c73ce9bc03361cabf";

    fn norm(s: &str) -> String {
        ImageRef::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_hub_normalisation() {
        assert_eq!(norm("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("nginx:1.25"), "docker.io/library/nginx:1.25");
        assert_eq!(norm("library/nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(norm("docker.io/nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            norm("index.docker.io/nginx"),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(norm("index.docker.io/a/b:c"), "docker.io/a/b:c");
    }

    #[test]
    fn registry_detection() {
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("localhost:5000/app:v1"), "localhost:5000/app:v1");
        assert_eq!(
            norm("127.0.0.1:5000/team/app:v1"),
            "127.0.0.1:5000/team/app:v1"
        );
        assert_eq!(
            norm("registry.k8s.io/pause:3.9"),
            "registry.k8s.io/pause:3.9"
        );
        // No dot, colon or localhost: a Docker Hub namespace, not a host.
        assert_eq!(norm("myhost/app"), "docker.io/myhost/app:latest");
        assert_eq!(norm("[::1]:5000/app"), "[::1]:5000/app:latest");
        let r = ImageRef::parse("ghcr.io/org/sub/app:1").unwrap();
        assert_eq!(r.registry(), "ghcr.io");
        assert_eq!(r.repository(), "org/sub/app");
        assert_eq!(r.name(), "ghcr.io/org/sub/app");
    }

    #[test]
    fn host_spellings_have_one_meaning() {
        for (written, canonical) in [
            ("GHCR.IO/org/app:1", "ghcr.io/org/app:1"),
            ("ghcr.io:443/org/app:1", "ghcr.io/org/app:1"),
            ("Ghcr.Io:443/org/app:1", "ghcr.io/org/app:1"),
            (
                "registry-1.docker.io/library/nginx:1",
                "docker.io/library/nginx:1",
            ),
            ("registry-1.docker.io/nginx:1", "docker.io/library/nginx:1"),
            (
                "REGISTRY-1.DOCKER.IO:443/bitnami/redis:7",
                "docker.io/bitnami/redis:7",
            ),
            (
                "index.docker.io:443/nginx",
                "docker.io/library/nginx:latest",
            ),
            ("docker.io:443/nginx", "docker.io/library/nginx:latest"),
            ("[::1]:443/app", "[::1]/app:latest"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("ghcr.io:4430/app", "ghcr.io:4430/app:latest"),
            ("LOCALHOST/app", "localhost/app:latest"),
        ] {
            assert_eq!(norm(written), canonical, "{written}");
        }
        // The path stays case-sensitive: upper case there is invalid.
        assert!(matches!(
            ImageRef::parse("ghcr.io/Org/app:1"),
            Err(ReferenceError::InvalidPathComponent(_))
        ));
        assert_eq!(canonical_host("*.Example.com"), "*.example.com");
    }

    #[test]
    fn bad_hosts_and_ports_are_invalid() {
        for bad in [
            "ghcr.io:0/x",
            "ghcr.io:65536/x",
            "ghcr.io:99999999/x",
            ":5000/x",
            "/x",
            "[]/x",
            "[::1/x",
            "ghcr.io:/x",
            "ghcr.io:-1/x",
            "ghcr..io/x",
        ] {
            assert!(
                matches!(
                    ImageRef::parse(bad),
                    Err(ReferenceError::InvalidHost(_) | ReferenceError::InvalidPathComponent(_))
                ),
                "{bad:?}: {:?}",
                ImageRef::parse(bad)
            );
        }
        assert!(ImageRef::parse("ghcr.io:65535/x").is_ok());
        assert!(ImageRef::parse("ghcr.io:1/x").is_ok());
    }

    #[test]
    fn digests_and_tags() {
        let r = ImageRef::parse(&format!("nginx@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.to_string(), format!("docker.io/library/nginx@{D}"));
        let r = ImageRef::parse(&format!("nginx:1.25@{D}")).unwrap();
        assert_eq!(r.tag(), Some("1.25"));
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.pinned(D), format!("docker.io/library/nginx:1.25@{D}"));
        let r = ImageRef::parse("localhost:5000/app").unwrap();
        assert_eq!(r.pinned(D), format!("localhost:5000/app:latest@{D}"));
    }

    #[test]
    fn invalid_references() {
        for bad in [
            "",
            "Nginx",
            "nginx:",
            ":tag",
            "nginx:-bad",
            "nginx@sha256:abc",
            "nginx@md5:0123456789abcdef0123456789abcdef",
            "a//b",
            "a/b/",
            "/a",
            "nginx:tag with space",
            "-host.com/app",
            "host.com:99999/app",
            "host.com:/app",
            "app__-x",
            "a...b",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be invalid");
        }
        // Docker treats an upper-case first component as a host name, but
        // host names are case-insensitive and `upper/app/x` is a Docker Hub
        // repository: a host recognised only by its case is refused.
        assert!(matches!(
            ImageRef::parse("UPPER/app/x"),
            Err(ReferenceError::InvalidHost(_))
        ));
        assert_eq!(norm("UPPER.example/app/x"), "upper.example/app/x:latest");
        let long = format!("{}/app", "a".repeat(300));
        assert_eq!(ImageRef::parse(&long), Err(ReferenceError::NameTooLong));
        assert_eq!(
            ImageRef::parse(&"a".repeat(5000)),
            Err(ReferenceError::TooLong)
        );
    }

    #[test]
    fn separators() {
        assert!(ImageRef::parse("a_b/c__d/e---f/g.h").is_ok());
        assert!(ImageRef::parse("a___b").is_err());
        assert!(ImageRef::parse("a._b").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,300}") {
            let _ = ImageRef::parse(&s);
        }

        #[test]
        fn canonical_hosts_are_fixed_points(s in "[a-zA-Z0-9.:-]{1,30}/[a-z0-9]{1,10}") {
            if let Ok(r) = ImageRef::parse(&s) {
                proptest::prop_assert_eq!(canonical_host(r.registry()), r.registry());
            }
        }

        #[test]
        fn parse_is_idempotent(s in "[a-zA-Z0-9._:/@-]{1,80}") {
            if let Ok(r) = ImageRef::parse(&s) {
                let again = ImageRef::parse(&r.to_string()).expect("normalised form parses");
                proptest::prop_assert_eq!(again, r);
            }
        }
    }
}
