#!/usr/bin/env python3
"""Runs a Portcullis k6 scenario against a local stack of real components.

Called by loadtest/run.sh (which installs dependencies and builds the
binaries first); see loadtest/README.md. Stdlib only.

The stack, all on 127.0.0.1 with free ports:
  * docker-registry (distribution 2.8) serving a generated, cached set of
    cosign-signed and unsigned images; its access log counts the verifiers'
    requests (user agent portcullis-verifier*);
  * Notary v1 (notary-server + notary-signer, tests/fixtures/notary) with a
    few tags signed into targets/releases at start-up;
  * Redis (the shared L2 cache);
  * N portcullis-verifier processes (--verifiers, default 2) and one
    portcullis-gateway (HTTPS, self-signed certificate).

Then it runs loadtest/<scenario>.js with k6, measures CPU time and peak RSS
of the gateway and verifiers from /proc, counts registry requests, prints a
markdown table and writes the results JSON under .local/loadtest/results/.
Every process it started is stopped on exit (also on Ctrl-C / SIGTERM;
children get PR_SET_PDEATHSIG so they die even if this script is killed).
"""

import argparse
import ctypes
import datetime
import json
import os
import re
import resource
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
STATE = os.path.join(ROOT, ".local", "loadtest")
# Bump when the generated image set changes shape (it is cached under this).
SET_VERSION = "set-v1"
VENV_PY = os.path.join(ROOT, ".local", "venv", "bin", "python")
CLK_TCK = os.sysconf("SC_CLK_TCK")

SCENARIOS = {
    # rate: arrivals/s; duration: k6 duration; p99: threshold (ms)
    "warm": {"rate": 1000, "duration": "60s", "p99": 5},
    "mixed": {"rate": 500, "duration": "60s", "p99": 250},
    "cold": {"rate": 20, "duration": None, "p99": 1000},
    "rollout": {"rate": None, "duration": None, "p99": 1000, "count": 1000, "seconds": 3},
    "deny": {"rate": 500, "duration": "30s", "p99": 100},
    "static": {"rate": 1000, "duration": "30s", "p99": 25},
    # Portcullis vs the bare baseline server (loadtest/baseline), static.js
    # with one statically allowed image (3-container Pods: one Verify call
    # after de-duplication), interleaved --pairs times.
    "baseline": {"rate": 1000, "duration": "30s", "p99": 25},
}
STATIC_ALLOW = ["nginx:1.27", "docker.io/library/redis:7.2", "registry.k8s.io/pause:3.9"]
VERIFIER_UA = "portcullis-verifier"


def log(msg):
    sys.stderr.write("[loadtest] %s\n" % msg)
    sys.stderr.flush()


class Failure(Exception):
    pass


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup():
    # Own process group (a terminal's Ctrl-C reaches only us and k6; we stop
    # the servers in order), and die with us even if we are SIGKILLed.
    os.setpgid(0, 0)
    _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Proc:
    def __init__(self, name, popen, logs):
        self.name = name
        self.p = popen
        self.logs = logs

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None


class Stack:
    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.procs = []

    def spawn(self, name, argv, stdout_path=None, stderr_path=None, stdin=subprocess.DEVNULL,
              stdout=None, env=None):
        out = open(stdout_path, "ab") if stdout_path else stdout
        err = open(stderr_path, "ab") if stderr_path else (out if stdout_path else None)
        p = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=err, env=env,
                             preexec_fn=_child_setup, cwd=ROOT)
        proc = Proc(name, p, [x for x in (stdout_path, stderr_path) if x])
        self.procs.append(proc)
        return proc

    def check_alive(self):
        for proc in self.procs:
            if not proc.alive():
                raise Failure("%s exited with %s; see %s" % (proc.name, proc.p.returncode,
                                                             ", ".join(proc.logs) or "its output"))

    def stop(self):
        for proc in reversed(self.procs):
            if proc.alive():
                try:
                    if proc.p.stdin:
                        proc.p.stdin.close()
                except OSError:
                    pass
                try:
                    proc.p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 8
        for proc in reversed(self.procs):
            try:
                proc.p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                log("%s (pid %d) did not stop; killing it" % (proc.name, proc.pid))
                proc.p.kill()
                proc.p.wait()
        self.procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_tcp(port, what, stack, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        stack.check_alive()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Failure("%s did not listen on 127.0.0.1:%d" % (what, port))


def http_get(url, ctx=None, timeout=5):
    with urllib.request.urlopen(url, context=ctx, timeout=timeout) as r:
        return r.status, r.read().decode()


def proc_cpu(pid):
    """utime + stime of a process, in seconds (fields 14 and 15 of stat)."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state), so field N is rest[N - 3].
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
    return 0


def parse_prom(text, name):
    """[(labels dict, value)] of one metric family's samples."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r'^%s(?:\{(.*)\})?\s+(\S+)' % re.escape(name), line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1) or ""))
        out.append((labels, float(m.group(2))))
    return out


# ---------------------------------------------------------------------------
# Setup pieces
# ---------------------------------------------------------------------------

def ensure_pki():
    pki = os.path.join(STATE, "pki")
    if not os.path.exists(os.path.join(pki, "alice.pub")):
        subprocess.run([VENV_PY, "tests/fixtures/cosign/sigtool.py", "pki", pki], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
    cert, key = os.path.join(STATE, "webhook.crt"), os.path.join(STATE, "webhook.key")
    if not (os.path.exists(cert) and os.path.exists(key)):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "365",
                        "-subj", "/CN=portcullis-gateway",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", key, "-out", cert], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hmac = os.path.join(STATE, "cache-hmac.key")
    if not os.path.exists(hmac):
        with open(hmac, "w") as f:
            f.write(secrets.token_hex(32))
        os.chmod(hmac, 0o600)
    return pki, cert, key, hmac


def start_registry(stack, run_dir, storage):
    port = free_port()
    cfg = os.path.join(run_dir, "registry.yml")
    with open(cfg, "w") as f:
        f.write("version: 0.1\nlog:\n  accesslog:\n    disabled: false\n  level: warn\n"
                "storage:\n  cache: {blobdescriptor: inmemory}\n"
                "  filesystem: {rootdirectory: %s}\n  delete: {enabled: true}\n"
                "http:\n  addr: 127.0.0.1:%d\n" % (storage, port))
    access = os.path.join(run_dir, "registry-access.log")
    proc = stack.spawn("registry", ["docker-registry", "serve", cfg], stdout_path=access,
                       stderr_path=os.path.join(run_dir, "registry.log"))
    wait_tcp(port, "registry", stack)
    return proc, "127.0.0.1:%d" % port, access


def ensure_images(registry, pki, fresh, jobs):
    out = os.path.join(STATE, SET_VERSION)
    path = os.path.join(out, "images.json")
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
        if len(data["groups"].get("fresh", [])) >= fresh:
            return data
    log("generating the image set (%d fresh signed images; cached in %s)" % (fresh, out))
    r = subprocess.run([VENV_PY, os.path.join(ROOT, "loadtest", "gen_images.py"),
                        "--registry", registry, "--out", out, "--pki", pki,
                        "--version", SET_VERSION, "--fresh", str(fresh), "--jobs", str(jobs)],
                       cwd=ROOT)
    if r.returncode != 0:
        raise Failure("image generation failed; rerun to resume")
    with open(path) as f:
        return json.load(f)


def start_notary(stack, run_dir, registry, notary_images):
    d = os.path.join(run_dir, "notary")
    os.makedirs(d, exist_ok=True)
    proc = stack.spawn("notary", [VENV_PY, "tests/fixtures/notary/notary_env.py", "up", d],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                       stderr_path=os.path.join(run_dir, "notary-up.log"))
    line = proc.p.stdout.readline()
    if not line:
        stack.check_alive()
        raise Failure("notary_env.py up printed nothing; see %s" % os.path.join(run_dir, "notary-up.log"))
    env = json.loads(line)
    # Keep draining stdout so the pipe never fills.
    threading.Thread(target=lambda: proc.p.stdout.read(), daemon=True).start()
    gun = "%s/dct/app" % registry
    root_pem = None
    for img in notary_images:
        r = subprocess.run([VENV_PY, "tests/fixtures/notary/notary_env.py", "sign", d, "--gun", gun,
                            "--tag", img["tag"], "--digest", img["digest"], "--size", str(img["size"]),
                            "--roles", "targets/releases"], cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            raise Failure("notary sign %s:%s failed: %s" % (gun, img["tag"], r.stderr.strip()[-500:]))
        root_pem = json.loads(r.stdout)["root_key_spki_pem"]
    with open(env["ca"]) as f:
        ca = f.read()
    return {"url": env["server_url"], "ca": ca, "root": root_pem, "gun": gun}


def start_redis(stack, run_dir):
    port = free_port()
    stack.spawn("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                          "--appendonly", "no", "--logfile", ""],
                stdout_path=os.path.join(run_dir, "redis.log"))
    wait_tcp(port, "redis", stack)
    return port


def verifier_config(path, registry, pki, notary):
    with open(os.path.join(pki, "alice.pub")) as f:
        alice = f.read()
    validators = [
        {"name": "allow", "type": "static", "approve": True},
        {"name": "deny", "type": "static", "approve": False},
        {"name": "signed", "type": "cosign", "insecureRegistries": [registry],
         "trustRoots": [{"name": "alice", "key": alice}]},
    ]
    policy = [
        {"pattern": "**", "validator": "deny"},
        {"pattern": "docker.io/library/*:*", "validator": "allow"},
        {"pattern": "registry.k8s.io/**", "validator": "allow"},
        {"pattern": "%s/signed/**" % registry, "validator": "signed", "with": {"trustRoot": "alice"}},
    ]
    if notary:
        validators.append({"name": "dct", "type": "notaryv1", "host": notary["url"], "cert": notary["ca"],
                           "trustRoots": [{"name": "default", "key": notary["root"]}]})
        policy.append({"pattern": "%s/dct/**" % registry, "validator": "dct",
                       "with": {"trustRoot": "default"}})
    with open(path, "w") as f:
        # JSON is YAML.
        json.dump({"validators": validators, "policy": policy}, f, indent=2)


def catalogue(path, registry, groups, notary):
    def ref(img):
        return "%s/%s:%s" % (registry, img["repo"], img["tag"])

    def signed(img):
        return {"image": ref(img), "allowed": True, "pinned": "%s@%s" % (ref(img), img["digest"])}

    warm = [signed(i) for i in groups["warm"]]
    digests = [{"image": "%s/%s@%s" % (registry, i["repo"], i["digest"]), "allowed": True, "pinned": None}
               for i in groups["warm"]]
    statics = [{"image": s, "allowed": True, "pinned": None} for s in STATIC_ALLOW]
    notary_tags = [signed(i) for i in groups["notary"]] if notary else []
    repeat = warm * 4 + digests + notary_tags * 6 + statics * 4
    denied = (
        [{"image": ref(i), "allowed": False, "reason": "NO_SIGNATURES"} for i in groups["unsigned"]]
        + [{"image": ref(i), "allowed": False, "reason": "NO_MATCHING_SIGNATURE"} for i in groups["wrongkey"]]
        + [{"image": img, "allowed": False, "reason": "STATIC_DENY"}
           for img in ("%s/other/app:v1" % registry, "quay.io/evil/miner:latest", "ghcr.io/unknown/tool:1.0")]
        + [{"image": "%s/signed/warm/app-0:does-not-exist" % registry, "allowed": False,
            "reason": "IMAGE_NOT_FOUND"}]
    )
    if notary:
        denied.append({"image": "%s/dct/app:v999" % registry, "allowed": False, "reason": "TAG_NOT_SIGNED"})
    invalid = [{"image": img, "allowed": False, "reason": "INVALID_REFERENCE"}
               for img in ("%s/signed/UPPER/app:v1" % registry, "nginx@sha256:1234",
                           "nginx:bad tag", "-leading/dash:1", "nginx:" + "t" * 200)]
    data = {
        "registry": registry,
        "warm": warm,
        "repeat": repeat,
        "fresh": [signed(i) for i in groups["fresh"]],
        "rollout": [signed(i) for i in groups["rollout"]],
        "denied": denied,
        "invalid": invalid,
        "missing_repos": [{"repo": "%s/signed/warm/app-%d" % (registry, n)} for n in range(4)],
    }
    with open(path, "w") as f:
        json.dump(data, f)
    return data


class OwnerApi:
    """A stub Kubernetes API (plain HTTP on loopback, an explicit choice for a
    stub; HTTP/1.1 keep-alive, one thread per connection) that serves the rollout Pods' owner ReplicaSet, as
    loadtest/lib.js names it, holding `image`. For `--owner-api`: comparing
    a gateway that reads owners (automatic child approval before it was
    removed) with one that verifies children. Every other path is a 404."""

    RS = "web-7d4b9c8f6d"
    UID = "3b1e8f8e-6a4c-4a8e-9e55-1b1f2c3d4e5f"

    def __init__(self, image, namespace="payments"):
        import http.server

        path = "/apis/apps/v1/namespaces/%s/replicasets/%s" % (namespace, self.RS)
        body = json.dumps({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": self.RS, "namespace": namespace, "uid": self.UID},
            "spec": {"replicas": 1000, "template": {"spec": {"containers": [{"name": "c0", "image": image}]}}},
        }).encode()
        missing = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                              "reason": "NotFound", "code": 404}).encode()
        api = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, each
            # answer waits ~40 ms for the client's delayed ACK.
            disable_nagle_algorithm = True

            def do_GET(self):
                api.requests += 1
                found = self.path.split("?")[0] == path
                data = body if found else missing
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.token = os.path.join(STATE, "owner-api.token")
        with open(self.token, "w") as f:
            f.write("loadtest")
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def gateway_flags(self):
        return ["--kube-api-url", "http://127.0.0.1:%d" % self.port, "--kube-token-file", self.token]


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------

class Snapshot:
    def __init__(self, procs, access_log, gateway_log, verifier_metrics, gateway_metrics=None):
        self.t = time.time()
        self.cpu = {}
        for name, proc in procs:
            try:
                self.cpu[name] = proc_cpu(proc.pid)
            except OSError:
                self.cpu[name] = 0.0
        self.registry_lines = count_lines(access_log)
        self.gateway_lines = count_lines(gateway_log)
        self.verifier_metrics = {}
        for name, url in verifier_metrics:
            try:
                self.verifier_metrics[name] = http_get(url)[1]
            except (OSError, urllib.error.URLError):
                self.verifier_metrics[name] = ""
        self.gateway_metrics = ""
        if gateway_metrics:
            try:
                self.gateway_metrics = http_get(gateway_metrics[0], gateway_metrics[1])[1]
            except (OSError, urllib.error.URLError):
                pass
        self.children = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open("/proc/stat") as f:
            cpu = [int(x) for x in f.readline().split()[1:]]
        # busy = everything but idle and iowait
        self.machine_busy = (sum(cpu) - cpu[3] - cpu[4]) / CLK_TCK


def count_lines(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def registry_requests(path, start_line):
    """The verifier's requests in the access log after line start_line."""
    out = []
    with open(path, errors="replace") as f:
        for i, line in enumerate(f):
            if i < start_line:
                continue
            q = line.split('"')
            if len(q) < 6 or not q[5].startswith(VERIFIER_UA):
                continue
            req = q[1].split(" ")
            status = q[2].split()[0] if q[2].split() else "?"
            out.append({"method": req[0], "path": req[1] if len(req) > 1 else "", "status": status})
    return out


def gateway_latency(path, start_line):
    """Percentiles (ms) of the gateway's own elapsed_us per admission, from
    its log (info level) after line start_line; None without such lines."""
    xs = []
    with open(path, errors="replace") as f:
        for i, line in enumerate(f):
            if i < start_line or " admission " not in line:
                continue
            m = re.search(r"elapsed_us=(\d+)", line)
            if m:
                xs.append(int(m.group(1)) / 1000.0)
    if not xs:
        return None
    xs.sort()
    pick = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]
    return {"n": len(xs), "p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99), "max": xs[-1],
            "source": "log"}


def histogram_latency(before, after):
    """Percentiles (ms) of the gateway's admission_duration histogram
    between two scrapes, interpolated within buckets as Prometheus'
    histogram_quantile does (coarse: the buckets are 0.5, 1, 2.5, 5, 10,
    25 ms...)."""
    def buckets(text):
        out = {}
        for labels, v in parse_prom(text, "portcullis_admission_duration_seconds_bucket"):
            le = labels.get("le")
            if le is None:
                continue
            b = float("inf") if le == "+Inf" else float(le)
            out[b] = out.get(b, 0) + v
        return out
    b0, b1 = buckets(before), buckets(after)
    bounds = sorted(b1)
    cum = [(b, b1[b] - b0.get(b, 0)) for b in bounds]
    if not cum or cum[-1][1] <= 0:
        return None
    total = cum[-1][1]

    def q(x):
        rank = x * total
        prev_b, prev_c = 0.0, 0.0
        for b, c in cum:
            if c >= rank:
                if b == float("inf"):
                    return prev_b * 1000
                return (prev_b + (b - prev_b) * ((rank - prev_c) / max(c - prev_c, 1e-9))) * 1000
            prev_b, prev_c = b, c
        return prev_b * 1000
    return {"n": int(total), "p50": q(0.5), "p95": q(0.95), "p99": q(0.99), "max": None,
            "source": "histogram"}


def verifications(text):
    """{"validator/source": count} of portcullis_verifications_total."""
    out = {}
    for labels, v in parse_prom(text, "portcullis_verifications_total"):
        k = "%s/%s" % (labels.get("validator", "?"), labels.get("source", "?"))
        out[k] = out.get(k, 0) + v
    return out


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

def k6_binary():
    for c in (os.environ.get("K6"), os.path.join(ROOT, ".local", "venv", "bin", "k6")):
        if c and os.access(c, os.X_OK):
            return c
    from shutil import which
    k = which("k6")
    if not k:
        raise Failure("k6 not found: install it (https://grafana.com/docs/k6/latest/set-up/install-k6/) "
                      "or run scripts/install-deps.sh")
    return k


def run_k6(script, env, log_path, html=None):
    argv = [k6_binary(), "run", "--no-color", os.path.join(ROOT, "loadtest", script)]
    full = dict(os.environ)
    full.update({k: str(v) for k, v in env.items() if v is not None})
    full["K6_NO_USAGE_REPORT"] = "true"
    if html:
        full["K6_WEB_DASHBOARD"] = "true"
        full["K6_WEB_DASHBOARD_EXPORT"] = html
        full.setdefault("K6_WEB_DASHBOARD_PORT", "-1")
    with open(log_path, "ab") as lf:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full, cwd=ROOT,
                             preexec_fn=lambda: _libc.prctl(1, signal.SIGTERM))
        try:
            for line in p.stdout:
                lf.write(line)
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
            return p.wait()
        finally:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def prime(target, tls, entries):
    """Verifies each distinct image once (one Pod admission each) so the
    measured window starts with warm caches, as k6's setup() would."""
    seen, bad = set(), []
    for e in entries:
        if e["image"] in seen:
            continue
        seen.add(e["image"])
        body = json.dumps({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "prime-%d" % len(seen), "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "namespace": "prime", "operation": "CREATE", "userInfo": {"username": "loadtest"},
                        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "prime"},
                                   "spec": {"containers": [{"name": "c", "image": e["image"]}]}}},
        }).encode()
        req = urllib.request.Request(target + "/mutate", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=tls, timeout=15) as r:
            resp = json.loads(r.read())["response"]
        if resp.get("allowed") != e["allowed"]:
            bad.append("%s: %s" % (e["image"], json.dumps(resp.get("status"))))
    if bad:
        raise Failure("priming: unexpected answers: %s" % "; ".join(bad[:5]))
    return len(seen)


def measure(stack, ctx, scenario, env, html=None, label=None):
    """Runs one k6 script against the stack; returns the result record."""
    names = [("gateway", ctx["gateway"])] + [("verifier-%d" % i, p) for i, p in enumerate(ctx["verifiers"])]
    others = [("registry", ctx["registry"]), ("redis", ctx["redis"])]
    before = Snapshot(names + others, ctx["access_log"], ctx["gateway_log"], ctx["metrics_urls"],
                      ctx["gateway_metrics"])
    tag = label or scenario
    summary_path = os.path.join(ctx["run_dir"], "k6-%s-summary.json" % tag)
    env = dict(env, SUMMARY=summary_path)
    rc = run_k6("%s.js" % scenario, env, os.path.join(ctx["run_dir"], "k6-%s.log" % tag), html)
    stack.check_alive()
    after = Snapshot(names + others, ctx["access_log"], ctx["gateway_log"], ctx["metrics_urls"],
                     ctx["gateway_metrics"])
    try:
        with open(summary_path) as f:
            k6 = json.load(f)["portcullis"]
    except (OSError, ValueError, KeyError):
        raise Failure("k6 exited %d without a summary (see %s)" % (rc, os.path.join(ctx["run_dir"], "k6-%s.log" % tag)))
    n = k6["admissions"] or 0
    per1k = (lambda s: s * 1000.0 / n) if n else (lambda s: 0.0)
    cpu = {name: after.cpu[name] - before.cpu[name] for name, _ in names + others}
    verifier_cpu = sum(cpu[name] for name, _ in names if name.startswith("verifier"))
    reqs = registry_requests(ctx["access_log"], before.registry_lines)
    vbefore = {k: verifications(v) for k, v in before.verifier_metrics.items()}
    vafter = {k: verifications(v) for k, v in after.verifier_metrics.items()}
    vdelta = {}
    for name in vafter:
        d = {s: vafter[name].get(s, 0) - vbefore.get(name, {}).get(s, 0) for s in vafter[name]}
        vdelta[name] = {s: int(x) for s, x in d.items() if x}
    busy = after.machine_busy - before.machine_busy
    k6_cpu = (after.children.ru_utime + after.children.ru_stime) - (before.children.ru_utime + before.children.ru_stime)
    return {
        "label": tag,
        "k6_exit": rc,
        "k6": k6,
        "admissions": n,
        "throughput": k6["throughput"],
        "latency_ms": {"p50": k6["p50_ms"], "p95": k6["p95_ms"], "p99": k6["p99_ms"],
                       "p99.9": k6["p999_ms"], "max": k6["max_ms"]},
        "errors": int(k6["errors"] + k6["http_failed"]),
        "dropped_iterations": int(k6["dropped_iterations"]),
        "cpu_seconds": {k: round(v, 3) for k, v in cpu.items()},
        "k6_cpu_seconds": round(k6_cpu, 3),
        "machine_busy_seconds": round(busy, 2),
        "machine_cpu_seconds_available": round((after.t - before.t) * os.cpu_count(), 2),
        "other_cpu_seconds": round(busy - k6_cpu - sum(cpu.values()), 2),
        "cpu_per_1000": {"gateway": round(per1k(cpu["gateway"]), 4),
                         "verifiers": round(per1k(verifier_cpu), 4)},
        "peak_rss_mib": {name: round(proc_status(p.pid, "VmHWM") / 1024.0, 1) for name, p in names},
        "gateway_latency_ms": (gateway_latency(ctx["gateway_log"], before.gateway_lines)
                               or histogram_latency(before.gateway_metrics, after.gateway_metrics)),
        "registry_requests": len(reqs),
        "registry_request_list": reqs if len(reqs) <= 200 else reqs[:200],
        "verifications_by_verifier": vdelta,
        "wall_seconds": round(after.t - before.t, 2),
    }


def compare_with_baseline(stack, ctx, a, bindir, cert, key, env, run_dir):
    """Interleaved pairs: static.js against the gateway, then against the
    bare baseline server, --pairs times; CPU per admission of gateway +
    verifiers vs the baseline's, and the throughput ratio."""
    port = free_port()
    base = stack.spawn("baseline", [
        os.path.join(bindir, "portcullis-baseline"), "--listen", "127.0.0.1:%d" % port,
        "--tls-cert", cert, "--tls-key", key,
    ], stdout_path=os.path.join(run_dir, "baseline.log"))
    wait_tcp(port, "baseline", stack)
    base_ctx = dict(ctx, gateway=base, verifiers=[], metrics_urls=[],
                    gateway_log=os.path.join(run_dir, "baseline.log"), gateway_metrics=None)
    image = os.environ.get("BASELINE_IMAGE", "nginx:1.27")
    env = dict(env, RATE=a.rate or SCENARIOS["baseline"]["rate"],
               DURATION=a.duration or SCENARIOS["baseline"]["duration"],
               P99_MS=a.p99_ms if a.p99_ms is not None else SCENARIOS["baseline"]["p99"],
               STATIC_IMAGES=",".join([image] * 3))
    rows, pairs = [], []
    for i in range(a.pairs):
        p = measure(stack, ctx, "static", dict(env, TARGET=ctx["target"]),
                    label="portcullis#%d" % (i + 1))
        b = measure(stack, base_ctx, "static", dict(env, TARGET="https://127.0.0.1:%d" % port),
                    label="baseline#%d" % (i + 1))
        rows += [p, b]
        p_cpu = p["cpu_per_1000"]["gateway"] + p["cpu_per_1000"]["verifiers"]
        b_cpu = b["cpu_per_1000"]["gateway"]
        pairs.append({"pair": i + 1, "portcullis_cpu_ms": p_cpu, "baseline_cpu_ms": b_cpu,
                      "cpu_ratio": p_cpu / b_cpu if b_cpu else None,
                      "portcullis_throughput": p["throughput"], "baseline_throughput": b["throughput"],
                      "throughput_ratio": p["throughput"] / b["throughput"] if b["throughput"] else None,
                      "portcullis_p99_ms": p["latency_ms"]["p99"], "baseline_p99_ms": b["latency_ms"]["p99"]})
    print()
    print("| pair | Portcullis CPU ms/admission | baseline CPU ms/admission | CPU ratio | "
          "Portcullis throughput/s | baseline throughput/s | throughput ratio | Portcullis p99 ms | baseline p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for x in pairs:
        print("| %d | %.3f | %.3f | %s | %.1f | %.1f | %s | %.2f | %.2f |" % (
            x["pair"], x["portcullis_cpu_ms"], x["baseline_cpu_ms"],
            "%.1f" % x["cpu_ratio"] if x["cpu_ratio"] else "-", x["portcullis_throughput"],
            x["baseline_throughput"], "%.2f" % x["throughput_ratio"] if x["throughput_ratio"] else "-",
            x["portcullis_p99_ms"], x["baseline_p99_ms"]))
    return rows, {"pairs": pairs}


def fmt(x, nd=2):
    if isinstance(x, float):
        return ("%." + str(nd) + "f") % x
    return str(x)


def table(rows, scenario):
    head = ["scenario", "target rate/s", "admissions", "throughput/s", "p50 ms", "p95 ms", "p99 ms",
            "max ms", "gateway p99 ms", "errors", "dropped", "gateway CPU s/1k", "verifiers CPU s/1k",
            "gateway peak RSS MiB", "verifier peak RSS MiB", "registry requests"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vrss = [v for k, v in r["peak_rss_mib"].items() if k.startswith("verifier")]
        lines.append("| " + " | ".join([
            r["label"], fmt(r["k6"].get("rate", "-")), str(r["admissions"]), fmt(r["throughput"], 1),
            fmt(r["latency_ms"]["p50"]), fmt(r["latency_ms"]["p95"]), fmt(r["latency_ms"]["p99"]),
            fmt(r["latency_ms"]["max"]),
            (fmt(r["gateway_latency_ms"]["p99"]) + ("~" if r["gateway_latency_ms"]["source"] == "histogram" else ""))
            if r["gateway_latency_ms"] else "-", str(r["errors"]), str(r["dropped_iterations"]),
            fmt(r["cpu_per_1000"]["gateway"], 3), fmt(r["cpu_per_1000"]["verifiers"], 3),
            fmt(r["peak_rss_mib"]["gateway"], 1), "/".join(fmt(v, 1) for v in vrss),
            str(r["registry_requests"]),
        ]) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(prog="loadtest/run.sh", description="Run a k6 scenario against a local Portcullis stack.")
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--verifiers", type=int, default=2, help="verifier processes (default 2)")
    ap.add_argument("--rate", type=int, help="arrivals per second (scenario default)")
    ap.add_argument("--duration", help="k6 duration, e.g. 60s (scenario default)")
    ap.add_argument("--count", type=int, help="rollout: admissions (1000); cold: at most this many fresh images")
    ap.add_argument("--seconds", type=int, help="rollout: the burst's length in seconds (3)")
    ap.add_argument("--p99-ms", type=float, help="p99 threshold in ms (scenario default)")
    ap.add_argument("--fresh", type=int, default=int(os.environ.get("LOADTEST_FRESH", 3000)),
                    help="fresh signed images to have generated (default 3000; cached)")
    ap.add_argument("--jobs", type=int, default=12, help="parallel image generators")
    ap.add_argument("--find-max", action="store_true",
                    help="warm: step the rate up until p99 >= --max-p99-ms or errors; report the last good rate")
    ap.add_argument("--steps", default="1000,1500,2000,2500,3000,3500,4000,5000,6000",
                    help="--find-max rates (comma-separated)")
    ap.add_argument("--step-duration", default="20s", help="--find-max: duration of each step")
    ap.add_argument("--max-p99-ms", type=float, default=25, help="--find-max: the p99 limit (25)")
    ap.add_argument("--expect-registry-requests", type=int, default=5,
                    help="rollout: registry requests of one cold key-signed verification (5)")
    ap.add_argument("--html", metavar="FILE", help="export k6's HTML web-dashboard report to FILE")
    ap.add_argument("--endpoint", default="/mutate", help="/mutate (default) or /validate")
    ap.add_argument("--balance", choices=["rendezvous", "p2c"],
                    help="the gateway's --balance (default: the gateway's own, rendezvous); p2c spreads "
                         "one image over all verifiers, which exercises the cross-verifier Redis lease")
    ap.add_argument("--no-notary", action="store_true", help="do not start Notary (no dct images)")
    ap.add_argument("--pairs", type=int, default=3,
                    help="baseline: interleaved Portcullis/baseline pairs (3)")
    ap.add_argument("--keep", action="store_true", help="keep the stack up after the run until Ctrl-C")
    ap.add_argument("--owner-api", action="store_true",
                    help="rollout: serve the Pods' owner ReplicaSet from a stub Kubernetes API and point the "
                         "gateway at it (to measure a gateway that reads owners, e.g. an older one through "
                         "PORTCULLIS_BIN_DIR; today's gateway reads none)")
    ap.add_argument("--no-build", action="store_true",
                    help="(run.sh) skip cargo build --release --workspace; also PORTCULLIS_NO_BUILD=1")
    a = ap.parse_args()

    sc = SCENARIOS[a.scenario]
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    run_dir = os.path.join(STATE, "runs", "%s-%s" % (a.scenario, stamp))
    results_dir = os.path.join(STATE, "results")
    os.makedirs(run_dir, exist_ok=True)
    os.makedirs(results_dir, exist_ok=True)
    bindir = os.environ.get("PORTCULLIS_BIN_DIR", os.path.join(ROOT, "target", "release"))
    for b in ("portcullis-gateway", "portcullis-verifier") + (
            ("portcullis-baseline",) if a.scenario == "baseline" else ()):
        if not os.access(os.path.join(bindir, b), os.X_OK):
            raise Failure("%s/%s is not built (cargo build --release --workspace)" % (bindir, b))

    stack = Stack(run_dir)
    stopping = {"flag": False}

    def on_signal(signum, _frame):
        if stopping["flag"]:
            return
        stopping["flag"] = True
        raise KeyboardInterrupt("signal %d" % signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    rc = 0
    try:
        pki, cert, key, hmac = ensure_pki()
        storage = os.path.join(STATE, SET_VERSION, "registry")
        os.makedirs(storage, exist_ok=True)
        registry_proc, registry, access_log = start_registry(stack, run_dir, storage)
        log("registry %s (storage %s)" % (registry, storage))
        fresh_needed = a.fresh
        if a.scenario == "cold" and a.count:
            fresh_needed = max(fresh_needed, a.count)
        images = ensure_images(registry, pki, fresh_needed, a.jobs)
        groups = images["groups"]
        notary = None
        if not a.no_notary:
            t0 = time.time()
            notary = start_notary(stack, run_dir, registry, groups["notary"])
            log("notary %s, %d tags signed in %s (%.1f s)" % (notary["url"], len(groups["notary"]),
                                                              notary["gun"], time.time() - t0))
        redis_port = start_redis(stack, run_dir)
        cfg = os.path.join(run_dir, "verifier.yaml")
        verifier_config(cfg, registry, pki, notary)
        vlog = os.environ.get("PORTCULLIS_LOG")
        venv = dict(os.environ)
        if vlog:
            venv["PORTCULLIS_LOG"] = vlog
        verifiers, metrics_urls, grpc = [], [], []
        for i in range(a.verifiers):
            gp, mp = free_port(), free_port()
            p = stack.spawn("verifier-%d" % i, [
                os.path.join(bindir, "portcullis-verifier"), "serve", "--config", cfg,
                "--listen", "127.0.0.1:%d" % gp, "--metrics-listen", "127.0.0.1:%d" % mp,
                "--redis-url", "redis://127.0.0.1:%d" % redis_port, "--cache-hmac-key-file", hmac,
            ] + os.environ.get("PORTCULLIS_VERIFIER_ARGS", "").split(),
                stdout_path=os.path.join(run_dir, "verifier-%d.log" % i), env=venv)
            verifiers.append(p)
            metrics_urls.append(("verifier-%d" % i, "http://127.0.0.1:%d/metrics" % mp))
            grpc.append(gp)
        for i, gp in enumerate(grpc):
            wait_tcp(gp, "verifier-%d" % i, stack)
        for name, url in metrics_urls:
            end = time.time() + 20
            while True:
                try:
                    http_get(url)
                    break
                except (OSError, urllib.error.URLError):
                    if time.time() > end:
                        raise Failure("%s metrics did not answer" % name)
                    stack.check_alive()
                    time.sleep(0.05)
        owner_api = None
        if a.owner_api:
            rollout = groups["rollout"][0]
            owner_api = OwnerApi("%s/%s:%s" % (registry, rollout["repo"], rollout["tag"]))
            log("owner API http://127.0.0.1:%d" % owner_api.port)
        gw_port = free_port()
        gateway = stack.spawn("gateway", [
            os.path.join(bindir, "portcullis-gateway"), "--listen", "127.0.0.1:%d" % gw_port,
            "--tls-cert", cert, "--tls-key", key,
            "--verifier", ",".join("http://127.0.0.1:%d" % p for p in grpc),
        ] + (["--balance", a.balance] if a.balance else [])
          + (owner_api.gateway_flags() if owner_api else []),
                              stdout_path=os.path.join(run_dir, "gateway.log"), env=venv)
        target = "https://127.0.0.1:%d" % gw_port
        tls = ssl.create_default_context(cafile=cert)
        end = time.time() + 30
        while True:
            try:
                if http_get(target + "/readyz", tls)[0] == 200:
                    break
            except (OSError, urllib.error.URLError):
                pass
            if time.time() > end:
                raise Failure("the gateway did not become ready; see %s" % os.path.join(run_dir, "gateway.log"))
            stack.check_alive()
            time.sleep(0.1)
        cat_path = os.path.join(run_dir, "images.json")
        cat = catalogue(cat_path, registry, groups, notary)
        log("gateway %s, %d verifier(s), redis :%d; catalogue %s" % (target, a.verifiers, redis_port, cat_path))
        ctx = {"run_dir": run_dir, "gateway": gateway, "verifiers": verifiers, "registry": registry_proc,
               "redis": stack.procs[[p.name for p in stack.procs].index("redis")],
               "access_log": access_log, "metrics_urls": metrics_urls,
               "gateway_log": os.path.join(run_dir, "gateway.log"),
               "gateway_metrics": (target + "/metrics", tls), "target": target}

        env = {"TARGET": target, "IMAGES": cat_path, "ENDPOINT": a.endpoint}
        primed = {"warm": "warm", "mixed": "repeat"}.get(a.scenario)
        if primed:
            t0 = time.time()
            n = prime(target, tls, cat[primed])
            log("primed %d %s images in %.1f s (outside the measured window)" % (n, primed, time.time() - t0))
        p99 = a.p99_ms if a.p99_ms is not None else sc["p99"]
        rows, checks, extra = [], [], {}
        if a.scenario == "baseline":
            rows, extra = compare_with_baseline(stack, ctx, a, bindir, cert, key, env, run_dir)
        elif a.scenario == "warm" and a.find_max:
            best = None
            for rate in [int(x) for x in a.steps.split(",") if x.strip()]:
                log("find-max: %d/s for %s" % (rate, a.step_duration))
                r = measure(stack, ctx, "warm", dict(env, RATE=rate, DURATION=a.step_duration,
                                                     P99_MS=a.max_p99_ms), label="warm@%d" % rate)
                rows.append(r)
                expected = rate * float(a.step_duration.rstrip("s"))
                ok = (r["latency_ms"]["p99"] < a.max_p99_ms and r["errors"] == 0
                      and r["dropped_iterations"] <= 0.01 * expected
                      and r["throughput"] >= 0.97 * rate)
                r["step_ok"] = ok
                if not ok:
                    break
                best = rate
            extra["max_rate_p99_under_ms"] = a.max_p99_ms
            extra["max_rate"] = best
        else:
            if a.scenario == "rollout":
                env.update(COUNT=a.count or sc["count"], SECONDS=a.seconds or sc["seconds"])
            else:
                env.update(RATE=a.rate or sc["rate"])
                if a.duration or sc["duration"]:
                    env["DURATION"] = a.duration or sc["duration"]
                if a.scenario == "cold" and a.count:
                    env["COUNT"] = a.count
            env["P99_MS"] = p99
            r = measure(stack, ctx, a.scenario, env, html=a.html)
            rows.append(r)
            if r["k6_exit"] != 0:
                checks.append(("k6 thresholds", False, "k6 exited %d" % r["k6_exit"]))
                rc = 1
            else:
                checks.append(("k6 thresholds", True, "all passed"))

        if a.scenario == "rollout":
            r = rows[0]
            image = cat["rollout"][0]["image"]
            reqs = r["registry_request_list"]
            ok_reqs = r["registry_requests"] == a.expect_registry_requests
            checks.append(("registry requests == one verification (%d)" % a.expect_registry_requests, ok_reqs,
                           "%d: %s" % (r["registry_requests"],
                                       "; ".join("%s %s %s" % (x["method"], x["path"], x["status"]) for x in reqs))))
            fresh = sum(n for v in r["verifications_by_verifier"].values()
                        for k, n in v.items() if k.endswith("/fresh"))
            checks.append(("fresh verifications over all verifiers == 1", fresh == 1,
                           "%d (%s)" % (fresh, json.dumps(r["verifications_by_verifier"], sort_keys=True))))
            answered = r["admissions"] == (a.count or sc["count"]) and r["errors"] == 0
            checks.append(("every admission answered correctly", answered,
                           "%d admissions, %d errors" % (r["admissions"], r["errors"])))
            checks.append(("p99 <= %g ms" % p99, r["latency_ms"]["p99"] <= p99, "%.1f ms" % r["latency_ms"]["p99"]))
            extra["rollout_image"] = image
            if owner_api:
                extra["owner_api_requests"] = owner_api.requests
            if not all(c[1] for c in checks):
                rc = 1

        print()
        print("### Portcullis load test: %s (%s, %d verifier(s), %d CPU(s))" % (
            a.scenario, stamp, a.verifiers, os.cpu_count()))
        print()
        print(table(rows, a.scenario))
        print()
        for r in rows:
            print("- %s: CPU seconds during the run: %s; k6 itself %.1f; anything else on the machine %.1f "
                  "(busy %.1f of %.1f available); wall %.1f s; verifications by validator/source: %s" % (
                      r["label"], ", ".join("%s %.2f" % kv for kv in r["cpu_seconds"].items()),
                      r["k6_cpu_seconds"], r["other_cpu_seconds"], r["machine_busy_seconds"],
                      r["machine_cpu_seconds_available"], r["wall_seconds"],
                      json.dumps(r["verifications_by_verifier"], sort_keys=True)))
        if "max_rate" in extra:
            print("- highest rate with p99 < %g ms, no errors, no drops: %s" % (
                a.max_p99_ms, ("%d/s" % extra["max_rate"]) if extra["max_rate"] else "none of the steps"))
        for name, ok, detail in checks:
            print("- %s %s: %s" % ("PASS" if ok else "FAIL", name, detail))
        if "owner_api_requests" in extra:
            print("- owner API requests (--owner-api): %d" % extra["owner_api_requests"])
        out = os.path.join(results_dir, "%s-%s.json" % (a.scenario, stamp))
        with open(out, "w") as f:
            json.dump({
                "scenario": a.scenario, "date": stamp, "host": {"cpus": os.cpu_count()},
                "settings": {k: v for k, v in vars(a).items()}, "target": target,
                "registry": registry, "rows": rows, "checks": [
                    {"name": n, "ok": o, "detail": d} for n, o, d in checks],
                "extra": extra, "run_dir": run_dir,
                "catalogue": {k: len(v) for k, v in cat.items() if isinstance(v, list)},
            }, f, indent=2)
        print()
        print("results: %s" % out)
        print("logs:    %s" % run_dir)
        if a.html:
            print("report:  %s" % a.html)
        if a.keep:
            log("stack kept up (gateway %s, CA %s); Ctrl-C to stop" % (target, cert))
            while True:
                time.sleep(1)
                stack.check_alive()
    except KeyboardInterrupt:
        log("interrupted; stopping the stack")
        rc = rc or 130
    except Failure as e:
        log("error: %s" % e)
        rc = 2
    finally:
        stopping["flag"] = True
        stack.stop()
    return rc


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        log("error: %s" % e)
        sys.exit(2)
