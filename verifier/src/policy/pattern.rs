//! Image patterns: anchored globs over the normalised reference.
//!
//! * `*` matches any run of characters except `/`; `**` matches any run,
//!   `/` included. Every other character is literal.
//! * A pattern is matched against the whole normalised reference
//!   (`registry/repository[:tag][@digest]`): there is no implicit `*` at
//!   either end, so `registry.k8s.io/*` never matches
//!   `attacker.example/registry.k8s.io/x`.
//! * Patterns are normalised like references, so users may omit `docker.io/`
//!   and `library/`: `nginx:*` means `docker.io/library/nginx:*` and
//!   `bitnami/*` means `docker.io/bitnami/*`. A first component that looks
//!   like a host (contains `.` or `:`, is `localhost`) is canonicalised like
//!   a reference's host (lower case, no `:443`, `docker.io` for Docker Hub's
//!   other names; see [`crate::reference::canonical_host`]), so that
//!   `GHCR.IO/**` and `ghcr.io:443/**` mean `ghcr.io/**`. One consisting
//!   only of wildcards (`*`, `**`) is taken as written.

use std::cmp::Ordering;

use crate::reference::{DOCKER_HUB, canonical_host, looks_like_host};

/// A compiled image pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The pattern as written in the config.
    written: String,
    /// The normalised pattern.
    normalized: String,
    /// Specificity, precomputed for ranking.
    rank: Specificity,
}

/// Why a pattern is rejected at config load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern is empty.
    #[error("the pattern is empty")]
    Empty,
    /// Three or more consecutive `*`.
    #[error(
        "`***` is not a valid wildcard; use `*` (within one path component) or `**` (across components)"
    )]
    TripleStar,
    /// The pattern contains whitespace or control characters.
    #[error("the pattern contains whitespace or control characters")]
    Whitespace,
}

impl Pattern {
    /// Parses and normalises a pattern.
    pub fn parse(written: &str) -> Result<Self, PatternError> {
        if written.is_empty() {
            return Err(PatternError::Empty);
        }
        if written.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(PatternError::Whitespace);
        }
        if written.contains("***") {
            return Err(PatternError::TripleStar);
        }
        let normalized = normalize(written);
        let rank = Specificity::of(&normalized);
        Ok(Pattern {
            written: written.to_string(),
            normalized,
            rank,
        })
    }

    /// The pattern as written.
    pub fn written(&self) -> &str {
        &self.written
    }

    /// The normalised pattern, e.g. `docker.io/library/nginx:*`.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// An anchored regular expression equivalent to the pattern.
    pub fn to_regex(&self) -> String {
        let mut re = String::with_capacity(self.normalized.len() * 2 + 2);
        re.push('^');
        let mut rest = self.normalized.as_str();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("**") {
                re.push_str("(?s:.*)");
                rest = r;
            } else if let Some(r) = rest.strip_prefix('*') {
                re.push_str("[^/]*");
                rest = r;
            } else {
                let end = rest.find('*').unwrap_or(rest.len());
                re.push_str(&regex::escape(&rest[..end]));
                rest = &rest[end..];
            }
        }
        re.push('$');
        re
    }

    /// Compares specificity: `Ordering::Greater` means `self` is more
    /// specific than `other` and wins when both match.
    pub fn cmp_specificity(&self, other: &Pattern) -> Ordering {
        self.rank.cmp(&other.rank)
    }
}

/// Normalises the host and `library/` parts of a pattern.
fn normalize(written: &str) -> String {
    // Connaisseur's catch-alls (`*:*`, `*`, `**:*`…: wildcards and colons
    // only, one component) match every image there (it matches patterns
    // as substrings, `*` crossing `/`); here they mean "any image", `**`.
    if !written.contains('/')
        && written.contains('*')
        && written.chars().all(|c| c == '*' || c == ':')
    {
        return "**".to_string();
    }
    let (first, rest) = match written.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (written, None),
    };
    let wildcard_only = !first.is_empty() && first.chars().all(|c| c == '*');
    match rest {
        Some(rest) if wildcard_only || looks_like_host(first) => {
            let host = if wildcard_only {
                first.to_string()
            } else {
                canonical_host(first)
            };
            if host == DOCKER_HUB && !rest.contains('/') && !rest.contains("**") {
                format!("{DOCKER_HUB}/library/{rest}")
            } else {
                format!("{host}/{rest}")
            }
        }
        // `**` alone, or a pattern starting with `**`, is taken as written.
        _ if written.starts_with("**") => written.to_string(),
        Some(_) => format!("{DOCKER_HUB}/{written}"),
        None => format!("{DOCKER_HUB}/library/{written}"),
    }
}

/// How specific a normalised pattern is. Compared field by field:
/// 1. a pattern without wildcards beats any pattern with them;
/// 2. more `/`-separated components beats fewer;
/// 3. component by component, left to right, a longer literal prefix (the
///    characters before the component's first `*`) beats a shorter one, and a
///    component without wildcards beats one with them;
/// 4. fewer `**` beats more, then fewer `*` beats more.
///
/// Remaining ties are broken by config order (earlier wins) by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Specificity {
    exact: bool,
    components: usize,
    /// Per component: (literal prefix length, component has no wildcard).
    prefixes: Vec<(usize, bool)>,
    /// Negated counts so that larger means more specific.
    neg_double_stars: isize,
    neg_stars: isize,
}

impl Specificity {
    fn of(normalized: &str) -> Self {
        let components: Vec<&str> = normalized.split('/').collect();
        let double_stars = normalized.matches("**").count();
        let stars = normalized.matches('*').count() - 2 * double_stars;
        Specificity {
            exact: !normalized.contains('*'),
            components: components.len(),
            prefixes: components
                .iter()
                .map(|c| (c.find('*').unwrap_or(c.len()), !c.contains('*')))
                .collect(),
            neg_double_stars: -(double_stars as isize),
            neg_stars: -(stars as isize),
        }
    }
}

impl PartialOrd for Specificity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Specificity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.exact
            .cmp(&other.exact)
            .then(self.components.cmp(&other.components))
            .then_with(|| {
                for (a, b) in self.prefixes.iter().zip(&other.prefixes) {
                    let c = a.0.cmp(&b.0).then(a.1.cmp(&b.1));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                Ordering::Equal
            })
            .then(self.neg_double_stars.cmp(&other.neg_double_stars))
            .then(self.neg_stars.cmp(&other.neg_stars))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> String {
        Pattern::parse(p).unwrap().normalized().to_string()
    }

    #[test]
    fn normalisation() {
        assert_eq!(n("nginx:*"), "docker.io/library/nginx:*");
        // Connaisseur's catch-alls mean any image.
        assert_eq!(n("*:*"), "**");
        assert_eq!(n("*"), "**");
        assert!(Pattern::parse("*:*").unwrap().to_regex() == "^(?s:.*)$");
        assert_eq!(n("bitnami/*"), "docker.io/bitnami/*");
        assert_eq!(n("docker.io/nginx:*"), "docker.io/library/nginx:*");
        assert_eq!(n("index.docker.io/org/app:*"), "docker.io/org/app:*");
        assert_eq!(n("docker.io/library/*:*"), "docker.io/library/*:*");
        assert_eq!(n("registry.k8s.io/*"), "registry.k8s.io/*");
        assert_eq!(n("localhost:5000/**"), "localhost:5000/**");
        assert_eq!(n("**"), "**");
        assert_eq!(n("docker.io/**"), "docker.io/**");
        assert_eq!(n("*/team/*"), "*/team/*");
        assert_eq!(n("**/app:*"), "**/app:*");
        assert_eq!(n("GHCR.IO/**"), "ghcr.io/**");
        assert_eq!(n("ghcr.io:443/org/*"), "ghcr.io/org/*");
        assert_eq!(
            n("registry-1.docker.io/nginx:*"),
            "docker.io/library/nginx:*"
        );
        assert_eq!(n("registry-1.docker.io/**"), "docker.io/**");
    }

    #[test]
    fn rejects_bad_patterns() {
        assert_eq!(Pattern::parse("").unwrap_err(), PatternError::Empty);
        assert_eq!(
            Pattern::parse("a/***").unwrap_err(),
            PatternError::TripleStar
        );
        assert_eq!(Pattern::parse("a b").unwrap_err(), PatternError::Whitespace);
    }

    #[test]
    fn regex_is_anchored() {
        let p = Pattern::parse("registry.k8s.io/*").unwrap();
        assert_eq!(p.to_regex(), r"^registry\.k8s\.io/[^/]*$");
        let p = Pattern::parse("a.io/**").unwrap();
        assert_eq!(p.to_regex(), r"^a\.io/(?s:.*)$");
    }

    #[test]
    fn specificity_order() {
        let p = |s: &str| Pattern::parse(s).unwrap();
        let gt = |a: &str, b: &str| {
            assert_eq!(p(a).cmp_specificity(&p(b)), Ordering::Greater, "{a} > {b}")
        };
        gt("docker.io/library/nginx:1.25", "docker.io/library/nginx:*");
        gt("docker.io/library/nginx:*", "docker.io/library/*:*");
        gt(
            "registry.example.com/team/app:*",
            "registry.example.com/team/**",
        );
        gt("registry.example.com/team/*", "registry.example.com/**");
        gt("registry.example.com/team/*", "registry.example.com/*/*");
        gt("registry.example.com/*/*", "registry.example.com/**");
        gt("registry.example.com/**", "**");
        gt("a.io/b/*", "a.io/b/**");
    }
}
