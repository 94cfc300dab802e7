//! Crate-internal steps the criterion benches measure, built only with the
//! `bench-internals` feature: attestation conditions compiled once, then
//! judged over prepared statements the way a verification (or a re-judge
//! from kept evidence) runs them.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::policy::AttestationRequirement;
use crate::policy::conditions::{self, Condition, Environment, SignerInfo, Statement};
use crate::validators::cosign::attestations::{self, Attested, Requirement};

/// One requirement's compiled conditions and the statements they judge.
pub struct Judging {
    env: Environment,
    written: AttestationRequirement,
    conditions: Vec<Arc<Condition>>,
    attested: Vec<Attested>,
}

impl Judging {
    /// Compiles `written`'s conditions and prepares each statement
    /// (in-toto JSON) as signed by root `root`. Panics on bad input: this is
    /// for benches.
    pub fn new(written: AttestationRequirement, statements: &[Vec<u8>], root: &str) -> Self {
        let env = conditions::environment();
        let conditions = written
            .conditions
            .iter()
            .map(|c| Arc::new(Condition::compile(&env, c).expect("condition compiles")))
            .collect();
        let attested = statements
            .iter()
            .map(|payload| Attested {
                predicate_type: written.predicate_type.clone(),
                root: root.to_string(),
                statement: Some(Statement::parse(
                    payload,
                    SignerInfo {
                        root,
                        keyless: None,
                    },
                )),
            })
            .collect();
        Judging {
            env,
            written,
            conditions,
            attested,
        }
    }

    fn requirement(&self) -> Requirement<'_> {
        Requirement {
            written: &self.written,
            accepted: vec![
                self.attested
                    .first()
                    .map(|a| a.root.clone())
                    .unwrap_or_default(),
            ],
            conditions: self.conditions.clone(),
        }
    }

    /// Judges the requirement at `now`: true when it is met.
    pub fn judge(&self, now: DateTime<Utc>) -> bool {
        attestations::judge(&self.attested, &[self.requirement()], &self.env, now).is_ok()
    }

    /// Judges it and, when a condition reads `now`, looks ahead for the
    /// time the allow flips (what a fresh verification or a re-judge from
    /// kept evidence does).
    pub fn judge_with_flip(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let requirement = [self.requirement()];
        attestations::judge(&self.attested, &requirement, &self.env, now).ok()?;
        attestations::next_flip(&self.attested, &requirement, &self.env, now)
    }
}

/// Prepares one statement (parse, size cap, conversion to CEL values).
pub fn prepare(payload: &[u8]) -> bool {
    Statement::parse(
        payload,
        SignerInfo {
            root: "bench",
            keyless: None,
        },
    )
    .is_ok()
}
