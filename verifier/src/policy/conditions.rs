//! Conditions on what an attestation says: CEL expressions
//! (`with.attestations[*].conditions`) evaluated over a verified in-toto
//! statement, with the `cel` crate (cel-rust).
//!
//! * [`Condition::compile`] runs when the config loads. It refuses syntax
//!   errors, expressions over [`MAX_EXPRESSION_BYTES`] or
//!   [`MAX_NODES`] nodes, comprehensions nested deeper than
//!   [`MAX_COMPREHENSION_DEPTH`], variables other than [`VARIABLES`], and
//!   expressions whose result is plainly not a bool (a literal, arithmetic,
//!   a list or map, `size(...)`, `map`/`filter`). cel-rust has no type
//!   checker, so a result that is not a bool for other reasons is an
//!   evaluation error.
//! * [`Statement::parse`] prepares a verified statement once: at most
//!   [`MAX_STATEMENT_BYTES`] (a larger one is refused, not parsed),
//!   converted to CEL values, with the length of its widest list or map
//!   remembered for the step budget.
//! * [`Statement::evaluate`] runs one condition: `true`, `false` or an
//!   error. A field or index the statement lacks makes the condition
//!   false, not an error ("the provenance does not say so").
//!
//! **Cost.** CEL has no loops; only the comprehension macros (`all`,
//! `exists`, `exists_one`, `map`, `filter`) iterate. So the steps of an
//! evaluation are bounded by a sum over the expression's nodes of how
//! often each can run, computed before evaluating from two numbers of the
//! statement: `W`, its widest list or map, and `T`, the number of elements
//! of all its lists and maps together. A comprehension over a collection of
//! the statement (`predicate.xs.all(x, ...)`) runs its body up to `W + 1`
//! times per run of the comprehension; one over a part of the element the
//! enclosing comprehension is visiting (`r.findings.all(...)` inside
//! `results.all(r, ...)`) runs its body up to `T + 1` times in all, per run
//! of the enclosing comprehension (the elements are disjoint parts of one
//! JSON tree); one over anything else (a literal, a `map` result, a
//! concatenation) up to `nodes × (W + 1)` times. Above [`STEP_BUDGET`] the
//! evaluation is refused (`ATTESTATION_POLICY_ERROR`), so the budget holds
//! without running, timing or interrupting anything: a scan report with
//! 10,000 findings passes the README's nested example, while
//! `xs.all(x, xs.exists(y, ...))` over 2,000 elements (4 million pairs) is
//! refused.

use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, ExecutionError, Program, Value};
use chrono::{DateTime, Utc};

/// The variables a condition may use.
pub(crate) const VARIABLES: [&str; 5] = ["predicate", "predicateType", "subject", "signer", "now"];
/// CEL's type identifiers (`type(x) == string`), which are not variables.
const TYPE_NAMES: [&str; 12] = [
    "bool",
    "bytes",
    "double",
    "duration",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "timestamp",
    "type",
    "uint",
];
/// The longest expression accepted, in bytes.
pub(crate) const MAX_EXPRESSION_BYTES: usize = 2048;
/// The most AST nodes an expression may have (macros expanded).
pub(crate) const MAX_NODES: u64 = 512;
/// The deepest nesting of brackets (`(`, `[`, `{`) in the source. The
/// parser (ANTLR) recurses deeply per level: 16 levels need about 2 MiB
/// of stack in a debug build.
pub(crate) const MAX_NESTING: usize = 12;
/// The deepest expression tree (evaluation recurses once per level).
pub(crate) const MAX_DEPTH: u32 = 48;
/// The stack expressions are parsed on (a thread of its own, so that a
/// parse never depends on the caller's stack).
const PARSE_STACK_BYTES: usize = 64 * 1024 * 1024;
/// The deepest nesting of comprehensions (`all` inside `exists`: 2).
pub(crate) const MAX_COMPREHENSION_DEPTH: u32 = 2;
/// The largest statement (DSSE payload) conditions are evaluated on.
pub(crate) const MAX_STATEMENT_BYTES: usize = 1024 * 1024;
/// The most steps one evaluation may take, by the bound above.
pub(crate) const STEP_BUDGET: u64 = 1_000_000;

/// The CEL environment: the standard functions and macros (`size`,
/// `has`, `all`, `exists`, `exists_one`, `map`, `filter`, `matches`,
/// `startsWith`, `endsWith`, `contains`, `timestamp`, `duration`, ...).
/// Built once per validator and shared by every evaluation.
#[derive(Clone)]
pub(crate) struct Environment(Arc<Env>);

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Environment(cel stdlib)")
    }
}

/// A new environment (see [`Environment`]).
pub(crate) fn environment() -> Environment {
    Environment(Arc::new(Env::stdlib()))
}

/// A compiled condition.
#[derive(Debug)]
pub(crate) struct Condition {
    /// The expression as written (named in deny messages).
    pub(crate) source: String,
    program: Program,
    /// How often its nodes can run, as `(nodes, runs)` terms.
    terms: Vec<(u64, Runs)>,
    /// Whether it reads `now` (its result can change with time alone).
    pub(crate) uses_now: bool,
}

/// What one condition says about one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It holds.
    Holds,
    /// It does not hold (false, or a field it reads is absent).
    Fails,
    /// It could not be evaluated (a type error, a function error, a result
    /// that is not a bool, the step budget).
    Error(String),
}

impl Condition {
    /// Compiles and checks `source` (see the module doc). The error says
    /// what is wrong; the caller adds the file, rule and expression.
    pub(crate) fn compile(env: &Environment, source: &str) -> Result<Condition, String> {
        if source.len() > MAX_EXPRESSION_BYTES {
            return Err(format!(
                "the expression is {} bytes; at most {MAX_EXPRESSION_BYTES}",
                source.len()
            ));
        }
        let nesting = bracket_nesting(source);
        if nesting > MAX_NESTING {
            return Err(format!(
                "brackets nest {nesting} deep; at most {MAX_NESTING}"
            ));
        }
        let program = parse(env, source)?;
        let mut walk = Walk::default();
        walk.visit(program.expression(), 0, Runs::ONCE)?;
        if walk.levels > MAX_DEPTH {
            return Err(format!(
                "the expression is {} levels deep; at most {MAX_DEPTH}",
                walk.levels
            ));
        }
        if walk.nodes > MAX_NODES {
            return Err(format!(
                "the expression has {} nodes; at most {MAX_NODES}",
                walk.nodes
            ));
        }
        if walk.depth > MAX_COMPREHENSION_DEPTH {
            return Err(format!(
                "comprehensions nest {} deep; at most {MAX_COMPREHENSION_DEPTH}",
                walk.depth
            ));
        }
        if let Some(kind) = plainly_not_bool(program.expression()) {
            return Err(format!("the expression yields {kind}, not a bool"));
        }
        Ok(Condition {
            source: source.to_string(),
            program,
            terms: walk.terms,
            uses_now: walk.uses_now,
        })
    }

    /// The most steps evaluating this condition over `statement` can take.
    fn step_bound(&self, statement: &Statement) -> u64 {
        self.terms.iter().fold(0u64, |sum, (nodes, runs)| {
            sum.saturating_add(nodes.saturating_mul(runs.at(statement.widest, statement.total)))
        })
    }
}

/// How many times a node can run: `coef × (W + 1)^w × (T + 1)^t` (see the
/// module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Runs {
    coef: u64,
    w: u32,
    t: u32,
}

impl Runs {
    const ONCE: Runs = Runs {
        coef: 1,
        w: 0,
        t: 0,
    };

    fn at(self, widest: u64, total: u64) -> u64 {
        let pow = |base: u64, e: u32| base.saturating_add(1).checked_pow(e).unwrap_or(u64::MAX);
        self.coef
            .saturating_mul(pow(widest, self.w))
            .saturating_mul(pow(total, self.t))
    }
}

/// A comprehension being walked: its iteration variables, how often the
/// comprehension itself runs, and whether it iterates a collection of the
/// statement (so its elements are disjoint parts of the statement).
struct Frame {
    iter_vars: Vec<String>,
    runs: Runs,
    over_statement: bool,
}

/// Parses `source` on a thread with a stack of [`PARSE_STACK_BYTES`].
fn parse(env: &Environment, source: &str) -> Result<Program, String> {
    let parsed = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("cel-parse".into())
            .stack_size(PARSE_STACK_BYTES)
            .spawn_scoped(scope, || env.0.compile(source))
            .map_err(|e| format!("cannot start the parser thread: {e}"))?
            .join()
            .map_err(|_| "the parser failed".to_string())
    })?;
    parsed.map_err(|e| format!("syntax: {}", e.to_string().trim()))
}

/// The deepest nesting of `(`, `[` and `{` outside string literals.
fn bracket_nesting(source: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in source.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '(' | '[' | '{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    deepest
}

/// Counts nodes, comprehension depth and how often each node can run, and
/// checks that every free identifier is a known variable.
#[derive(Default)]
struct Walk {
    nodes: u64,
    depth: u32,
    /// The deepest level of the tree.
    levels: u32,
    /// The level being walked.
    current: u32,
    uses_now: bool,
    /// Names bound by enclosing comprehensions (iteration and accumulator
    /// variables).
    bound: Vec<String>,
    frames: Vec<Frame>,
    terms: Vec<(u64, Runs)>,
}

impl Walk {
    fn count(&mut self, runs: Runs) {
        match self.terms.iter_mut().find(|(_, r)| *r == runs) {
            Some((n, _)) => *n += 1,
            None => self.terms.push((1, runs)),
        }
    }

    fn visit(&mut self, e: &IdedExpr, depth: u32, runs: Runs) -> Result<(), String> {
        self.current += 1;
        let walked = self.visit_node(e, depth, runs);
        self.current -= 1;
        walked
    }

    fn visit_node(&mut self, e: &IdedExpr, depth: u32, runs: Runs) -> Result<(), String> {
        self.nodes += 1;
        self.depth = self.depth.max(depth);
        self.levels = self.levels.max(self.current);
        if self.nodes > MAX_NODES || self.current > MAX_DEPTH {
            // Stop walking a huge or deep tree early; the caller reports it.
            return Ok(());
        }
        self.count(runs);
        match &e.expr {
            Expr::Ident(name) => {
                if self.bound.iter().any(|b| b == name) {
                    return Ok(());
                }
                if name == "now" {
                    self.uses_now = true;
                }
                if !VARIABLES.contains(&name.as_str()) && !TYPE_NAMES.contains(&name.as_str()) {
                    return Err(format!(
                        "unknown variable `{name}` (known: {})",
                        VARIABLES.join(", ")
                    ));
                }
            }
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    self.visit(target, depth, runs)?;
                }
                for arg in &call.args {
                    self.visit(arg, depth, runs)?;
                }
            }
            Expr::Comprehension(c) => {
                self.visit(&c.iter_range, depth, runs)?;
                self.visit(&c.accu_init, depth, runs)?;
                let (body, over_statement) = self.body_runs(&c.iter_range, runs);
                let mut iter_vars = vec![c.iter_var.clone()];
                iter_vars.extend(c.iter_var2.clone());
                let before = self.bound.len();
                self.bound.extend(iter_vars.iter().cloned());
                self.bound.push(c.accu_var.clone());
                self.frames.push(Frame {
                    iter_vars,
                    runs,
                    over_statement,
                });
                self.visit(&c.loop_cond, depth + 1, body)?;
                self.visit(&c.loop_step, depth + 1, body)?;
                self.frames.pop();
                // The result reads the accumulator, once per comprehension.
                self.visit(&c.result, depth, runs)?;
                self.bound.truncate(before);
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.visit(element, depth, runs)?;
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    self.visit_entry(&entry.expr, depth, runs)?;
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    self.visit_entry(&entry.expr, depth, runs)?;
                }
            }
            Expr::Select(select) => self.visit(&select.operand, depth, runs)?,
            Expr::Literal(_) | Expr::Unspecified => {}
        }
        Ok(())
    }

    /// How often a comprehension over `range`, itself running `runs`
    /// times, runs its body; and whether it iterates the statement.
    fn body_runs(&self, range: &IdedExpr, runs: Runs) -> (Runs, bool) {
        let root = root_ident(range);
        let free = root.is_some_and(|r| !self.bound.iter().any(|b| b == r));
        if free {
            // A collection of the statement: at most W elements.
            return (
                Runs {
                    w: runs.w + 1,
                    ..runs
                },
                true,
            );
        }
        if let (Some(root), Some(frame)) = (root, self.frames.last())
            && frame.over_statement
            && frame.iter_vars.iter().any(|v| v == root)
        {
            // A part of the element the enclosing comprehension visits:
            // over all its iterations, at most T elements in all.
            return (
                Runs {
                    t: frame.runs.t + 1,
                    ..frame.runs
                },
                true,
            );
        }
        // Anything else: a literal, a `map`/`filter` result, a
        // concatenation, a variable bound further out.
        let mut nodes = 0u64;
        count_nodes(range, &mut nodes);
        (
            Runs {
                coef: runs.coef.saturating_mul(nodes),
                w: runs.w + 1,
                t: runs.t,
            },
            false,
        )
    }

    fn visit_entry(&mut self, entry: &EntryExpr, depth: u32, runs: Runs) -> Result<(), String> {
        match entry {
            EntryExpr::MapEntry(m) => {
                self.visit(&m.key, depth, runs)?;
                self.visit(&m.value, depth, runs)
            }
            EntryExpr::StructField(f) => self.visit(&f.value, depth, runs),
        }
    }
}

/// The identifier a field path starts from (`r` in `r.a.b` or `r["a"]`).
fn root_ident(e: &IdedExpr) -> Option<&str> {
    match &e.expr {
        Expr::Ident(name) => Some(name),
        Expr::Select(s) => root_ident(&s.operand),
        Expr::Call(c) if c.func_name == "_[_]" => c.args.first().and_then(root_ident),
        _ => None,
    }
}

fn count_nodes(e: &IdedExpr, n: &mut u64) {
    *n += 1;
    match &e.expr {
        Expr::Call(c) => {
            c.target.iter().for_each(|t| count_nodes(t, n));
            c.args.iter().for_each(|a| count_nodes(a, n));
        }
        Expr::Comprehension(c) => {
            for part in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                count_nodes(part, n);
            }
        }
        Expr::List(l) => l.elements.iter().for_each(|x| count_nodes(x, n)),
        Expr::Select(s) => count_nodes(&s.operand, n),
        Expr::Map(m) => m.entries.iter().for_each(|x| match &x.expr {
            EntryExpr::MapEntry(m) => {
                count_nodes(&m.key, n);
                count_nodes(&m.value, n);
            }
            EntryExpr::StructField(f) => count_nodes(&f.value, n),
        }),
        Expr::Struct(st) => st.entries.iter().for_each(|x| {
            if let EntryExpr::StructField(f) = &x.expr {
                count_nodes(&f.value, n);
            }
        }),
        Expr::Literal(_) | Expr::Ident(_) | Expr::Unspecified => {}
    }
}

/// What a top-level expression yields when that is certainly not a bool.
fn plainly_not_bool(e: &IdedExpr) -> Option<&'static str> {
    const ARITHMETIC: [&str; 6] = ["_+_", "_-_", "_*_", "_/_", "_%_", "-_"];
    const CONVERSIONS: [&str; 9] = [
        "size",
        "string",
        "int",
        "uint",
        "double",
        "bytes",
        "timestamp",
        "duration",
        "type",
    ];
    match &e.expr {
        Expr::Literal(LiteralValue::Boolean(_)) => None,
        Expr::Literal(LiteralValue::Null) => Some("null"),
        Expr::Literal(_) => Some("a literal"),
        Expr::List(_) => Some("a list"),
        Expr::Map(_) | Expr::Struct(_) => Some("a map"),
        Expr::Call(c) if ARITHMETIC.contains(&c.func_name.as_str()) => Some("a number"),
        Expr::Call(c) if CONVERSIONS.contains(&c.func_name.as_str()) => Some("a value"),
        // `map` and `filter` accumulate into a list and return it.
        Expr::Comprehension(c)
            if matches!(c.accu_init.expr, Expr::List(_))
                && matches!(&c.result.expr, Expr::Ident(n) if *n == c.accu_var) =>
        {
            Some("a list")
        }
        _ => None,
    }
}

/// Who signed a verified attestation, as the `signer` variable shows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignerInfo<'a> {
    /// The trust root's name.
    pub(crate) root: &'a str,
    /// For keyless signatures: the certificate's OIDC issuer and the
    /// subject (SAN) that matched the root.
    pub(crate) keyless: Option<(&'a str, &'a str)>,
}

/// A verified in-toto statement, ready for evaluation: its parts
/// converted to CEL values once, then lent to every evaluation.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    predicate: Box<dyn Val>,
    predicate_type: Box<dyn Val>,
    subject: Box<dyn Val>,
    signer: Box<dyn Val>,
    /// The length of the widest list or map in the statement (`W`).
    widest: u64,
    /// The number of elements of all its lists and maps (`T`).
    total: u64,
}

impl Statement {
    /// Prepares `payload` (a verified in-toto statement) signed by
    /// `signer`. Refuses a payload over [`MAX_STATEMENT_BYTES`] without
    /// parsing it.
    pub(crate) fn parse(payload: &[u8], signer: SignerInfo<'_>) -> Result<Statement, String> {
        if payload.len() > MAX_STATEMENT_BYTES {
            return Err(format!(
                "the statement is {} bytes, over the {MAX_STATEMENT_BYTES}-byte cap; not evaluated",
                payload.len()
            ));
        }
        let json: serde_json::Value =
            serde_json::from_slice(payload).map_err(|e| format!("statement: {e}"))?;
        let field = |name: &str| json.get(name).cloned().unwrap_or(serde_json::Value::Null);
        let to_cel = |v: serde_json::Value| -> Result<Box<dyn Val>, String> {
            cel::to_value(v)
                .map_err(|e| e.to_string())
                .and_then(|v| Box::<dyn Val>::try_from(v).map_err(|e| e.to_string()))
                .map_err(|e| format!("statement is not representable in CEL: {e}"))
        };
        let (kind, issuer, subject) = match signer.keyless {
            Some((issuer, subject)) => ("keyless", issuer, subject),
            None => ("key", "", ""),
        };
        let signer = serde_json::json!({
            "name": signer.root,
            "kind": kind,
            "issuer": issuer,
            "subject": subject,
        });
        let (widest, total) = sizes(&json);
        Ok(Statement {
            widest,
            total,
            predicate: to_cel(field("predicate"))?,
            predicate_type: to_cel(field("predicateType"))?,
            subject: to_cel(field("subject"))?,
            signer: to_cel(signer)?,
        })
    }

    /// Evaluates `condition` at time `now`.
    pub(crate) fn evaluate(
        &self,
        env: &Environment,
        condition: &Condition,
        now: DateTime<Utc>,
    ) -> Outcome {
        let bound = condition.step_bound(self);
        if bound > STEP_BUDGET {
            return Outcome::Error(format!(
                "over the step budget: up to {bound} steps on this statement (budget {STEP_BUDGET})"
            ));
        }
        let now: Box<dyn Val> = match Value::Timestamp(now.fixed_offset()).try_into() {
            Ok(v) => v,
            Err(e) => return Outcome::Error(format!("now: {e}")),
        };
        let variables = Variables {
            statement: self,
            now,
        };
        let mut context = Context::with_env(env.0.clone());
        context.set_variable_resolver(&variables);
        match condition.program.execute(&context) {
            Ok(Value::Bool(true)) => Outcome::Holds,
            Ok(Value::Bool(false)) => Outcome::Fails,
            Ok(other) => Outcome::Error(format!("yields {}, not a bool", other.type_of())),
            Err(ExecutionError::NoSuchKey(_) | ExecutionError::IndexOutOfBounds(_)) => {
                Outcome::Fails
            }
            Err(e) => Outcome::Error(e.to_string()),
        }
    }
}

/// Lends a statement's values to one evaluation, without copying them.
struct Variables<'a> {
    statement: &'a Statement,
    now: Box<dyn Val>,
}

impl VariableResolver for Variables<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let s = self.statement;
        let value: &'b dyn Val = match variable {
            "predicate" => s.predicate.as_ref(),
            "predicateType" => s.predicate_type.as_ref(),
            "subject" => s.subject.as_ref(),
            "signer" => s.signer.as_ref(),
            "now" => self.now.as_ref(),
            _ => return None,
        };
        Some(CowVal::Borrowed(value))
    }
}

/// The length of the widest list or map anywhere in `value`, and the
/// number of elements of all of them together.
fn sizes(value: &serde_json::Value) -> (u64, u64) {
    let (mut widest, mut total) = (0u64, 0u64);
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        let len = match v {
            serde_json::Value::Array(a) => {
                stack.extend(a.iter());
                a.len()
            }
            serde_json::Value::Object(o) => {
                stack.extend(o.values());
                o.len()
            }
            _ => continue,
        } as u64;
        widest = widest.max(len);
        total += len;
    }
    (widest, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(source: &str) -> Result<Condition, String> {
        Condition::compile(&environment(), source)
    }

    fn statement(predicate: serde_json::Value) -> Statement {
        let payload = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "app", "digest": {"sha256": "ab"}}],
            "predicateType": "https://example.com/p",
            "predicate": predicate,
        });
        Statement::parse(
            payload.to_string().as_bytes(),
            SignerInfo {
                root: "ci",
                keyless: Some(("https://issuer", "https://github.com/org/repo")),
            },
        )
        .unwrap()
    }

    fn eval(source: &str, predicate: serde_json::Value) -> Outcome {
        let env = environment();
        let c = Condition::compile(&env, source).unwrap();
        statement(predicate).evaluate(&env, &c, Utc::now())
    }

    #[test]
    fn compile_refuses_what_cannot_work() {
        for (source, says) in [
            ("predicate.x ==", "syntax"),
            ("foo == 1", "unknown variable `foo`"),
            ("predicate.xs.all(x, y > 1)", "unknown variable `y`"),
            ("1 + 2", "not a bool"),
            ("'text'", "not a bool"),
            ("size(predicate)", "not a bool"),
            ("predicate.xs.map(x, x)", "not a bool"),
            (
                "predicate.a.all(x, predicate.b.all(y, predicate.c.all(z, true)))",
                "nest 3 deep",
            ),
        ] {
            let err = compile(source).expect_err(source);
            assert!(err.contains(says), "{source}: {err}");
        }
        // Deep nesting is refused before the parser could exhaust a stack.
        let deep = format!("{}true{}", "(".repeat(200), ")".repeat(200));
        assert!(
            compile(&deep)
                .unwrap_err()
                .contains("brackets nest 200 deep")
        );
        let deep = format!("{}1{} == 1", "[".repeat(13), "]".repeat(13));
        assert!(compile(&deep).unwrap_err().contains("brackets nest"));
        // Brackets inside strings are text.
        assert!(compile(&format!("predicate.x == '{}'", "(".repeat(40))).is_ok());
        let path = format!("predicate{} == 1", ".a".repeat(100));
        assert!(compile(&path).unwrap_err().contains("levels deep"));
        let long = format!("predicate.x == '{}'", "a".repeat(MAX_EXPRESSION_BYTES));
        assert!(compile(&long).unwrap_err().contains("bytes"));
        // Bound names, type names and every variable are fine.
        let c = compile(
            "predicate.xs.exists(x, type(x) == string) && predicateType != '' && size(subject) > 0 && signer.name == 'ci' && now > timestamp('2020-01-01T00:00:00Z')",
        )
        .unwrap();
        assert!(c.uses_now);
        assert!(!compile("has(predicate.x)").unwrap().uses_now);
    }

    #[test]
    fn evaluates_over_the_statement() {
        let p = serde_json::json!({"builder": {"id": "https://ci"}, "n": 3, "xs": [1, 2, 3]});
        assert_eq!(
            eval("predicate.builder.id == 'https://ci'", p.clone()),
            Outcome::Holds
        );
        assert_eq!(eval("predicate.n > 5", p.clone()), Outcome::Fails);
        assert_eq!(
            eval("predicate.xs.all(x, x > 0)", p.clone()),
            Outcome::Holds
        );
        assert_eq!(
            eval(
                "signer.issuer == 'https://issuer' && signer.kind == 'keyless'",
                p.clone()
            ),
            Outcome::Holds
        );
        assert_eq!(
            eval(
                "predicateType == 'https://example.com/p' && subject[0].name == 'app'",
                p.clone()
            ),
            Outcome::Holds
        );
        // An absent field or index is a failure, not an error.
        assert_eq!(
            eval("predicate.missing.deeper == 1", p.clone()),
            Outcome::Fails
        );
        assert_eq!(eval("predicate.xs[7] == 1", p.clone()), Outcome::Fails);
        // The deepest expression accepted evaluates on a 2 MiB stack (a
        // test thread's, as a tokio worker's).
        let deepest = format!("predicate{} == 1", ".a".repeat(MAX_DEPTH as usize - 3));
        assert_eq!(eval(&deepest, p.clone()), Outcome::Fails);
        // Run-time errors are errors.
        assert!(matches!(
            eval("predicate.n / 0 == 1", p.clone()),
            Outcome::Error(_)
        ));
        assert!(matches!(
            eval("timestamp(predicate.builder.id) < now", p.clone()),
            Outcome::Error(_)
        ));
        assert!(
            matches!(eval("predicate.builder.id", p.clone()), Outcome::Error(e) if e.contains("not a bool"))
        );
    }

    #[test]
    fn time_arithmetic() {
        let recent = (Utc::now() - chrono::Duration::days(2)).to_rfc3339();
        let old = (Utc::now() - chrono::Duration::days(9)).to_rfc3339();
        let cond = "now - timestamp(predicate.scanned) < duration('168h')";
        assert_eq!(
            eval(cond, serde_json::json!({"scanned": recent})),
            Outcome::Holds
        );
        assert_eq!(
            eval(cond, serde_json::json!({"scanned": old})),
            Outcome::Fails
        );
    }

    #[test]
    fn the_step_budget_is_enforced_before_evaluating() {
        let wide: Vec<u32> = (0..2000).collect();
        let p = serde_json::json!({"xs": wide});
        // 2000 × 2000 pairs: refused without running.
        let nested = "predicate.xs.all(x, predicate.xs.exists(y, y == x))";
        assert!(matches!(eval(nested, p.clone()), Outcome::Error(e) if e.contains("step budget")));
        // One pass over the same list is within budget.
        assert_eq!(eval("predicate.xs.all(x, x >= 0)", p), Outcome::Holds);
        // Nested over the parts of each element: linear in the statement.
        let results: Vec<_> = (0..10)
            .map(|i| serde_json::json!({"target": i, "findings": (0..1000).map(|j| serde_json::json!({"id": j, "severity": "LOW"})).collect::<Vec<_>>()}))
            .collect();
        let p = serde_json::json!({"results": results});
        assert_eq!(
            eval(
                "predicate.results.all(r, r.findings.all(f, f.severity != 'CRITICAL'))",
                p.clone()
            ),
            Outcome::Holds
        );
        // The same pair of loops where the inner one restarts over the
        // whole statement is refused.
        assert!(matches!(
            eval("predicate.results.all(r, predicate.results[0].findings.all(f, f.id >= 0))", p),
            Outcome::Error(e) if e.contains("step budget")
        ));
    }

    #[test]
    fn oversized_statements_are_refused_unparsed() {
        let payload = vec![b'{'; MAX_STATEMENT_BYTES + 1];
        let err = Statement::parse(
            &payload,
            SignerInfo {
                root: "k",
                keyless: None,
            },
        )
        .unwrap_err();
        assert!(err.contains("cap"), "{err}");
    }
}
