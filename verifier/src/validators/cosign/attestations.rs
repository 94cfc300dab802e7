//! Whether verified attestations meet a rule's `attestations:` list.
//!
//! Input: the attestations whose signatures verified and whose statements
//! name the image ([`Attested`]). For each requirement, the attestations
//! of its predicate type signed by one of its accepted roots are the
//! candidates; a root *satisfies* the requirement when one of its
//! candidates meets every condition. Then, as for signatures, `required`
//! roots must all satisfy it and at least `threshold` (default 1) distinct
//! roots must.
//!
//! Pure over its inputs and the clock: the same attestations judged at
//! another `now` may answer differently, which [`next_flip`] uses to bound
//! how long an allow that reads `now` may be cached.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::error::VerifyError;
use crate::policy::AttestationRequirement;
use crate::policy::conditions::{Condition, Environment, Outcome, Statement};

/// A verified attestation of the image.
#[derive(Debug, Clone)]
pub(crate) struct Attested {
    /// Its predicate type.
    pub(crate) predicate_type: String,
    /// The trust root whose key or identity verified it.
    pub(crate) root: String,
    /// Its statement ready for conditions, or why it cannot be evaluated
    /// (over the size cap, not JSON). `None` when no requirement of its
    /// type has conditions.
    pub(crate) statement: Option<Result<Statement, String>>,
}

/// One requirement with its conditions compiled and its accepted roots
/// resolved.
#[derive(Debug)]
pub(crate) struct Requirement<'a> {
    /// As written in the rule.
    pub(crate) written: &'a AttestationRequirement,
    /// The roots whose attestations count.
    pub(crate) accepted: Vec<String>,
    /// The compiled conditions, in the order written.
    pub(crate) conditions: Vec<Arc<Condition>>,
}

/// Checks every requirement at time `now`; the first unmet one is the
/// denial.
pub(crate) fn judge(
    attested: &[Attested],
    requirements: &[Requirement<'_>],
    env: &Environment,
    now: DateTime<Utc>,
) -> Result<(), VerifyError> {
    judge_remembering(attested, requirements, env, now, &mut Memo::new())
}

/// Outcomes of conditions that do not read `now`, by (requirement,
/// attestation, condition): while looking ahead in time only the others
/// change.
type Memo = HashMap<(usize, usize, usize), Outcome>;

fn judge_remembering(
    attested: &[Attested],
    requirements: &[Requirement<'_>],
    env: &Environment,
    now: DateTime<Utc>,
    memo: &mut Memo,
) -> Result<(), VerifyError> {
    requirements
        .iter()
        .enumerate()
        .try_for_each(|(i, r)| judge_one(attested, (i, r), env, now, memo))
}

fn judge_one(
    attested: &[Attested],
    (index, requirement): (usize, &Requirement<'_>),
    env: &Environment,
    now: DateTime<Utc>,
    memo: &mut Memo,
) -> Result<(), VerifyError> {
    let written = requirement.written;
    let predicate_type = written.predicate_type.as_str();
    let candidates: Vec<(usize, &Attested)> = attested
        .iter()
        .enumerate()
        .filter(|(_, a)| {
            a.predicate_type == predicate_type && requirement.accepted.contains(&a.root)
        })
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::AttestationMissing(predicate_type.to_string()));
    }
    let mut satisfied: BTreeSet<&str> = BTreeSet::new();
    let mut first_failed: Option<&str> = None;
    let mut first_error: Option<String> = None;
    for (at, candidate) in candidates {
        if requirement.conditions.is_empty() {
            satisfied.insert(&candidate.root);
            continue;
        }
        let statement = match &candidate.statement {
            Some(Ok(statement)) => statement,
            Some(Err(why)) => {
                first_error.get_or_insert_with(|| why.clone());
                continue;
            }
            None => {
                first_error.get_or_insert_with(|| "statement not prepared".to_string());
                continue;
            }
        };
        let mut holds = true;
        for (j, condition) in requirement.conditions.iter().enumerate() {
            let outcome = if condition.uses_now {
                statement.evaluate(env, condition, now)
            } else {
                memo.entry((index, at, j))
                    .or_insert_with(|| statement.evaluate(env, condition, now))
                    .clone()
            };
            match outcome {
                Outcome::Holds => {}
                Outcome::Fails => {
                    first_failed.get_or_insert(&condition.source);
                    holds = false;
                    break;
                }
                Outcome::Error(e) => {
                    first_error.get_or_insert_with(|| format!("{}: {e}", condition.source));
                    holds = false;
                    break;
                }
            }
        }
        if holds {
            satisfied.insert(&candidate.root);
        }
    }
    let missing: Vec<&str> = written
        .required
        .iter()
        .flatten()
        .map(String::as_str)
        .filter(|r| !satisfied.contains(r))
        .collect();
    let threshold = written.threshold.unwrap_or(1) as usize;
    if missing.is_empty() && satisfied.len() >= threshold {
        return Ok(());
    }
    if let Some(condition) = first_failed {
        return Err(VerifyError::AttestationConditionFailed {
            predicate_type: predicate_type.to_string(),
            condition: condition.to_string(),
        });
    }
    if let Some(message) = first_error {
        return Err(VerifyError::AttestationPolicyError {
            predicate_type: predicate_type.to_string(),
            message,
        });
    }
    let by = if satisfied.is_empty() {
        "none".to_string()
    } else {
        satisfied.into_iter().collect::<Vec<_>>().join(", ")
    };
    Err(VerifyError::AttestationMissing(if missing.is_empty() {
        format!("{predicate_type}: {threshold} roots needed, attested by {by}")
    } else {
        format!("{predicate_type}: not attested by {}", missing.join(", "))
    }))
}

/// How far ahead an allow that reads `now` is judged again.
pub(crate) const FLIP_HORIZON: Duration = Duration::seconds(300);
/// The spacing of the look-ahead samples; a flip is then located to the
/// second. A condition true for less than this between two samples can be
/// missed, and the allow is re-judged by the horizon anyway.
const FLIP_STEP: Duration = Duration::seconds(5);

/// When an allow judged at `now` stops holding by the clock alone: the
/// first second within [`FLIP_HORIZON`] at which [`judge`] denies, found
/// by sampling every [`FLIP_STEP`] and then bisecting; or `now` plus the
/// horizon when none is found, so that the allow is judged again then
/// (from the verified statements, not the registry). `None` when no
/// condition reads `now`.
pub(crate) fn next_flip(
    attested: &[Attested],
    requirements: &[Requirement<'_>],
    env: &Environment,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let reads_now = requirements
        .iter()
        .flat_map(|r| &r.conditions)
        .any(|c| c.uses_now);
    if !reads_now {
        return None;
    }
    let mut memo = Memo::new();
    let mut holds =
        |t: DateTime<Utc>| judge_remembering(attested, requirements, env, t, &mut memo).is_ok();
    let steps = FLIP_HORIZON.num_seconds() / FLIP_STEP.num_seconds();
    let mut last_good = now;
    for k in 1..=steps {
        let t = now + FLIP_STEP * k as i32;
        if !holds(t) {
            // Bisect (last_good, t] to the second.
            let (mut good, mut bad) = (last_good, t);
            while (bad - good) > Duration::seconds(1) {
                let mid = good + (bad - good) / 2;
                if holds(mid) {
                    good = mid;
                } else {
                    bad = mid;
                }
            }
            return Some(bad);
        }
        last_good = t;
    }
    Some(now + FLIP_HORIZON)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::conditions::{SignerInfo, environment};

    fn attested(root: &str, predicate: serde_json::Value) -> Attested {
        let payload = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [],
            "predicateType": "p",
            "predicate": predicate,
        });
        Attested {
            predicate_type: "p".into(),
            root: root.into(),
            statement: Some(Statement::parse(
                payload.to_string().as_bytes(),
                SignerInfo {
                    root,
                    keyless: None,
                },
            )),
        }
    }

    fn requirement<'a>(
        written: &'a AttestationRequirement,
        env: &Environment,
        accepted: &[&str],
    ) -> Requirement<'a> {
        Requirement {
            written,
            accepted: accepted.iter().map(|s| s.to_string()).collect(),
            conditions: written
                .conditions
                .iter()
                .map(|c| Arc::new(Condition::compile(env, c).unwrap()))
                .collect(),
        }
    }

    fn written(
        conditions: &[&str],
        threshold: Option<u32>,
        required: &[&str],
    ) -> AttestationRequirement {
        AttestationRequirement {
            predicate_type: "p".into(),
            trust_root: None,
            conditions: conditions.iter().map(|s| s.to_string()).collect(),
            threshold,
            required: (!required.is_empty())
                .then(|| required.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn one_satisfying_attestation_per_root_counts() {
        let env = environment();
        let w = written(&["predicate.ok == true", "predicate.n > 1"], None, &[]);
        let r = requirement(&w, &env, &["a", "b"]);
        let now = Utc::now();
        let bad = attested("a", serde_json::json!({"ok": true, "n": 1}));
        let good = attested("a", serde_json::json!({"ok": true, "n": 2}));
        let err = judge(
            std::slice::from_ref(&bad),
            std::slice::from_ref(&r),
            &env,
            now,
        )
        .unwrap_err();
        assert!(
            matches!(&err, VerifyError::AttestationConditionFailed { condition, .. } if condition == "predicate.n > 1"),
            "{err:?}"
        );
        judge(&[bad, good], std::slice::from_ref(&r), &env, now).unwrap();
        // An attestation by a root the requirement does not accept.
        let other = attested("c", serde_json::json!({"ok": true, "n": 2}));
        assert!(matches!(
            judge(&[other], &[r], &env, now),
            Err(VerifyError::AttestationMissing(_))
        ));
    }

    #[test]
    fn thresholds_and_required_roots() {
        let env = environment();
        let ok = serde_json::json!({"ok": true});
        let w = written(&["predicate.ok"], Some(2), &[]);
        let r = requirement(&w, &env, &["a", "b"]);
        let now = Utc::now();
        // Two attestations by one root are one vote.
        let one_root = [attested("a", ok.clone()), attested("a", ok.clone())];
        assert!(matches!(
            judge(&one_root, std::slice::from_ref(&r), &env, now),
            Err(VerifyError::AttestationMissing(m)) if m.contains("2 roots needed")
        ));
        judge(
            &[attested("a", ok.clone()), attested("b", ok.clone())],
            &[r],
            &env,
            now,
        )
        .unwrap();
        let w = written(&["predicate.ok"], None, &["b"]);
        let r = requirement(&w, &env, &["a", "b"]);
        assert!(matches!(
            judge(&[attested("a", ok.clone())], std::slice::from_ref(&r), &env, now),
            Err(VerifyError::AttestationMissing(m)) if m.contains("not attested by b")
        ));
        // b's attestation fails the condition: that is the reason given.
        assert!(matches!(
            judge(
                &[
                    attested("a", ok),
                    attested("b", serde_json::json!({"ok": false}))
                ],
                &[r],
                &env,
                now
            ),
            Err(VerifyError::AttestationConditionFailed { .. })
        ));
    }

    #[test]
    fn errors_are_policy_errors() {
        let env = environment();
        let w = written(&["predicate.n / 0 == 1"], None, &[]);
        let r = requirement(&w, &env, &["a"]);
        assert!(matches!(
            judge(
                &[attested("a", serde_json::json!({"n": 1}))],
                &[r],
                &env,
                Utc::now()
            ),
            Err(VerifyError::AttestationPolicyError { .. })
        ));
    }

    #[test]
    fn the_flip_is_found_to_the_second() {
        let env = environment();
        let now = Utc::now();
        let expires = now + Duration::seconds(42);
        let w = written(&["now < timestamp(predicate.expires)"], None, &[]);
        let r = requirement(&w, &env, &["a"]);
        let a = [attested(
            "a",
            serde_json::json!({"expires": expires.to_rfc3339()}),
        )];
        let rs = std::slice::from_ref(&r);
        judge(&a, rs, &env, now).unwrap();
        let flip = next_flip(&a, rs, &env, now).unwrap();
        assert!(
            flip >= expires && flip <= expires + Duration::seconds(1),
            "{flip} vs {expires}"
        );
        assert!(judge(&a, rs, &env, flip).is_err());
        // No flip within the horizon: judged again at its end.
        let far = [attested(
            "a",
            serde_json::json!({"expires": (now + Duration::days(1)).to_rfc3339()}),
        )];
        assert_eq!(next_flip(&far, rs, &env, now), Some(now + FLIP_HORIZON));
        // Conditions that do not read `now` never flip.
        let w = written(&["has(predicate.expires)"], None, &[]);
        let r = requirement(&w, &env, &["a"]);
        assert_eq!(next_flip(&far, &[r], &env, now), None);
    }
}
