//! Counting signers: one vote per signing key.
//!
//! A threshold counts trust roots that signed, but one signature must never
//! count for two roots: the same public key configured under two names, or
//! one keyless certificate matched by a broad `subjectRegex` and an exact
//! `subject`, is one signer. So every (signer, root) pair that verified is
//! an edge, signers are identified by their key (SHA-256 of the DER SPKI;
//! each keyless certificate has its own key), and the roots that count are
//! a maximum matching between signers and roots: each signer stands for at
//! most one root, each root is satisfied by at most one signer.
//!
//! Required roots are matched first. Kuhn's augmenting paths never unmatch a
//! root once it is matched, so if a required root cannot be matched at its
//! turn, no assignment satisfies all of them, and adding optional roots
//! afterwards never takes a signer from a required one. Trust roots are few
//! (a handful per rule), so the simple O(roots × edges) algorithm is enough.

/// Which roots counted, and which required roots could not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assignment {
    /// Per root (by index): the signer that counts for it, if any.
    pub(crate) matched: Vec<Option<[u8; 32]>>,
    /// Required roots (by index) left without a signer of their own.
    pub(crate) unmet_required: Vec<usize>,
}

impl Assignment {
    /// How many roots count.
    pub(crate) fn count(&self) -> usize {
        self.matched.iter().filter(|m| m.is_some()).count()
    }
}

/// Assigns distinct signers to distinct roots. `edges` are (signer, root
/// index) pairs that verified; `roots` is how many roots there are;
/// `required` are root indices matched first.
pub(crate) fn assign(edges: &[([u8; 32], usize)], roots: usize, required: &[usize]) -> Assignment {
    let mut signers: Vec<[u8; 32]> = edges.iter().map(|(s, _)| *s).collect();
    signers.sort_unstable();
    signers.dedup();
    let index = |s: &[u8; 32]| signers.binary_search(s).unwrap_or(0);
    let mut adjacent: Vec<Vec<usize>> = vec![Vec::new(); roots];
    for (signer, root) in edges {
        if *root < roots && !adjacent[*root].contains(&index(signer)) {
            adjacent[*root].push(index(signer));
        }
    }
    // owner[signer] = the root it currently stands for.
    let mut owner: Vec<Option<usize>> = vec![None; signers.len()];
    let mut unmet_required = Vec::new();
    let mut order: Vec<usize> = Vec::new();
    for &r in required {
        if r < roots && !order.contains(&r) {
            order.push(r);
        }
    }
    let optional: Vec<usize> = (0..roots).filter(|r| !order.contains(r)).collect();
    let required_count = order.len();
    order.extend(optional);
    for (turn, &root) in order.iter().enumerate() {
        let mut seen = vec![false; signers.len()];
        if !augment(root, &adjacent, &mut owner, &mut seen) && turn < required_count {
            unmet_required.push(root);
        }
    }
    let mut matched = vec![None; roots];
    for (signer, root) in owner.iter().enumerate() {
        if let Some(root) = root {
            matched[*root] = Some(signers[signer]);
        }
    }
    Assignment {
        matched,
        unmet_required,
    }
}

/// Finds an augmenting path from `root` (Kuhn's algorithm).
fn augment(
    root: usize,
    adjacent: &[Vec<usize>],
    owner: &mut [Option<usize>],
    seen: &mut [bool],
) -> bool {
    for &signer in &adjacent[root] {
        if seen[signer] {
            continue;
        }
        seen[signer] = true;
        let free = match owner[signer] {
            None => true,
            Some(other) => augment(other, adjacent, owner, seen),
        };
        if free {
            owner[signer] = Some(root);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [1; 32];
    const B: [u8; 32] = [2; 32];

    #[test]
    fn one_key_under_two_names_counts_once() {
        // Roots 0 (alice) and 1 (alice-again) share a key: one signature.
        let a = assign(&[(A, 0), (A, 1)], 2, &[]);
        assert_eq!(a.count(), 1);
        // Two keys: two votes.
        let a = assign(&[(A, 0), (B, 1)], 2, &[]);
        assert_eq!(a.count(), 2);
    }

    #[test]
    fn overlapping_identities_need_two_certificates() {
        // Root 0: broad regex, root 1: exact subject; one certificate
        // matches both.
        assert_eq!(assign(&[(A, 0), (A, 1)], 2, &[]).count(), 1);
        // Two certificates, each matching both: two votes.
        assert_eq!(assign(&[(A, 0), (A, 1), (B, 0), (B, 1)], 2, &[]).count(), 2);
    }

    #[test]
    fn matching_reassigns_to_count_the_most() {
        // A fits roots 0 and 1, B only root 0: A must stand for root 1.
        let a = assign(&[(A, 0), (A, 1), (B, 0)], 2, &[]);
        assert_eq!(a.count(), 2);
        assert_eq!(a.matched, vec![Some(B), Some(A)]);
    }

    #[test]
    fn required_roots_come_first_and_keep_their_signer() {
        // Root 1 is required; A fits both, nothing else signed.
        let a = assign(&[(A, 0), (A, 1)], 2, &[1]);
        assert!(a.unmet_required.is_empty());
        assert_eq!(a.matched, vec![None, Some(A)]);
        // Both required, one signer: one is unmet.
        let a = assign(&[(A, 0), (A, 1)], 2, &[0, 1]);
        assert_eq!(a.unmet_required, vec![1]);
        // A required root nobody signed.
        let a = assign(&[(A, 0)], 2, &[1]);
        assert_eq!(a.unmet_required, vec![1]);
        assert_eq!(a.count(), 1);
    }

    proptest::proptest! {
        #[test]
        fn never_more_votes_than_signers_or_roots(
            edges in proptest::collection::vec((0u8..4, 0usize..5), 0..20),
            required in proptest::collection::vec(0usize..5, 0..3),
        ) {
            let edges: Vec<([u8; 32], usize)> = edges.into_iter().map(|(s, r)| ([s; 32], r)).collect();
            let a = assign(&edges, 5, &required);
            let signers: std::collections::BTreeSet<_> = edges.iter().map(|e| e.0).collect();
            proptest::prop_assert!(a.count() <= signers.len());
            let used: Vec<_> = a.matched.iter().flatten().collect();
            let distinct: std::collections::BTreeSet<_> = used.iter().collect();
            proptest::prop_assert_eq!(used.len(), distinct.len(), "a signer counted twice");
            for (root, signer) in a.matched.iter().enumerate() {
                if let Some(s) = signer {
                    proptest::prop_assert!(edges.contains(&(*s, root)));
                }
            }
        }
    }
}
