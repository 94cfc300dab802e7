//! The verifier's modules form layers (ARCHITECTURE.md, "Layers"): a module
//! may use the ones below it, never one above. This test reads the sources
//! and fails on any `crate::X` path that points upwards, so a new arrow back
//! up the stack (the cache knowing a validator, the config knowing the
//! validators) is caught when it is written.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top to bottom.
const LAYERS: &[&str] = &[
    "fuzzing",
    "bench_internals",
    "cli",
    "bundle_verify",
    "secret_keys",
    "migrate",
    "server",
    "tls",
    "service",
    "lease",
    "decision",
    "validators",
    "pull_secrets",
    "cache",
    "verdict",
    "error",
    "config",
    "registry",
    "policy",
    "metrics",
    "reference",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// The `crate::X` modules a text names.
fn uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        // Not `portcullis_verifier::...` or another crate's `crate::`.
        if text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

#[test]
fn no_module_uses_one_above_it() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut upward = Vec::new();
    let mut seen = BTreeSet::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let own = rank(&module).unwrap_or_else(|| {
            panic!("module `{module}` is in no layer: add it to LAYERS and ARCHITECTURE.md")
        });
        seen.insert(module.clone());
        for used in uses(&std::fs::read_to_string(&file).unwrap()) {
            if used == module {
                continue;
            }
            let Some(r) = rank(&used) else {
                panic!(
                    "{} uses crate::{used}, which is in no layer",
                    file.display()
                );
            };
            if r < own {
                upward.push(format!("{} ({module}) uses {used}", file.display()));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "upward dependencies:\n{}",
        upward.join("\n")
    );
    // Every layer exists, so the list stays true.
    for layer in LAYERS {
        assert!(seen.contains(*layer), "no module `{layer}`");
    }
}

#[test]
fn the_check_sees_an_upward_path() {
    // The detector itself: a cache file naming a validator is caught.
    let found = uses("use crate::validators::cosign::X; let y = portcullis_verifier::cache::Z;");
    assert_eq!(found, BTreeSet::from(["validators".to_string()]));
}
