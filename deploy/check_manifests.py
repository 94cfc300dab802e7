#!/usr/bin/env python3
"""Checks rendered Portcullis manifests (the output of `kubectl kustomize`).

    check_manifests.py VARIANT RENDERED.yaml [--verifier-bin BIN]
                       [--apiserver-cidrs CIDR[,CIDR...]]
    check_manifests.py --source-kinds gateway/src/admission/extract.rs

VARIANT is base, dev, production or cert-manager (base plus
components/cert-manager); it selects the expectations that differ (replica
counts, autoscaling, where the caBundle comes from, client authentication
of the API server). --apiserver-cidrs: what was passed to
gen-webhook-certs.sh --apiserver-cidr (`private` included), which the
gateway's NetworkPolicy must admit exactly. Prints one line per check and
exits 1 if any failed. Run by deploy/test-manifests.sh; needs PyYAML
(a dependency of kubernetes-validate) and openssl.
"""

import argparse
import base64
import ipaddress
import os
import posixpath
import re
import subprocess
import sys
import tempfile

import yaml

# ---------------------------------------------------------------------------
# What the gateway reads (gateway/src/admission/extract.rs): the kinds with a
# pod spec, and the resources (plural, with subresources) the webhooks must
# name for them. CREATE and UPDATE only. Add a custom resource here when you
# add its rule to webhooks.yaml.
KINDS = [
    # (kind, group, version, resources)
    ("Pod", "", "v1", ["pods", "pods/ephemeralcontainers"]),
    ("ReplicationController", "", "v1", ["replicationcontrollers"]),
    ("Deployment", "apps", "v1", ["deployments"]),
    ("ReplicaSet", "apps", "v1", ["replicasets"]),
    ("StatefulSet", "apps", "v1", ["statefulsets"]),
    ("DaemonSet", "apps", "v1", ["daemonsets"]),
    ("Job", "batch", "v1", ["jobs"]),
    ("CronJob", "batch", "v1", ["cronjobs"]),
]
EXPECTED_RULES = {(g, v, r) for _, g, v, rs in KINDS for r in rs}
EXPECTED_OPERATIONS = {"CREATE", "UPDATE"}

NAMESPACE = "portcullis"
IGNORE_LABEL = ("portcullis.dev/webhook", "ignore")
GATEWAY = "portcullis-gateway"
VERIFIER = "portcullis-verifier"
REDIS = "portcullis-redis"
REDIS_REPLICA = "portcullis-redis-replica"
GATEWAY_DEFAULT_DEADLINE_MS = 8000  # gateway/src/cli.rs
# Time the API server needs around the gateway's own budget (TLS, network).
TIMEOUT_MARGIN_MS = 1000
# The NetworkPolicy that admits the API server to the webhook port; the base
# ships a placeholder source (TEST-NET-1, RFC 5737) that gen-webhook-certs.sh
# --apiserver-cidr replaces.
APISERVER_POLICY = "portcullis-gateway-from-apiserver"
PLACEHOLDER_CIDR = "192.0.2.1/32"
# gen-webhook-certs.sh --apiserver-cidr private
PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]
# Broadest ranges production may admit to the webhook port.
MAX_PRODUCTION_PREFIX = {4: 16, 6: 48}
# The API server's client CA (gen-webhook-certs.sh), for gateway --client-ca.
CLIENT_CA_SECRET = "portcullis-gateway-client-ca"
CLUSTER_SCOPED = {
    "Namespace",
    "PriorityClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ClusterRole",
    "ClusterRoleBinding",
}

# Who may open connections to whom (NetworkPolicies), per variant.
REACHABILITY = {
    "base": {GATEWAY: set(), VERIFIER: {GATEWAY}, REDIS: {VERIFIER}},
    "dev": {GATEWAY: set(), VERIFIER: {GATEWAY}, REDIS: {VERIFIER}},
    "cert-manager": {GATEWAY: set(), VERIFIER: {GATEWAY}, REDIS: {VERIFIER}},
    "production": {
        GATEWAY: set(),
        VERIFIER: {GATEWAY},
        REDIS: {VERIFIER, REDIS_REPLICA},
        REDIS_REPLICA: {VERIFIER},
    },
}


class Checker:
    def __init__(self, variant):
        self.variant = variant
        self.failures = []
        self.count = 0

    def ok(self, cond, what, detail=""):
        self.count += 1
        if cond:
            print(f"  ok    {what}")
        else:
            msg = f"{what}: {detail}" if detail else what
            print(f"  FAIL  {msg}")
            self.failures.append(msg)
        return cond


# ---------------------------------------------------------------------------
# helpers


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def find(docs, kind, name=None):
    out = [d for d in docs if d.get("kind") == kind]
    if name is not None:
        out = [d for d in out if d["metadata"]["name"] == name]
    return out


def one(docs, kind, name):
    found = find(docs, kind, name)
    return found[0] if len(found) == 1 else None


def generated(docs, kind, name):
    """A ConfigMap or Secret by its name before Kustomize's hash suffix."""
    for d in find(docs, kind):
        n = d["metadata"]["name"]
        if n == name or re.fullmatch(re.escape(name) + r"-[a-z0-9]{10}", n):
            return d
    return None


def selector_matches(selector, labels):
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        k, op, vals = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and k in labels and labels[k] in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def quantity(q):
    q = str(q)
    units = {
        "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
        "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    }
    for u, f in sorted(units.items(), key=lambda x: -len(x[0])):
        if q.endswith(u):
            return float(q[: -len(u)]) * f
    return float(q)


def flags(container):
    """--name=value arguments of a container as a dict."""
    out = {}
    for a in (container.get("command") or []) + (container.get("args") or []):
        m = re.fullmatch(r"--([a-z0-9-]+)=(.*)", str(a))
        if m:
            out[m.group(1)] = m.group(2)
    return out


def env_of(container):
    return {e["name"]: e for e in container.get("env") or []}


def deployments(docs):
    return {d["metadata"]["name"]: d for d in find(docs, "Deployment")}


def pod_spec(dep):
    return dep["spec"]["template"]["spec"]


def pod_labels(dep):
    return dep["spec"]["template"]["metadata"].get("labels") or {}


def container_port(container, name_or_number):
    for p in container.get("ports") or []:
        if p.get("name") == name_or_number or p["containerPort"] == name_or_number:
            return p["containerPort"]
    return None


def secret_bytes(secret, key):
    if key in (secret.get("data") or {}):
        return base64.b64decode(secret["data"][key])
    if key in (secret.get("stringData") or {}):
        return secret["stringData"][key].encode()
    return None


def openssl(*args, stdin=None):
    r = subprocess.run(["openssl", *args], input=stdin, capture_output=True)
    return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def cert_sans(pem):
    with tempfile.NamedTemporaryFile("wb", suffix=".crt") as f:
        f.write(pem)
        f.flush()
        _, out = openssl("x509", "-noout", "-ext", "subjectAltName", "-in", f.name)
    return set(re.findall(r"DNS:([^,\s]+)", out))


def cert_eku(pem):
    with tempfile.NamedTemporaryFile("wb", suffix=".crt") as f:
        f.write(pem)
        f.flush()
        _, out = openssl("x509", "-noout", "-ext", "extendedKeyUsage", "-in", f.name)
    return out


def verify_chain(ca_pem, cert_pem):
    with tempfile.TemporaryDirectory() as d:
        ca, crt = os.path.join(d, "ca.crt"), os.path.join(d, "leaf.crt")
        open(ca, "wb").write(ca_pem)
        open(crt, "wb").write(cert_pem)
        rc, out = openssl("verify", "-CAfile", ca, crt)
    return rc == 0, out.strip()


def key_matches(cert_pem, key_pem):
    with tempfile.TemporaryDirectory() as d:
        crt, key = os.path.join(d, "c"), os.path.join(d, "k")
        open(crt, "wb").write(cert_pem)
        open(key, "wb").write(key_pem)
        _, a = openssl("x509", "-noout", "-pubkey", "-in", crt)
        _, b = openssl("pkey", "-pubout", "-in", key)
    return a.strip() == b.strip() and "BEGIN PUBLIC KEY" in a


# ---------------------------------------------------------------------------
# checks


def check_objects(c, docs):
    print("objects")
    c.ok(all("kind" in d and "metadata" in d for d in docs), f"{len(docs)} objects, each with kind and metadata")
    ns = find(docs, "Namespace")
    c.ok(len(ns) == 1 and ns[0]["metadata"]["name"] == NAMESPACE, f"one Namespace, {NAMESPACE}")
    if ns:
        labels = ns[0]["metadata"].get("labels") or {}
        c.ok(labels.get("pod-security.kubernetes.io/enforce") == "restricted",
             "namespace enforces the restricted Pod Security Standard")
    wrong = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
             if d["kind"] not in CLUSTER_SCOPED and d["metadata"].get("namespace") != NAMESPACE]
    c.ok(not wrong, f"every namespaced object is in {NAMESPACE}", ", ".join(wrong))
    unlabelled = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
                  if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/part-of") != "portcullis"]
    c.ok(not unlabelled, "every object is labelled app.kubernetes.io/part-of=portcullis", ", ".join(unlabelled))
    keys = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    dup = {k for k in keys if keys.count(k) > 1}
    c.ok(not dup, "no object appears twice", str(dup))


def gateway_deadline_ms(docs):
    gw = deployments(docs).get(GATEWAY)
    if not gw:
        return None
    cont = pod_spec(gw)["containers"][0]
    f = flags(cont)
    if "deadline-ms" in f:
        return int(f["deadline-ms"])
    e = env_of(cont).get("PORTCULLIS_DEADLINE_MS")
    if e and "value" in e:
        return int(e["value"])
    return GATEWAY_DEFAULT_DEADLINE_MS


def check_webhooks(c, docs):
    print("webhooks")
    mwc = find(docs, "MutatingWebhookConfiguration")
    vwc = find(docs, "ValidatingWebhookConfiguration")
    c.ok(len(mwc) == 1 and len(vwc) == 1, "one MutatingWebhookConfiguration and one ValidatingWebhookConfiguration")
    hooks = [("mutating", w) for m in mwc for w in m.get("webhooks") or []] + [
        ("validating", w) for v in vwc for w in v.get("webhooks") or []
    ]
    c.ok(len(hooks) >= 2, f"{len(hooks)} webhooks")
    deadline = gateway_deadline_ms(docs)
    gw = deployments(docs).get(GATEWAY)
    gw_cont = pod_spec(gw)["containers"][0] if gw else {}
    ns_of_gateway = gw["metadata"].get("namespace") if gw else None
    for typ, w in hooks:
        name = w["name"]
        got = set()
        ops_ok = True
        for r in w.get("rules") or []:
            for g in r.get("apiGroups") or []:
                for v in r.get("apiVersions") or []:
                    for res in r.get("resources") or []:
                        got.add((g, v, res))
            ops_ok &= set(r.get("operations") or []) == EXPECTED_OPERATIONS
            ops_ok &= r.get("scope", "*") in ("Namespaced", "*")
        missing, extra = EXPECTED_RULES - got, got - EXPECTED_RULES
        c.ok(not missing and not extra,
             f"{name}: rules cover exactly the kinds the gateway reads "
             f"({', '.join(k for k, *_ in KINDS)}; incl. pods/ephemeralcontainers)",
             f"missing {sorted(missing)}, extra {sorted(extra)}")
        c.ok(ops_ok, f"{name}: operations are exactly CREATE and UPDATE, namespaced")
        c.ok(w.get("failurePolicy") == "Fail", f"{name}: failurePolicy Fail")
        c.ok(w.get("sideEffects") == "None", f"{name}: sideEffects None")
        c.ok("v1" in (w.get("admissionReviewVersions") or []), f"{name}: admissionReviewVersions has v1")
        c.ok(w.get("matchPolicy", "Equivalent") == "Equivalent", f"{name}: matchPolicy Equivalent")
        c.ok(not (w.get("objectSelector") or {}), f"{name}: no objectSelector (workloads cannot exempt themselves)")
        t = w.get("timeoutSeconds")
        c.ok(isinstance(t, int) and 1 <= t <= 30 and deadline is not None
             and t * 1000 >= deadline + TIMEOUT_MARGIN_MS,
             f"{name}: timeoutSeconds {t} s >= gateway deadline {deadline} ms + {TIMEOUT_MARGIN_MS} ms, <= 30 s")
        # Where it calls.
        cc = w.get("clientConfig") or {}
        svc_ref = cc.get("service") or {}
        c.ok("url" not in cc and svc_ref.get("name") == GATEWAY and svc_ref.get("namespace") == ns_of_gateway,
             f"{name}: calls Service {GATEWAY} in the gateway's namespace")
        want_path = "/mutate" if typ == "mutating" else "/validate"
        c.ok(svc_ref.get("path") == want_path, f"{name}: path {want_path}")
        svc = one(docs, "Service", svc_ref.get("name"))
        port_ok = False
        if svc and gw:
            for p in svc["spec"].get("ports") or []:
                if p["port"] == svc_ref.get("port", 443):
                    target = container_port(gw_cont, p.get("targetPort", p["port"]))
                    listen = flags(gw_cont).get("listen", "")
                    port_ok = target is not None and listen.endswith(f":{target}")
        c.ok(port_ok, f"{name}: Service port {svc_ref.get('port', 443)} reaches the gateway's --listen port")
        # Who is exempt.
        sel = w.get("namespaceSelector") or {}
        cases = [
            ({"kubernetes.io/metadata.name": ns_of_gateway or NAMESPACE}, False, "the system namespace"),
            ({"kubernetes.io/metadata.name": "team-a", IGNORE_LABEL[0]: IGNORE_LABEL[1]}, False,
             f"a namespace labelled {IGNORE_LABEL[0]}={IGNORE_LABEL[1]}"),
            ({"kubernetes.io/metadata.name": "default"}, True, "default"),
            ({"kubernetes.io/metadata.name": "kube-public"}, True, "an unlabelled namespace"),
        ]
        for labels, want, what in cases:
            c.ok(selector_matches(sel, labels) == want,
                 f"{name}: namespaceSelector {'covers' if want else 'exempts'} {what}")
    if hooks:
        rules = [sorted(map(str, w.get("rules") or [])) for _, w in hooks]
        c.ok(all(r == rules[0] for r in rules), "both webhooks have the same rules")
    return hooks


def check_timeouts(c, docs, hooks):
    print("timeouts")
    deadline = gateway_deadline_ms(docs)
    deps = deployments(docs)
    gw = deps.get(GATEWAY)
    if gw:
        spec = pod_spec(gw)
        pre = ((spec["containers"][0].get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
        longest = max((w.get("timeoutSeconds", 10) for _, w in hooks), default=10)
        grace = spec.get("terminationGracePeriodSeconds", 30)
        c.ok(grace >= pre + longest,
             f"gateway terminationGracePeriodSeconds {grace} >= preStop {pre} + webhook timeout {longest}")
    ver = deps.get(VERIFIER)
    if ver and deadline:
        f = flags(pod_spec(ver)["containers"][0])
        dd = int(f.get("default-deadline-ms", 8000))
        c.ok(dd <= deadline, f"verifier --default-deadline-ms {dd} <= gateway deadline {deadline}")
        rb = int(f.get("redis-budget-ms", 25))
        c.ok(rb * 10 <= deadline, f"verifier --redis-budget-ms {rb} is small against the deadline {deadline}")


def check_pods(c, docs):
    print("pod hardening")
    sas = {d["metadata"]["name"]: d for d in find(docs, "ServiceAccount")}
    for name, dep in sorted(deployments(docs).items()):
        spec = pod_spec(dep)
        psc = spec.get("securityContext") or {}
        c.ok(psc.get("runAsNonRoot") is True, f"{name}: pod runAsNonRoot")
        c.ok((psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", f"{name}: pod seccomp RuntimeDefault")
        c.ok(not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"),
             f"{name}: no host namespaces")
        sa = spec.get("serviceAccountName")
        c.ok(sa in sas, f"{name}: ServiceAccount {sa} exists")
        if name == "portcullis-gateway":
            # The gateway reads namespace labels (namespace scoping): a
            # token, bound to a ClusterRole that gets namespaces and nothing
            # else.
            c.ok(spec.get("automountServiceAccountToken") is not False,
                 f"{name}: service account token mounted for its read-only API access")
            roles = [d for d in docs if d.get("kind") == "ClusterRole"
                     and d["metadata"]["name"] == "portcullis-gateway-reader"]
            rules = [rule for r in roles for rule in r.get("rules", [])]
            verbs = {v for rule in rules for v in rule.get("verbs", [])}
            resources = {res for rule in rules for res in rule.get("resources", [])}
            groups = {g for rule in rules for g in rule.get("apiGroups", [])}
            c.ok(bool(roles) and verbs == {"get"}, f"{name}: its ClusterRole only gets", str(sorted(verbs)))
            c.ok(resources == {"namespaces"} and groups == {""}
                 and not any(rule.get("nonResourceURLs") for rule in rules),
                 f"{name}: its ClusterRole reads namespaces only", str(sorted(resources)))
            others = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
                      if d.get("kind") in ("ClusterRoleBinding", "RoleBinding")
                      and any(sub.get("kind") == "ServiceAccount" and sub.get("name") == sa
                              for sub in d.get("subjects") or [])
                      and d["roleRef"]["name"] != "portcullis-gateway-reader"]
            c.ok(not others, f"{name}: no other role is bound to its service account", ", ".join(others))
        else:
            c.ok(spec.get("automountServiceAccountToken") is False
                 or (sa in sas and sas[sa].get("automountServiceAccountToken") is False),
                 f"{name}: no service account token mounted")
        for cont in spec.get("initContainers", []) + spec["containers"]:
            cn = f"{name}/{cont['name']}"
            sc = cont.get("securityContext") or {}
            caps = sc.get("capabilities") or {}
            c.ok(sc.get("readOnlyRootFilesystem") is True, f"{cn}: read-only root filesystem")
            c.ok(sc.get("allowPrivilegeEscalation") is False and not sc.get("privileged"),
                 f"{cn}: no privilege escalation")
            c.ok("ALL" in (caps.get("drop") or []) and not caps.get("add"), f"{cn}: capabilities dropped (ALL)")
            c.ok(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True
                 and sc.get("runAsUser", psc.get("runAsUser", 1)) != 0, f"{cn}: non-root user")
            c.ok((sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
                 f"{cn}: seccomp RuntimeDefault")
            res = cont.get("resources") or {}
            req, lim = res.get("requests") or {}, res.get("limits") or {}
            complete = all(k in req and k in lim for k in ("cpu", "memory"))
            c.ok(complete and all(quantity(req[k]) <= quantity(lim[k]) for k in ("cpu", "memory")),
                 f"{cn}: cpu and memory requests <= limits", str(res))
            c.ok("readinessProbe" in cont and "livenessProbe" in cont, f"{cn}: readiness and liveness probes")
            for pname in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = cont.get(pname) or {}
                for handler in ("httpGet", "tcpSocket", "grpc"):
                    if handler in probe:
                        port = probe[handler]["port"]
                        c.ok(container_port(cont, port) is not None, f"{cn}: {pname} port {port} is a container port")
            image = cont.get("image", "")
            c.ok(("@sha256:" in image or re.search(r":[^/:]+$", image)) and not image.endswith(":latest"),
                 f"{cn}: image {image} has a tag or digest (not latest)")


def volume_keys(docs, vol):
    """The file names a volume provides, or None when it is not a fixed set."""
    if "secret" in vol:
        src = vol["secret"]
        if src.get("items"):
            return {i["path"] for i in src["items"]}
        s = generated(docs, "Secret", src["secretName"])
        if s:
            return set(s.get("data") or {}) | set(s.get("stringData") or {})
        if any(cert["spec"].get("secretName") == src["secretName"] for cert in find(docs, "Certificate")):
            return {"tls.crt", "tls.key", "ca.crt"}
        return None
    if "configMap" in vol:
        cm = generated(docs, "ConfigMap", vol["configMap"]["name"])
        if vol["configMap"].get("items"):
            return {i["path"] for i in vol["configMap"]["items"]}
        return set(cm.get("data") or {}) if cm else None
    return None


def check_references(c, docs, variant):
    print("references")
    certificates = {d["spec"]["secretName"] for d in find(docs, "Certificate")}
    for name, dep in sorted(deployments(docs).items()):
        spec = pod_spec(dep)
        vols = {v["name"]: v for v in spec.get("volumes") or []}
        for v in vols.values():
            if "secret" in v:
                sn = v["secret"]["secretName"]
                s = generated(docs, "Secret", sn)
                exists = s is not None or sn in certificates
                if variant == "base":
                    c.ok(True, f"{name}: volume {v['name']} -> Secret {sn} (made by the overlay)")
                else:
                    c.ok(exists, f"{name}: volume {v['name']} -> Secret {sn} exists"
                         + (" (cert-manager Certificate)" if s is None and exists else ""))
                for item in v["secret"].get("items") or []:
                    if s is not None:
                        c.ok(item["key"] in (s.get("data") or {}), f"{name}: Secret {sn} has key {item['key']}")
            if "configMap" in v:
                cm = v["configMap"]["name"]
                c.ok(generated(docs, "ConfigMap", cm) is not None, f"{name}: volume {v['name']} -> ConfigMap {cm} exists")
        for cont in spec["containers"]:
            mounts = {m["mountPath"]: m for m in cont.get("volumeMounts") or []}
            c.ok(all(m["name"] in vols for m in mounts.values()), f"{name}: every volumeMount names a volume")
            for e in cont.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and variant != "base":
                    s = generated(docs, "Secret", ref["name"])
                    c.ok(s is not None and ref["key"] in (s.get("data") or {}),
                         f"{name}: env {e['name']} -> Secret {ref['name']} key {ref['key']}")
            # Every file named in args, command, env or a mounted config file
            # is provided by a mounted volume.
            texts = [str(a) for a in (cont.get("command") or []) + (cont.get("args") or [])]
            texts += [e.get("value", "") for e in cont.get("env") or []]
            for m in mounts.values():
                v = vols.get(m["name"], {})
                if "configMap" in v:
                    cm = generated(docs, "ConfigMap", v["configMap"]["name"])
                    texts += list((cm or {}).get("data", {}).values())
            paths = sorted({p for t in texts for p in re.findall(r"(/etc/[A-Za-z0-9._/-]+)", t)})
            for p in paths:
                found = None
                for mp, m in mounts.items():
                    if p.startswith(mp.rstrip("/") + "/"):
                        keys = volume_keys(docs, vols.get(m["name"], {}))
                        rel = p[len(mp.rstrip("/")) + 1:]
                        found = keys is None and variant == "base" or (keys is not None and rel in keys)
                        if keys is None and variant != "base":
                            found = False
                c.ok(bool(found), f"{name}: {p} is provided by a mounted volume")


def check_services(c, docs):
    print("services")
    deps = deployments(docs)
    for svc in find(docs, "Service"):
        sname = svc["metadata"]["name"]
        sel = {"matchLabels": svc["spec"].get("selector") or {}}
        targets = [d for d in deps.values() if selector_matches(sel, pod_labels(d))]
        c.ok(bool(targets), f"Service {sname} selects {', '.join(d['metadata']['name'] for d in targets) or 'nothing'}")
        for p in svc["spec"].get("ports") or []:
            tp = p.get("targetPort", p["port"])
            c.ok(all(container_port(pod_spec(d)["containers"][0], tp) for d in targets),
                 f"Service {sname} port {p['port']} -> targetPort {tp} exists on its pods")
    gw = deps.get(GATEWAY)
    ver = deps.get(VERIFIER)
    if not (gw and ver):
        return
    gf = flags(pod_spec(gw)["containers"][0])
    url = gf.get("verifier", "")
    m = re.fullmatch(r"dns\+https:///([a-z0-9.-]+):(\d+)", url)
    c.ok(m is not None, f"gateway --verifier {url} discovers verifier pods by DNS, over TLS")
    if m:
        host, port = m.group(1), int(m.group(2))
        svc_name, _, rest = host.partition(".")
        svc = one(docs, "Service", svc_name)
        c.ok(rest in (f"{NAMESPACE}.svc", f"{NAMESPACE}.svc.cluster.local"), f"{host} is a Service name in {NAMESPACE}")
        c.ok(svc is not None and svc["spec"].get("clusterIP") == "None",
             f"Service {svc_name} is headless (clusterIP: None): one connection per verifier pod")
        if svc:
            c.ok(selector_matches({"matchLabels": svc["spec"].get("selector") or {}}, pod_labels(ver)),
                 f"Service {svc_name} selects the verifier pods")
            c.ok(any(p["port"] == port for p in svc["spec"]["ports"]), f"Service {svc_name} has port {port}")
            c.ok(not svc["spec"].get("publishNotReadyAddresses"), f"Service {svc_name} publishes ready pods only")
    vcont = pod_spec(ver)["containers"][0]
    vf = flags(vcont)
    c.ok(vf.get("listen", "").endswith(f":{container_port(vcont, 'grpc')}"), "verifier --listen is its grpc port")
    c.ok(vf.get("metrics-listen", "").endswith(f":{container_port(vcont, 'metrics')}"),
         "verifier --metrics-listen is its metrics port")
    c.ok(all(k in vf for k in ("tls-cert", "tls-key", "client-ca")), "verifier serves TLS and requires client certificates")
    c.ok(all(k in gf for k in ("verifier-ca", "verifier-client-cert", "verifier-client-key")),
         "gateway verifies verifiers and presents a client certificate")


def check_scaling(c, docs, variant):
    print("replicas, disruption budgets, autoscaling")
    deps = deployments(docs)
    hpas = find(docs, "HorizontalPodAutoscaler")
    pdbs = find(docs, "PodDisruptionBudget")
    for h in hpas:
        ref = h["spec"]["scaleTargetRef"]
        target = deps.get(ref["name"]) if ref["kind"] == "Deployment" else None
        c.ok(target is not None, f"HPA {h['metadata']['name']} targets Deployment {ref['name']}")
        if target:
            c.ok("replicas" not in target["spec"], f"Deployment {ref['name']} has no replicas field (the HPA owns it)")
        cpu = [m for m in h["spec"].get("metrics") or []
               if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
        c.ok(bool(cpu), f"HPA {h['metadata']['name']} scales on CPU")
    for p in pdbs:
        targets = [d for d in deps.values() if selector_matches(p["spec"]["selector"], pod_labels(d))]
        c.ok(len(targets) == 1, f"PDB {p['metadata']['name']} selects {len(targets)} Deployment")
    def replicas(name):
        d = deps.get(name)
        if d is None:
            return None
        if "replicas" in d["spec"]:
            return d["spec"]["replicas"]
        h = [h for h in hpas if h["spec"]["scaleTargetRef"]["name"] == name]
        return h[0]["spec"].get("minReplicas", 1) if h else 1
    hpa_for = {h["spec"]["scaleTargetRef"]["name"] for h in hpas}
    pdb_for = {d["metadata"]["name"] for p in pdbs for d in deps.values()
               if selector_matches(p["spec"]["selector"], pod_labels(d))}
    c.ok(replicas(REDIS) == 1, "one Redis primary")
    if variant == "dev":
        c.ok(replicas(GATEWAY) == 1 and replicas(VERIFIER) == 1, "dev: one gateway, one verifier")
        c.ok(not hpas, "dev: no HPA")
        c.ok(not pdbs, "dev: no PDB (it would block drains with one replica)")
        c.ok(REDIS_REPLICA not in deps, "dev: no Redis replica")
    else:
        want_gw = 3 if variant == "production" else 2
        c.ok((replicas(GATEWAY) or 0) >= want_gw, f"{variant}: >= {want_gw} gateways ({replicas(GATEWAY)})")
        c.ok(VERIFIER in hpa_for and (replicas(VERIFIER) or 0) >= want_gw,
             f"{variant}: verifiers autoscaled from >= {want_gw} ({replicas(VERIFIER)})")
        c.ok({GATEWAY, VERIFIER} <= pdb_for, f"{variant}: PDBs for gateways and verifiers")
        for n in (GATEWAY, VERIFIER):
            aff = (pod_spec(deps[n]).get("affinity") or {}).get("podAntiAffinity")
            c.ok(bool(aff), f"{variant}: {n} pods repel each other (podAntiAffinity)")
            strategy = deps[n]["spec"].get("strategy", {}).get("rollingUpdate", {})
            c.ok(strategy.get("maxUnavailable") == 0, f"{variant}: {n} rollouts keep every ready pod until replaced")
        for p in pdbs:
            for d in deps.values():
                if selector_matches(p["spec"]["selector"], pod_labels(d)):
                    r = replicas(d["metadata"]["name"])
                    allows = ("maxUnavailable" in p["spec"] and p["spec"]["maxUnavailable"] not in (0, "0%")) or \
                             ("minAvailable" in p["spec"] and int(p["spec"]["minAvailable"]) < r)
                    c.ok(allows, f"PDB {p['metadata']['name']} still lets a drain evict one of {r}")
        if variant == "production":
            c.ok(REDIS_REPLICA in deps, "production: a Redis replica")


def expand_cidrs(spec):
    """gen-webhook-certs.sh --apiserver-cidr values -> canonical networks."""
    out = []
    for item in spec.split(","):
        item = item.strip()
        for cidr in PRIVATE_RANGES if item == "private" else [item]:
            out.append(ipaddress.ip_network(cidr, strict=True))
    return out


def check_apiserver_policy(c, docs, variant, expected_cidrs):
    """The one way into the webhook port: the API server's address ranges."""
    pol = one(docs, "NetworkPolicy", APISERVER_POLICY)
    if not c.ok(pol is not None, f"NetworkPolicy {APISERVER_POLICY} exists"):
        return
    gw = deployments(docs).get(GATEWAY)
    https = container_port(pod_spec(gw)["containers"][0], "https") if gw else None
    rules = pol["spec"].get("ingress") or []
    froms = [f for r in rules for f in r.get("from") or []]
    c.ok(bool(rules) and all(r.get("from") for r in rules),
         f"{APISERVER_POLICY}: no rule without sources (an empty `from` admits every source)")
    c.ok(bool(froms) and all(set(f) == {"ipBlock"} for f in froms),
         f"{APISERVER_POLICY}: admits ipBlocks only, never a pod or namespace selector")
    c.ok(all(r.get("ports") and all(p.get("port") in (https, "https") and p.get("protocol", "TCP") == "TCP"
                                    for p in r["ports"]) for r in rules),
         f"{APISERVER_POLICY}: on the gateway's HTTPS port ({https}/TCP) only")
    cidrs = [f["ipBlock"]["cidr"] for f in froms if "ipBlock" in f]
    nets, bad = [], []
    for cidr in cidrs:
        try:
            n = ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            bad.append(cidr)
            continue
        if str(n) == cidr and n.prefixlen > 0:
            nets.append(n)
        else:
            bad.append(cidr)
    c.ok(not bad, f"{APISERVER_POLICY}: every ipBlock is a canonical CIDR, no host bits, not /0", ", ".join(bad))
    c.ok(not any(f["ipBlock"].get("except") for f in froms if "ipBlock" in f),
         f"{APISERVER_POLICY}: no `except` (the ranges are the control plane's, whole)")
    if variant == "base":
        c.ok(cidrs == [PLACEHOLDER_CIDR],
             f"base: exactly the placeholder {PLACEHOLDER_CIDR} (TEST-NET-1: an unconfigured install admits nobody)",
             ", ".join(cidrs))
        return
    c.ok(PLACEHOLDER_CIDR not in cidrs and bool(cidrs),
         f"{variant}: the placeholder is replaced by gen-webhook-certs.sh --apiserver-cidr ({', '.join(cidrs)})")
    if variant == "production":
        broad = [str(n) for n in nets if n.prefixlen < MAX_PRODUCTION_PREFIX[n.version]]
        c.ok(not broad, f"production: no range broader than /{MAX_PRODUCTION_PREFIX[4]} (IPv4) or "
             f"/{MAX_PRODUCTION_PREFIX[6]} (IPv6) admitted to the webhook port", ", ".join(broad))
    if expected_cidrs is not None:
        c.ok(sorted(map(str, nets)) == sorted(map(str, expected_cidrs)),
             f"{variant}: admits exactly the --apiserver-cidr ranges ({', '.join(map(str, expected_cidrs))})",
             ", ".join(cidrs))


def check_network(c, docs, variant, expected_cidrs=None):
    print("network policies")
    deps = deployments(docs)
    pols = find(docs, "NetworkPolicy")
    c.ok(any(p["spec"].get("podSelector") == {} and "Ingress" in p["spec"].get("policyTypes", [])
             and not p["spec"].get("ingress") for p in pols), "default deny of all ingress")
    for p in pols:
        for rule in p["spec"].get("ingress") or []:
            c.ok(bool(rule.get("from")) and bool(rule.get("ports")),
                 f"{p['metadata']['name']}: every ingress rule names its sources and ports")
            c.ok(all("namespaceSelector" not in f for f in rule.get("from") or []),
                 f"{p['metadata']['name']}: no other namespace is allowed in")

    def allowed(dst):
        """(source deployments, ip blocks, ports) allowed into dst."""
        srcs, blocks, ports = set(), [], set()
        labels = pod_labels(dst)
        for p in pols:
            if not selector_matches(p["spec"]["podSelector"], labels) and p["spec"]["podSelector"] != {}:
                continue
            for rule in p["spec"].get("ingress") or []:
                rule_ports = {pp["port"] for pp in rule.get("ports") or []}
                for f in rule.get("from") or []:
                    if "ipBlock" in f:
                        blocks.append(f["ipBlock"]["cidr"])
                        ports |= rule_ports
                    if "podSelector" in f:
                        for sname, s in deps.items():
                            if selector_matches(f["podSelector"], pod_labels(s)) or f["podSelector"] == {}:
                                srcs.add(sname)
                                ports |= rule_ports
        return srcs, blocks, ports

    expected = REACHABILITY[variant]
    c.ok(set(deps) == set(expected), f"Deployments are {sorted(expected)}", str(sorted(deps)))
    for dst, want in sorted(expected.items()):
        if dst not in deps:
            continue
        srcs, blocks, ports = allowed(deps[dst])
        who = f"only {', '.join(sorted(want))} may" if want else "no pod may"
        c.ok(srcs == want, f"{who} connect to {dst}", f"allowed: {sorted(srcs)}")
        cports = {p["containerPort"] for p in pod_spec(deps[dst])["containers"][0].get("ports") or []}
        c.ok(ports <= cports, f"{dst}: policies open only its own ports {sorted(ports)}")
        if dst == GATEWAY:
            c.ok(bool(blocks) and ports == {container_port(pod_spec(deps[dst])["containers"][0], "https")},
                 f"{dst}: reachable from the API server's address ranges ({', '.join(blocks)}) "
                 "on its HTTPS port only (not the probe port)")
        else:
            c.ok(not blocks, f"{dst}: no address range allowed in")
    check_apiserver_policy(c, docs, variant, expected_cidrs)


def check_redis(c, docs, variant):
    print("redis")
    cm = generated(docs, "ConfigMap", "portcullis-redis-config")
    conf = (cm or {}).get("data", {}).get("redis.conf", "")
    lines = {ln.strip() for ln in conf.splitlines() if ln.strip() and not ln.startswith("#")}
    c.ok({"port 0", "tls-port 6379"} <= lines, "TLS only (port 0, tls-port 6379)")
    c.ok({'save ""', "appendonly no"} <= lines, "no persistence (save \"\", appendonly no)")
    inc = [ln.split(None, 1)[1] for ln in lines if ln.startswith("include ")]
    c.ok(any(i.endswith("/redis-auth.conf") for i in inc), "password included from the Secret, not on the command line")
    deps = deployments(docs)
    for name in (REDIS, REDIS_REPLICA):
        d = deps.get(name)
        if d:
            vols = pod_spec(d).get("volumes") or []
            c.ok(not any("persistentVolumeClaim" in v for v in vols), f"{name}: no persistent volume")
            c.ok("requirepass" not in " ".join(pod_spec(d)["containers"][0].get("command", [])
                                                  + pod_spec(d)["containers"][0].get("args", [])),
                 f"{name}: no password on the command line")
    ver = deps.get(VERIFIER)
    if ver:
        cont = pod_spec(ver)["containers"][0]
        names = [e["name"] for e in cont.get("env") or []]
        env = env_of(cont)
        url = env.get("PORTCULLIS_REDIS_URL", {}).get("value", "")
        m = re.fullmatch(r"rediss://default:\$\(REDIS_PASSWORD\)@([a-z0-9.-]+):(\d+)", url)
        c.ok(m is not None, "verifier: PORTCULLIS_REDIS_URL is rediss:// with the password from the environment")
        c.ok("REDIS_PASSWORD" in names and "PORTCULLIS_REDIS_URL" in names
             and names.index("REDIS_PASSWORD") < names.index("PORTCULLIS_REDIS_URL"),
             "verifier: REDIS_PASSWORD is defined before PORTCULLIS_REDIS_URL (for $(VAR) expansion)")
        ref = env.get("REDIS_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {})
        auth = generated(docs, "Secret", ref.get("name", "-"))
        if m:
            svc_name = m.group(1).split(".")[0]
            c.ok(one(docs, "Service", svc_name) is not None, f"verifier: Redis host {m.group(1)} is a Service")
        if auth is not None:
            pw = secret_bytes(auth, ref["key"]).decode()
            conf_auth = (secret_bytes(auth, "redis-auth.conf") or b"").decode()
            c.ok(re.fullmatch(r"[0-9a-f]{32,}", pw) is not None, "Redis password: >= 32 hex digits, safe in a URL")
            c.ok(f"requirepass {pw}" in conf_auth.splitlines(), "Redis requirepass is the verifier's password")
            hm = generated(docs, "Secret", "portcullis-cache-hmac")
            key = secret_bytes(hm, "hmac.key") if hm else b""
            c.ok(len(key.strip()) >= 16, "cache HMAC key: >= 16 bytes")
        if variant == "production":
            rc = generated(docs, "ConfigMap", "portcullis-redis-replica-config")
            text = (rc or {}).get("data", {}).get("redis-replica.conf", "")
            c.ok(re.search(r"^replicaof portcullis-redis\.portcullis\.svc 6379$", text, re.M) is not None,
                 "production: the replica follows the primary's Service")


def check_tls(c, docs, variant, hooks):
    print("webhook CA and certificates")
    deps = deployments(docs)
    if variant == "base":
        c.ok(all("caBundle" not in (w.get("clientConfig") or {}) for _, w in hooks),
             "base: no caBundle (an overlay fills it in)")
        return
    if variant == "cert-manager":
        certs = {d["spec"]["secretName"]: d for d in find(docs, "Certificate")}
        for typ, w in hooks:
            ann = None
            for cfg in find(docs, "MutatingWebhookConfiguration") + find(docs, "ValidatingWebhookConfiguration"):
                if w in cfg.get("webhooks", []):
                    ann = (cfg["metadata"].get("annotations") or {}).get("cert-manager.io/inject-ca-from")
            c.ok(ann == f"{NAMESPACE}/portcullis-gateway-tls" and "caBundle" not in w.get("clientConfig", {}),
                 f"{w['name']}: caBundle injected by cert-manager from {ann}")
        want = {
            "portcullis-gateway-tls": (f"{GATEWAY}.{NAMESPACE}.svc", "server auth"),
            "portcullis-verifier-tls": (f"portcullis-verifier-headless.{NAMESPACE}.svc", "server auth"),
            "portcullis-redis-tls": (f"{REDIS}.{NAMESPACE}.svc", "server auth"),
            "portcullis-gateway-client-tls": (None, "client auth"),
        }
        for secret, (dns, usage) in want.items():
            cert = certs.get(secret)
            c.ok(cert is not None and (dns is None or dns in cert["spec"].get("dnsNames", []))
                 and usage in cert["spec"].get("usages", []),
                 f"Certificate for {secret}: {dns or 'client'} ({usage})")
        return
    bundles = {w.get("clientConfig", {}).get("caBundle") for _, w in hooks}
    c.ok(len(bundles) == 1 and None not in bundles, "every webhook has the same caBundle")
    ca = base64.b64decode(next(iter(bundles)) or "") if bundles else b""
    c.ok(b"BEGIN CERTIFICATE" in ca, "caBundle is a PEM CA certificate (base64)")
    want = [
        ("portcullis-gateway-tls", f"{GATEWAY}.{NAMESPACE}.svc", "TLS Web Server Authentication"),
        ("portcullis-verifier-tls", f"portcullis-verifier-headless.{NAMESPACE}.svc", "TLS Web Server Authentication"),
        ("portcullis-redis-tls", f"{REDIS}.{NAMESPACE}.svc", "TLS Web Server Authentication"),
        ("portcullis-gateway-client-tls", None, "TLS Web Client Authentication"),
    ]
    for secret_name, dns, eku in want:
        s = generated(docs, "Secret", secret_name)
        if not c.ok(s is not None and s.get("type") == "kubernetes.io/tls", f"Secret {secret_name} (kubernetes.io/tls)"):
            continue
        crt, key, sca = secret_bytes(s, "tls.crt"), secret_bytes(s, "tls.key"), secret_bytes(s, "ca.crt")
        good, out = verify_chain(ca, crt)
        c.ok(good, f"{secret_name}: tls.crt is issued by the webhooks' CA", out)
        c.ok(sca == ca, f"{secret_name}: ca.crt is the same CA bundle")
        c.ok(key_matches(crt, key), f"{secret_name}: tls.key matches tls.crt")
        if dns:
            c.ok(dns in cert_sans(crt), f"{secret_name}: certificate names {dns}")
        ekus = cert_eku(crt)
        other = ("TLS Web Client Authentication" if "Server" in eku else "TLS Web Server Authentication")
        c.ok(eku in ekus and other not in ekus, f"{secret_name}: extended key usage is only '{eku}'")
    # The hosts the components dial are names in those certificates.
    ver = deps.get(VERIFIER)
    if ver:
        url = env_of(pod_spec(ver)["containers"][0]).get("PORTCULLIS_REDIS_URL", {}).get("value", "")
        m = re.search(r"@([a-z0-9.-]+):", url)
        rs = generated(docs, "Secret", "portcullis-redis-tls")
        if m and rs:
            c.ok(m.group(1) in cert_sans(secret_bytes(rs, "tls.crt")),
                 f"Redis certificate names the host verifiers dial ({m.group(1)})")


def pem_certs(data):
    """The PEM certificates in a bundle, whitespace-normalised."""
    return [re.sub(r"\s+", "", m) for m in re.findall(
        r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", (data or b"").decode(errors="replace"), re.S)]


def gateway_setting(cont, flag, env):
    f = flags(cont)
    if flag in f:
        return f[flag]
    e = env_of(cont).get(env)
    return e.get("value") if e else None


def port_of(addr):
    m = re.fullmatch(r".*:(\d+)", addr or "")
    return int(m.group(1)) if m else None


def check_client_auth(c, docs, variant, hooks):
    """Gateway --client-ca: only the API server gets an answer."""
    print("API server authentication (gateway --client-ca)")
    if variant != "base":
        s = generated(docs, "Secret", CLIENT_CA_SECRET)
        certs = pem_certs(secret_bytes(s, "ca.crt")) if s else []
        c.ok(bool(certs), f"Secret {CLIENT_CA_SECRET} (gen-webhook-certs.sh) has ca.crt, a PEM certificate")
    gw = deployments(docs).get(GATEWAY)
    if not gw:
        return
    spec = pod_spec(gw)
    cont = spec["containers"][0]
    client_ca = gateway_setting(cont, "client-ca", "PORTCULLIS_CLIENT_CA")
    probe_listen = gateway_setting(cont, "probe-listen", "PORTCULLIS_PROBE_LISTEN")
    listen_port = port_of(gateway_setting(cont, "listen", "PORTCULLIS_LISTEN"))
    probe_port = port_of(probe_listen)
    https = container_port(cont, "https")
    if variant == "production":
        c.ok(client_ca is not None,
             "production: the webhook listener requires the API server's client certificate (--client-ca)")
        c.ok(probe_listen is not None,
             "production: --probe-listen is set (kubelet probes present no client certificate)")
    # Probes reach what listens: HTTPS on the webhook port (only without
    # --client-ca), plain HTTP on the probe port.
    for pname in ("readinessProbe", "livenessProbe"):
        hg = (cont.get(pname) or {}).get("httpGet")
        if not c.ok(hg is not None, f"gateway {pname}: httpGet"):
            continue
        port, scheme = container_port(cont, hg["port"]), hg.get("scheme", "HTTP")
        if client_ca:
            c.ok(probe_port is not None and port == probe_port and scheme == "HTTP",
                 f"gateway {pname}: plain HTTP on the --probe-listen port {probe_port} "
                 "(the webhook port demands a client certificate kubelet does not have)",
                 f"port {hg['port']} ({port}), {scheme}")
        else:
            c.ok((port == listen_port and scheme == "HTTPS") or (port == probe_port and scheme == "HTTP"),
                 f"gateway {pname}: {scheme} on port {port}, which serves it (no --client-ca)")
    if probe_listen is not None:
        c.ok(probe_port is not None and container_port(cont, "probes") == probe_port,
             f"gateway --probe-listen {probe_listen}: its port is the container port named probes")
        c.ok(probe_port != listen_port, "gateway: the probe listener is not the webhook listener")
    if not client_ca:
        print(f"  note  {variant}: no --client-ca: the webhook port answers any client the NetworkPolicy admits")
        return
    # The CA file comes from a mounted Secret.
    d, base = posixpath.split(client_ca)
    vols = {v["name"]: v for v in spec.get("volumes") or []}
    mount = next((m for m in cont.get("volumeMounts") or [] if m["mountPath"].rstrip("/") == d), None)
    vol = vols.get(mount["name"]) if mount else None
    secret = generated(docs, "Secret", vol["secret"]["secretName"]) if vol and "secret" in vol else None
    key = base
    for item in (vol or {}).get("secret", {}).get("items") or []:
        if item["path"] == base:
            key = item["key"]
    provided = secret is not None and secret_bytes(secret, key) is not None
    c.ok(provided,
         f"gateway --client-ca {client_ca}: {d} mounts a volume from a Secret in the render that provides {base}",
         f"mount {mount and mount['name']}, volume {vol}")
    if not provided:
        return
    sname = secret["metadata"]["name"]
    ca_pem = secret_bytes(secret, key)
    client_cas = pem_certs(ca_pem)
    c.ok(bool(client_cas), f"{sname}: {key} holds PEM certificates")
    bundles = {w.get("clientConfig", {}).get("caBundle") for _, w in hooks}
    main = pem_certs(base64.b64decode(next(iter(bundles), None) or ""))
    c.ok(bool(main) and not set(client_cas) & set(main),
         f"{sname}: the client CA is not the webhooks' caBundle CA (a separate CA)")
    # No certificate of the installation's other CA passes for the API server.
    leaked = []
    for sec in find(docs, "Secret"):
        crt = secret_bytes(sec, "tls.crt") if sec.get("type") == "kubernetes.io/tls" else None
        if crt and verify_chain(ca_pem, crt)[0]:
            leaked.append(sec["metadata"]["name"])
    c.ok(not leaked, "no certificate in the installation's TLS Secrets chains to the client CA", ", ".join(leaked))
    # The kubeconfig user gen-webhook-certs.sh writes is the Service's DNS
    # name without a port, which the API server uses for port 443 only.
    c.ok(all((w.get("clientConfig", {}).get("service") or {}).get("port", 443) == 443 for _, w in hooks),
         f"every webhook calls Service port 443 "
         f"(the API server's kubeconfig user is {GATEWAY}.{NAMESPACE}.svc, no port)")
    # The API server calls the webhook listener, not the probe listener.
    svc = one(docs, "Service", GATEWAY)
    svc_ports = (svc or {}).get("spec", {}).get("ports") or []
    targets = {container_port(cont, p.get("targetPort", p["port"])) for p in svc_ports}
    c.ok(targets == {https} and https == listen_port,
         f"Service {GATEWAY} targets the webhook listener ({https}, --listen), never the probe port ({probe_port})",
         str(targets))


def check_verifier_config(c, docs, verifier_bin):
    print("verifier policy")
    cm = generated(docs, "ConfigMap", "portcullis-verifier-config")
    text = (cm or {}).get("data", {}).get("config.yaml", "")
    try:
        cfg = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        cfg = {}
        c.ok(False, "config.yaml parses", str(e))
    c.ok(set(cfg) == {"validators", "policy"}, "config.yaml has validators and policy")
    c.ok(any(r.get("pattern") == "**" for r in cfg.get("policy") or []), "a catch-all rule (**)")
    if not verifier_bin:
        print("  skip  policy decisions (no verifier binary; set PORTCULLIS_VERIFIER_BIN)")
        return
    own = sorted({pod_spec(d)["containers"][0]["image"] for n, d in deployments(docs).items()
                  if n in (GATEWAY, VERIFIER)})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(text)
        f.flush()
        r = subprocess.run([verifier_bin, "verify", "--config", f.name, *own], capture_output=True, text=True)
        c.ok(r.returncode == 0, f"policy allows the system's own images ({', '.join(own)})", r.stdout + r.stderr)
        r = subprocess.run([verifier_bin, "verify", "--config", f.name, "nginx:1.25"], capture_output=True, text=True)
        c.ok(r.returncode == 1 and "STATIC_DENY" in r.stdout, "policy denies anything else (nginx:1.25)",
             r.stdout + r.stderr)


def check_source_kinds(path):
    """The gateway source still names every kind of KINDS."""
    text = open(path).read()
    missing = [k for k, *_ in KINDS if not re.search(rf"\b{k}\b", text)]
    print(f"  {'ok  ' if not missing else 'FAIL'}  {path} names every kind the webhook rules list"
          + (f": missing {missing}" if missing else ""))
    return not missing


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variant", nargs="?", choices=sorted(REACHABILITY))
    ap.add_argument("rendered", nargs="?")
    ap.add_argument("--verifier-bin")
    ap.add_argument("--source-kinds", metavar="EXTRACT_RS")
    ap.add_argument("--apiserver-cidrs", metavar="CIDR[,CIDR...]",
                    help="what gen-webhook-certs.sh was given as --apiserver-cidr")
    a = ap.parse_args()
    if a.source_kinds:
        sys.exit(0 if check_source_kinds(a.source_kinds) else 1)
    if not (a.variant and a.rendered):
        ap.error("VARIANT and RENDERED are required")
    try:
        expected_cidrs = expand_cidrs(a.apiserver_cidrs) if a.apiserver_cidrs else None
    except ValueError as e:
        ap.error(f"--apiserver-cidrs: {e}")
    docs = load(a.rendered)
    c = Checker(a.variant)
    check_objects(c, docs)
    hooks = check_webhooks(c, docs)
    check_timeouts(c, docs, hooks)
    check_pods(c, docs)
    check_references(c, docs, a.variant)
    check_services(c, docs)
    check_scaling(c, docs, a.variant)
    check_network(c, docs, a.variant, expected_cidrs)
    check_redis(c, docs, a.variant)
    check_tls(c, docs, a.variant, hooks)
    check_client_auth(c, docs, a.variant, hooks)
    check_verifier_config(c, docs, a.verifier_bin)
    print(f"{a.variant}: {c.count - len(c.failures)}/{c.count} checks passed")
    sys.exit(1 if c.failures else 0)


if __name__ == "__main__":
    main()
