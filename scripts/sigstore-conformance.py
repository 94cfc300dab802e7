#!/usr/bin/env python3
"""Runs the bundle-verify cases of sigstore/sigstore-conformance offline
against an ENTRYPOINT that speaks the suite's CLI protocol (by default
scripts/sigstore-conformance-entrypoint, i.e. `portcullis-verifier sigstore`).

The suite's own harness (pytest, network access for signing) is not needed:
this applies its rules for `test/assets/bundle-verify/*`, as its
`test/assets/bundle-verify/README.md` states them:

* a case directory whose name ends in `_fail` must be rejected (non-zero
  exit), every other case accepted;
* `bundle.sigstore.json` is the bundle; `artifact` the signed artifact (or,
  for DSSE, the in-toto subject), default `a.txt` of the parent directory;
* `key.pub`, when present, is verified with `--key`; otherwise the identity
  and issuer come from the files `identity` and `issuer`, defaulting to the
  suite's beacon workflow and GitHub Actions' issuer;
* `trusted_root.json`, when present, is passed as `--trusted-root`
  (otherwise the public-good production root is used).

Each case runs twice, as the suite does: with the artifact's path and with
its `sha256:` digest. Usage:

    scripts/sigstore-conformance.py SUITE_CHECKOUT [--entrypoint CMD] [--json]

Exit status 0 when every case meets its expectation, 1 otherwise.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys

DEFAULT_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"
# Cases that need the network; none of the bundle-verify cases do today.
NEEDS_NETWORK = {}


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def case_args(case_dir, assets):
    args = ["verify-bundle", "--bundle", os.path.join(case_dir, "bundle.sigstore.json")]
    key = os.path.join(case_dir, "key.pub")
    if os.path.exists(key):
        args += ["--key", key]
    else:
        identity = os.path.join(case_dir, "identity")
        issuer = os.path.join(case_dir, "issuer")
        args += [
            "--certificate-identity",
            read_text(identity) if os.path.exists(identity) else DEFAULT_IDENTITY,
            "--certificate-oidc-issuer",
            read_text(issuer) if os.path.exists(issuer) else DEFAULT_ISSUER,
        ]
    root = os.path.join(case_dir, "trusted_root.json")
    if os.path.exists(root):
        args += ["--trusted-root", root]
    artifact = os.path.join(case_dir, "artifact")
    if not os.path.exists(artifact):
        artifact = os.path.join(assets, "a.txt")
    return args, artifact


def run(entrypoint, args):
    p = subprocess.run(entrypoint + args, capture_output=True, text=True, timeout=120)
    return p.returncode, (p.stderr.strip().splitlines() or [""])[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("suite", help="a checkout of sigstore/sigstore-conformance")
    ap.add_argument("--entrypoint", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                          "sigstore-conformance-entrypoint"))
    ap.add_argument("--json", action="store_true", help="print one JSON object per case")
    opts = ap.parse_args()
    assets = os.path.join(opts.suite, "test", "assets", "bundle-verify")
    if not os.path.isdir(assets):
        sys.exit("no %s: give a checkout of sigstore/sigstore-conformance" % assets)
    entrypoint = opts.entrypoint.split()
    passed, failed, skipped = [], [], []
    for name in sorted(os.listdir(assets)):
        case_dir = os.path.join(assets, name)
        if not os.path.isdir(case_dir):
            continue
        if name in NEEDS_NETWORK:
            skipped.append((name, NEEDS_NETWORK[name]))
            continue
        expect_ok = not name.endswith("_fail")
        args, artifact = case_args(case_dir, assets)
        with open(artifact, "rb") as f:
            digest = "sha256:" + hashlib.sha256(f.read()).hexdigest()
        results = {}
        for form, target in (("file", artifact), ("digest", digest)):
            results[form] = run(entrypoint, args + [target])
        ok = all((code == 0) == expect_ok for code, _ in results.values())
        (passed if ok else failed).append(name)
        if opts.json:
            print(json.dumps({"case": name, "expect": "accept" if expect_ok else "reject",
                              "ok": ok, "file": results["file"], "digest": results["digest"]}))
        elif not ok:
            print("MISMATCH %s (expected %s)" % (name, "accept" if expect_ok else "reject"))
            for form, (code, line) in results.items():
                print("    %-6s exit %d: %s" % (form, code, line))
    for name, why in skipped:
        print("SKIPPED %s: %s" % (name, why))
    print("bundle-verify: %d passed, %d failed, %d skipped" % (len(passed), len(failed), len(skipped)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
