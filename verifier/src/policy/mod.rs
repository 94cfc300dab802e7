//! The image policy: which rule (and so which validator) applies to an image.
//!
//! All patterns are compiled into one [`regex::RegexSet`], so matching an
//! image against any number of rules is a single linear scan of the
//! reference. Rules are kept sorted by specificity (most specific first,
//! config order breaking ties), so the winning rule is the lowest matching
//! index.

pub(crate) mod conditions;
mod options;
pub(crate) mod pattern;

use std::sync::Arc;

use regex::RegexSet;

pub use options::{
    AttestationRequirement, Mode, RuleOptions, SigstorePolicy, VerificationLevel, VerifyTimestamp,
};
pub use pattern::{Pattern, PatternError};

/// One policy rule after config validation.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The compiled pattern.
    pub pattern: Pattern,
    /// The name of the validator the rule routes to.
    pub validator: String,
    /// The rule's `with` options.
    pub options: RuleOptions,
    /// The rule's position in the config file (0-based), for messages.
    pub index: usize,
    /// A fingerprint of the rule and of its validator's config, trust roots
    /// included. Cache keys include it, so that any config change misses.
    pub fingerprint: [u8; 32],
}

/// The compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Arc<Rule>>,
    set: RegexSet,
}

/// Why the policy could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The combined pattern set is too large for the regex engine.
    #[error("the policy's patterns could not be compiled: {0}")]
    Regex(#[from] regex::Error),
}

impl Policy {
    /// Compiles rules, ranking them by specificity.
    pub fn new(mut rules: Vec<Rule>) -> Result<Self, PolicyError> {
        // Stable sort: equal specificity keeps config order.
        rules.sort_by(|a, b| b.pattern.cmp_specificity(&a.pattern));
        // A generous lazy-DFA cache: with many rules the default one thrashes
        // and matching falls back to a much slower engine.
        let set = regex::RegexSetBuilder::new(rules.iter().map(|r| r.pattern.to_regex()))
            .size_limit(64 << 20)
            .dfa_size_limit(64 << 20)
            .build()?;
        Ok(Policy {
            rules: rules.into_iter().map(Arc::new).collect(),
            set,
        })
    }

    /// The most specific rule whose pattern matches the normalised reference
    /// in full, if any.
    pub fn matching_rule(&self, normalized_reference: &str) -> Option<&Arc<Rule>> {
        self.set
            .matches(normalized_reference)
            .iter()
            .next()
            .map(|i| &self.rules[i])
    }

    /// The rules, most specific first.
    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::ImageRef;

    fn policy(patterns: &[&str]) -> Policy {
        Policy::new(
            patterns
                .iter()
                .enumerate()
                .map(|(i, p)| Rule {
                    pattern: Pattern::parse(p).unwrap(),
                    validator: format!("v{i}"),
                    options: RuleOptions::default(),
                    index: i,
                    fingerprint: [0; 32],
                })
                .collect(),
        )
        .unwrap()
    }

    fn winner(p: &Policy, image: &str) -> Option<String> {
        let r = ImageRef::parse(image).unwrap();
        p.matching_rule(&r.to_string())
            .map(|r| r.pattern.written().to_string())
    }

    #[test]
    fn anchored_no_substring_match() {
        let p = policy(&["registry.k8s.io/*"]);
        assert_eq!(
            winner(&p, "registry.k8s.io/pause:3.9").as_deref(),
            Some("registry.k8s.io/*")
        );
        assert_eq!(
            winner(&p, "attacker.example/registry.k8s.io/pause:3.9"),
            None
        );
        assert_eq!(
            winner(&p, "registry.k8s.io.attacker.example/pause:3.9"),
            None
        );
        assert_eq!(
            winner(&p, "registry.k8s.io/sub/pause:3.9"),
            None,
            "* does not cross /"
        );
    }

    #[test]
    fn double_star_crosses_slashes() {
        let p = policy(&["registry.k8s.io/**"]);
        assert!(winner(&p, "registry.k8s.io/a/b/c:1").is_some());
        assert!(winner(&p, "evil.io/registry.k8s.io/a:1").is_none());
    }

    #[test]
    fn docker_hub_shorthand() {
        let p = policy(&["nginx:*", "bitnami/*"]);
        assert_eq!(
            winner(&p, "docker.io/library/nginx:1").as_deref(),
            Some("nginx:*")
        );
        assert_eq!(winner(&p, "nginx").as_deref(), Some("nginx:*"));
        assert_eq!(winner(&p, "bitnami/redis:7").as_deref(), Some("bitnami/*"));
        assert_eq!(winner(&p, "evil.io/nginx:1"), None);
        assert_eq!(winner(&p, "nginxx:1"), None);
    }

    #[test]
    fn no_match_without_rule() {
        let p = policy(&["docker.io/library/*:*"]);
        assert_eq!(winner(&p, "quay.io/org/app:1"), None);
    }

    /// The precedence table documented in the README.
    #[test]
    fn precedence_table() {
        let p = policy(&[
            "**",
            "docker.io/**",
            "docker.io/library/*:*",
            "docker.io/library/nginx:*",
            "docker.io/library/nginx:1.25",
            "registry.example.com/**",
            "registry.example.com/*/*",
            "registry.example.com/team/*",
            "registry.example.com/team/app:*",
        ]);
        let table = [
            ("nginx:1.25", "docker.io/library/nginx:1.25"),
            ("nginx:1.24", "docker.io/library/nginx:*"),
            ("redis:7", "docker.io/library/*:*"),
            ("bitnami/redis:7", "docker.io/**"),
            ("quay.io/org/app:1", "**"),
            (
                "registry.example.com/team/app:1",
                "registry.example.com/team/app:*",
            ),
            (
                "registry.example.com/team/web:1",
                "registry.example.com/team/*",
            ),
            (
                "registry.example.com/other/web:1",
                "registry.example.com/*/*",
            ),
            ("registry.example.com/a/b/c:1", "registry.example.com/**"),
            // One image, one meaning: host spellings are canonical.
            (
                "REGISTRY.EXAMPLE.COM:443/team/app:1",
                "registry.example.com/team/app:*",
            ),
            (
                "registry-1.docker.io/library/nginx:1.25",
                "docker.io/library/nginx:1.25",
            ),
            ("index.docker.io/bitnami/redis:7", "docker.io/**"),
        ];
        for (image, expected) in table {
            assert_eq!(winner(&p, image).as_deref(), Some(expected), "{image}");
        }
    }

    #[test]
    fn ties_keep_config_order() {
        let p = policy(&["a.io/*/x:*", "a.io/x/*:*"]);
        // Both match a.io/x/x:1. "a.io/x/*:*" has the longer literal prefix
        // in the second component, so it wins regardless of order.
        assert_eq!(winner(&p, "a.io/x/x:1").as_deref(), Some("a.io/x/*:*"));
        let p = policy(&["a.io/*:1", "a.io/*:*"]);
        // Same components and prefixes; fewer stars wins.
        assert_eq!(winner(&p, "a.io/b:1").as_deref(), Some("a.io/*:1"));
    }

    #[test]
    fn many_rules() {
        let patterns: Vec<String> = (0..1000)
            .map(|i| format!("registry.example.com/team{i}/*"))
            .collect();
        let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let p = policy(&refs);
        assert_eq!(
            winner(&p, "registry.example.com/team777/app:1").as_deref(),
            Some("registry.example.com/team777/*")
        );
    }
}
