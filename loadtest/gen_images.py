#!/usr/bin/env python3
"""Generates the load-test image set in a running registry, once.

Pushes small random images with tests/fixtures/oci/mkimage.py (deterministic
per seed) and signs them with tests/fixtures/cosign/sigtool.py (`sign-key`,
legacy cosign `.sig`), both imported into worker processes so that a few
thousand images take minutes rather than one Python start-up per call.

The set (repositories are relative to the registry; the host is added at
run time, since the registry port changes between runs):

  signed/warm/app-<i>:v1       cosign, signed by alice   (the cached set)
  signed/fresh/svc-<i%100>:r<i> cosign, signed by alice  (never seen before)
  signed/rollout/web:v1        cosign, signed by alice   (the rollout image)
  signed/unsigned/app-<i>:v1   pushed, no signature      -> NO_SIGNATURES
  signed/wrongkey/app-<i>:v1   signed by bob, not alice  -> NO_MATCHING_SIGNATURE
  dct/app:v<i>                 pushed; signed in Notary at run time

Progress is appended to OUT/progress.jsonl so an interrupted run resumes;
OUT/images.json is written last and marks the set complete.

  gen_images.py --registry 127.0.0.1:PORT --out DIR --pki DIR [--fresh N] [--jobs J]
"""

import argparse
import contextlib
import importlib.util
import io
import json
import multiprocessing
import os
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MKIMAGE = os.path.join(ROOT, "tests/fixtures/oci/mkimage.py")
SIGTOOL = os.path.join(ROOT, "tests/fixtures/cosign/sigtool.py")

_mk = None
_sig = None
_opts = None


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _init(opts):
    global _mk, _sig, _opts
    _mk = _load("pc_mkimage", MKIMAGE)
    _sig = _load("pc_sigtool", SIGTOOL)
    _opts = opts


def _mkimage(repo, tag, seed):
    argv = ["mkimage.py", "--registry", _opts["registry"], "--repo", repo, "--tag", tag,
            "--seed", seed, "--insecure"]
    out = io.StringIO()
    saved = sys.argv
    sys.argv = argv
    try:
        with contextlib.redirect_stdout(out):
            _mk.main()
    except SystemExit as e:
        raise RuntimeError("mkimage %s:%s failed (exit %s)" % (repo, tag, e.code))
    finally:
        sys.argv = saved
    return json.loads(out.getvalue().strip().splitlines()[-1])


def _sign(repo, digest, key):
    args = _sig.build_parser().parse_args([
        "sign-key", "--registry", _opts["registry"], "--repo", repo, "--digest", digest,
        "--insecure", "--key", key])
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            _sig.cmd_sign_legacy(args)
    except SystemExit as e:
        raise RuntimeError("sigtool sign-key %s@%s failed (exit %s)" % (repo, digest, e.code))
    except _sig.ToolError as e:
        raise RuntimeError("sigtool sign-key %s@%s: %s" % (repo, digest, e))


def _work(item):
    """item = (group, repo, tag, signer or None) -> record."""
    group, repo, tag, signer = item
    for attempt in range(3):
        try:
            img = _mkimage(repo, tag, "%s/%s:%s" % (_opts["version"], repo, tag))
            if signer:
                _sign(repo, img["digest"], os.path.join(_opts["pki"], signer + ".key"))
            return {"group": group, "repo": repo, "tag": tag, "digest": img["digest"],
                    "size": img["size"], "signer": signer}
        except Exception as e:  # noqa: BLE001 - retried, then reported
            err = e
            time.sleep(0.5 * (attempt + 1))
    return {"group": group, "repo": repo, "tag": tag, "error": str(err)}


def plan(a):
    items = []
    for i in range(a.warm):
        items.append(("warm", "signed/warm/app-%d" % i, "v1", "alice"))
    items.append(("rollout", "signed/rollout/web", "v1", "alice"))
    for i in range(a.unsigned):
        items.append(("unsigned", "signed/unsigned/app-%d" % i, "v1", None))
    for i in range(a.wrongkey):
        items.append(("wrongkey", "signed/wrongkey/app-%d" % i, "v1", "bob"))
    for i in range(a.notary):
        items.append(("notary", "dct/app", "v%d" % (i + 1), None))
    for i in range(a.fresh):
        items.append(("fresh", "signed/fresh/svc-%d" % (i % 100), "r%d" % i, "alice"))
    return items


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--registry", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pki", required=True, help="sigtool pki directory (alice.key, bob.key)")
    ap.add_argument("--version", required=True, help="seed prefix (the cache version)")
    ap.add_argument("--warm", type=int, default=16)
    ap.add_argument("--fresh", type=int, default=3000)
    ap.add_argument("--unsigned", type=int, default=8)
    ap.add_argument("--wrongkey", type=int, default=4)
    ap.add_argument("--notary", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=12)
    a = ap.parse_args()

    os.makedirs(a.out, exist_ok=True)
    progress = os.path.join(a.out, "progress.jsonl")
    done = {}
    if os.path.exists(progress):
        with open(progress) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if "digest" in r:
                    done[(r["repo"], r["tag"])] = r
    items = plan(a)
    todo = [it for it in items if (it[1], it[2]) not in done]
    t0 = time.time()
    if todo:
        sys.stderr.write("gen_images: %d images to push and sign (%d already done), %d jobs\n"
                         % (len(todo), len(done), a.jobs))
        opts = {"registry": a.registry, "pki": os.path.abspath(a.pki), "version": a.version}
        failed = []
        with open(progress, "a") as f, multiprocessing.get_context("fork").Pool(
                a.jobs, initializer=_init, initargs=(opts,)) as pool:
            for n, r in enumerate(pool.imap_unordered(_work, todo, chunksize=4), 1):
                if "error" in r:
                    failed.append(r)
                    continue
                f.write(json.dumps(r) + "\n")
                f.flush()
                done[(r["repo"], r["tag"])] = r
                if n % 250 == 0:
                    sys.stderr.write("gen_images: %d/%d (%.0f s)\n" % (n, len(todo), time.time() - t0))
        if failed:
            for r in failed[:5]:
                sys.stderr.write("gen_images: error: %s:%s: %s\n" % (r["repo"], r["tag"], r["error"]))
            sys.stderr.write("gen_images: %d images failed; rerun to retry\n" % len(failed))
            return 1
    groups = {}
    for it in items:
        r = done[(it[1], it[2])]
        groups.setdefault(it[0], []).append(
            {"repo": r["repo"], "tag": r["tag"], "digest": r["digest"], "size": r["size"],
             "signer": r["signer"]})
    tmp = os.path.join(a.out, "images.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"version": a.version, "groups": groups}, f)
    os.replace(tmp, os.path.join(a.out, "images.json"))
    sys.stderr.write("gen_images: %d images ready in %.0f s\n" % (len(items), time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
