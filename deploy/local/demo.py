#!/usr/bin/env python3
"""The local stack's signing demo: a registry of tiny images, some signed.

Called by deploy/local/up.sh with the registry's host:port and a state
directory. It pushes three images with the test image builder
(tests/fixtures/oci/mkimage.py), makes a demo key pair with the independent
test signer (tests/fixtures/cosign/sigtool.py: `pki`) and signs:

  demo/signed:v1     by `alice`  (the key the demo policy trusts)
  demo/untrusted:v1  by `bob`    (a key nobody trusts)
  demo/unsigned:v1   not at all

then writes the verifier config (deploy/local/policy.yaml plus a cosign
validator trusting alice for the demo registry) and three AdmissionReviews.
Prints JSON: {"config": ..., "reviews": {...}}.
"""

import json
import os
import subprocess
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PY = sys.executable


def run(*args):
    out = subprocess.run([PY, *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out[out.index("{"):])


def review(uid, kind, image):
    spec = {"containers": [{"name": "app", "image": image}]}
    if kind == "Deployment":
        obj = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "demo", "namespace": "default"},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "demo"}},
                        "template": {"metadata": {"labels": {"app": "demo"}}, "spec": spec}}}
        gvk, resource = {"group": "apps", "version": "v1", "kind": "Deployment"}, "deployments"
    else:
        obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": uid, "namespace": "default"},
               "spec": spec}
        gvk, resource = {"group": "", "version": "v1", "kind": "Pod"}, "pods"
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": uid, "kind": gvk,
                        "resource": {"group": gvk["group"], "version": "v1", "resource": resource},
                        "namespace": "default", "operation": "CREATE", "object": obj}}


def main():
    registry, state = sys.argv[1], sys.argv[2]
    pki = os.path.join(state, "demo-pki")
    run("tests/fixtures/cosign/sigtool.py", "pki", pki)
    images = {}
    for seed, repo in enumerate(["demo/signed", "demo/untrusted", "demo/unsigned"]):
        images[repo] = run("tests/fixtures/oci/mkimage.py", "--registry", registry, "--insecure",
                           "--repo", repo, "--tag", "v1", "--seed", str(7000 + seed))
    for repo, key in [("demo/signed", "alice"), ("demo/untrusted", "bob")]:
        run("tests/fixtures/cosign/sigtool.py", "sign-key", "--registry", registry, "--insecure",
            "--repo", repo, "--digest", images[repo]["digest"],
            "--key", os.path.join(pki, key + ".key"))
    with open(os.path.join(ROOT, "deploy/local/policy.yaml")) as f:
        config = yaml.safe_load(f)
    with open(os.path.join(pki, "alice.pub")) as f:
        alice = f.read()
    config["validators"].append({"name": "demo-signed", "type": "cosign",
                                 "insecureRegistries": [registry],
                                 "trustRoots": [{"name": "alice", "key": alice}]})
    config["policy"].append({"pattern": registry + "/demo/**", "validator": "demo-signed",
                             "with": {"trustRoot": "alice"}})
    path = os.path.join(state, "demo-policy.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    reviews = {}
    for name, kind, repo in [("signed-deployment", "Deployment", "demo/signed"),
                             ("unsigned-pod", "Pod", "demo/unsigned"),
                             ("untrusted-pod", "Pod", "demo/untrusted")]:
        p = os.path.join(state, name + ".json")
        with open(p, "w") as f:
            json.dump(review(name, kind, "%s/%s:v1" % (registry, repo)), f)
        reviews[name] = p
    print(json.dumps({"config": path, "reviews": reviews}))


if __name__ == "__main__":
    main()
