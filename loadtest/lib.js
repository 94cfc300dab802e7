// Shared helpers for the Portcullis k6 scripts: the image catalogue,
// realistic AdmissionReview v1 bodies (Pods, Deployments, ReplicaSet-owned
// Pods), the per-response checks, and the JSON summary.
//
// Environment (all scripts):
//   TARGET      gateway base URL (default https://127.0.0.1:8443)
//   ENDPOINT    /mutate (default) or /validate (no patches expected)
//   IMAGES      catalogue file (JSON, see README.md "The image catalogue");
//               without it, WARM_IMAGES / ROLLOUT_IMAGE / DENY_IMAGES /
//               FRESH_IMAGES_FILE name images directly
//   SUMMARY     where handleSummary writes the JSON summary
//   P99_MS      the p99 latency threshold (each script has its own default)
//   VUS, MAX_VUS  pre-allocated and maximum VUs of the arrival-rate executor
//   NAMESPACES  comma-separated namespaces to put the objects in
//   OWNERLESS=1 rollout.js: Pods without ownerReferences
import http from 'k6/http';
import { check } from 'k6';
import encoding from 'k6/encoding';
import { SharedArray } from 'k6/data';
import { Counter, Trend } from 'k6/metrics';

export const TARGET = (__ENV.TARGET || 'https://127.0.0.1:8443').replace(/\/+$/, '');
export const ENDPOINT = __ENV.ENDPOINT || '/mutate';
export const URL = `${TARGET}${ENDPOINT}`;
const MUTATE = ENDPOINT === '/mutate';

// Only the measured scenario feeds these (never setup's priming calls).
export const admissions = new Counter('admissions');
export const admissionErrors = new Counter('admission_errors');
export const admissionDuration = new Trend('admission_duration', true);

// ---------------------------------------------------------------------------
// The image catalogue
//
// Every entry is {image, allowed, pinned, reason}:
//   image    the reference as written in the pod spec
//   allowed  the expected verdict for this image
//   pinned   string: /mutate must replace a tag-only reference with exactly
//            this; null: no patch for it; undefined: not checked
//   reason   for denials, the reason code the deny line must carry
//            (undefined: not checked)
// ---------------------------------------------------------------------------

let catalogue = null;
function loadCatalogue() {
  if (catalogue) return catalogue;
  if (__ENV.IMAGES) {
    catalogue = JSON.parse(open(__ENV.IMAGES));
  } else {
    const list = (s) => (s || '').split(',').map((x) => x.trim()).filter((x) => x);
    catalogue = {
      warm: list(__ENV.WARM_IMAGES).map((image) => ({ image, allowed: true })),
      denied: list(__ENV.DENY_IMAGES).map((image) => ({ image, allowed: false })),
      fresh: __ENV.FRESH_IMAGES_FILE
        ? open(__ENV.FRESH_IMAGES_FILE).split('\n').map((x) => x.trim()).filter((x) => x)
          .map((image) => ({ image, allowed: true }))
        : [],
      rollout: __ENV.ROLLOUT_IMAGE ? [{ image: __ENV.ROLLOUT_IMAGE, allowed: true }] : [],
    };
  }
  return catalogue;
}

// A named list of the catalogue, shared between VUs (loaded once).
export function images(name, required = true) {
  const arr = new SharedArray(`images:${name}`, () => {
    const c = loadCatalogue();
    return c[name] || [];
  });
  if (required && arr.length === 0) {
    throw new Error(`no '${name}' images: set IMAGES (see loadtest/README.md) or the matching *_IMAGES variable`);
  }
  return arr;
}

// ---------------------------------------------------------------------------
// Randomness
// ---------------------------------------------------------------------------

export function randInt(n) { return Math.floor(Math.random() * n); }
export function pick(arr) { return arr[randInt(arr.length)]; }
// Picks an index by weights, e.g. weighted([40, 30, 20, 10]).
export function weighted(weights) {
  let total = 0;
  for (const w of weights) total += w;
  let r = Math.random() * total;
  for (let i = 0; i < weights.length; i++) {
    r -= weights[i];
    if (r < 0) return i;
  }
  return weights.length - 1;
}

// A small deterministic PRNG (mulberry32) for plans every VU must agree on.
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// A random RFC 4122 version-4 uid per request.
export function uid() {
  const h = () => Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  const a = h(), b = h(), c = h(), d = h();
  return `${a}-${b.slice(0, 4)}-4${b.slice(5, 8)}-${'89ab'[randInt(4)]}${c.slice(1, 4)}-${c.slice(4)}${d}`;
}

function suffix(n = 5) {
  const chars = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (let i = 0; i < n; i++) s += chars[randInt(chars.length)];
  return s;
}

// The usual shape of a workload: 1-4 containers (most have one or two),
// and 0-2 init containers.
export function shape() {
  return { containers: 1 + weighted([45, 30, 15, 10]), init: weighted([60, 30, 10]) };
}

// ---------------------------------------------------------------------------
// AdmissionReview bodies. Each builder returns {body, sites}: `sites` lists
// every image field as {pointer, entry}, which is what the checks compare
// the patch against.
// ---------------------------------------------------------------------------

// The namespaces named in requests (NAMESPACES=a,b,c to use ones the
// webhook covers in a cluster with namespace scoping).
const NAMESPACES = (__ENV.NAMESPACES || 'payments,checkout,search,platform,batch,web')
  .split(',').map((x) => x.trim()).filter((x) => x);

function containerList(entries, prefix, pointer, sites, kind) {
  return entries.map((entry, i) => {
    sites.push({ pointer: `${pointer}/${i}/image`, entry });
    const c = {
      name: `${prefix}${i}`,
      image: entry.image,
      imagePullPolicy: 'IfNotPresent',
      resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
      terminationMessagePath: '/dev/termination-log',
      terminationMessagePolicy: 'File',
    };
    if (kind === 'containers') {
      c.ports = [{ containerPort: 8080 + i, protocol: 'TCP' }];
      c.env = [{ name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } }];
      c.readinessProbe = { httpGet: { path: '/healthz', port: 8080 + i, scheme: 'HTTP' }, periodSeconds: 10 };
    } else {
      c.command = ['/bin/sh', '-c', 'echo init'];
    }
    return c;
  });
}

function podSpec(containers, init, pointer, sites) {
  const spec = {
    containers: containerList(containers, 'app-', `${pointer}/containers`, sites, 'containers'),
    restartPolicy: 'Always',
    terminationGracePeriodSeconds: 30,
    dnsPolicy: 'ClusterFirst',
    serviceAccountName: 'default',
    securityContext: {},
    schedulerName: 'default-scheduler',
  };
  if (init.length) {
    spec.initContainers = containerList(init, 'init-', `${pointer}/initContainers`, sites, 'init');
  }
  return spec;
}

function review(group, version, kind, resource, object, namespace) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: uid(),
      kind: { group, version, kind },
      resource: { group, version, resource },
      requestKind: { group, version, kind },
      requestResource: { group, version, resource },
      name: object.metadata.name || '',
      namespace,
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:deployment-controller', groups: ['system:serviceaccounts'] },
      object,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  };
}

// A Pod AdmissionReview naming `containers` and `init` (catalogue entries).
export function podReview(containers, init = []) {
  const sites = [];
  const ns = pick(NAMESPACES);
  const app = `app-${suffix(4)}`;
  const object = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `${app}-${suffix()}`, namespace: ns, labels: { app } },
    spec: podSpec(containers, init, '/spec', sites),
  };
  return { body: review('', 'v1', 'Pod', 'pods', object, ns), sites };
}

// A Pod as a ReplicaSet controller creates it (generateName, no name,
// an owner reference), as during a Deployment's rollout.
// OWNERLESS=1 leaves ownerReferences out (with automaticChildApproval the
// gateway looks a Pod's owner up in the API server; this owner does not
// exist, so the lookup fails and the Pod is verified normally, at the cost
// of one lookup).
export function replicaSetPodReview(containers, init = [], rs = 'web-7d4b9c8f6d', ns = NAMESPACES[0]) {
  const sites = [];
  const object = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `${rs}-`,
      namespace: ns,
      labels: { app: rs.replace(/-[^-]+$/, ''), 'pod-template-hash': rs.split('-').pop() },
      ownerReferences: [{
        apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rs, uid: '3b1e8f8e-6a4c-4a8e-9e55-1b1f2c3d4e5f',
        controller: true, blockOwnerDeletion: true,
      }],
    },
    spec: podSpec(containers, init, '/spec', sites),
  };
  if (__ENV.OWNERLESS === '1') delete object.metadata.ownerReferences;
  const body = review('', 'v1', 'Pod', 'pods', object, ns);
  body.request.userInfo = { username: 'system:serviceaccount:kube-system:replicaset-controller' };
  return { body, sites };
}

// A Deployment AdmissionReview.
export function deploymentReview(containers, init = [], replicas = 3) {
  const sites = [];
  const ns = pick(NAMESPACES);
  const app = `svc-${suffix(4)}`;
  const object = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: app, namespace: ns, labels: { app } },
    spec: {
      replicas,
      selector: { matchLabels: { app } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } },
      template: {
        metadata: { labels: { app } },
        spec: podSpec(containers, init, '/spec/template/spec', sites),
      },
    },
  };
  const body = review('apps', 'v1', 'Deployment', 'deployments', object, ns);
  body.request.userInfo = { username: 'ci-deployer', groups: ['system:authenticated'] };
  return { body, sites };
}

// A Pod (60%) or a Deployment (40%) with the usual shape, its images drawn
// by `draw()` (called once per container).
export function workload(draw) {
  const s = shape();
  const containers = [];
  const init = [];
  for (let i = 0; i < s.containers; i++) containers.push(draw());
  for (let i = 0; i < s.init; i++) init.push(draw());
  return Math.random() < 0.6 ? podReview(containers, init) : deploymentReview(containers, init);
}

// A pool of pre-serialised workloads, built once per VU in the init stage:
// at 1,000+ admissions/s k6 shares the machine with the system under test,
// and building and serialising each body costs more CPU than sending it.
// Each element is {prefix, suffix, sites}; `fromPool` splices a fresh uid
// in, so every request still has its own uid.
const UID_MARK = '00000000-uid-mark-0000-000000000000';
export function workloadPool(draw, size = Number(__ENV.POOL || 100)) {
  const pool = [];
  for (let i = 0; i < size; i++) {
    const built = workload(draw);
    built.body.request.uid = UID_MARK;
    const text = JSON.stringify(built.body);
    const at = text.indexOf(UID_MARK);
    pool.push({ prefix: text.slice(0, at), suffix: text.slice(at + UID_MARK.length), sites: built.sites });
  }
  return pool;
}

// One request from the pool: {payload, uid, sites}.
export function fromPool(pool) {
  const p = pool[randInt(pool.length)];
  const id = uid();
  return { payload: p.prefix + id + p.suffix, uid: id, sites: p.sites };
}

// Sends and checks one pooled request.
export function sendPooled(pool) {
  const r = fromPool(pool);
  const res = http.post(URL, r.payload, params);
  return checkAdmission(res, { body: { request: { uid: r.uid } }, sites: r.sites });
}

// ---------------------------------------------------------------------------
// Sending and checking
// ---------------------------------------------------------------------------

export const params = {
  headers: { 'Content-Type': 'application/json' },
  timeout: __ENV.HTTP_TIMEOUT || '15s',
};

export function post(body, extra = {}) {
  const payload = typeof body === 'string' ? body : JSON.stringify(body);
  return http.post(URL, payload, Object.assign({}, params, extra));
}

let warned = 0;
function warn(what, res, review) {
  if (warned >= 5) return;
  warned++;
  const uidv = review && review.request ? review.request.uid : '-';
  console.warn(`check failed (${what}) uid=${uidv} status=${res.status} error=${res.error || ''} body=${String(res.body).slice(0, 600)}`);
}

// The patch /mutate must return for these sites: null when none is
// expected, undefined when it cannot be predicted (some entry has no known
// pin), else the list of replace operations.
function expectedPatch(sites) {
  if (!MUTATE) return null;
  const ops = [];
  for (const s of sites) {
    const e = s.entry;
    if (e.image.indexOf('@') >= 0 || e.pinned === null) continue;
    if (e.pinned === undefined) return undefined;
    ops.push({ op: 'replace', path: s.pointer, value: e.pinned });
  }
  return ops.length ? ops : null;
}

function samePatch(got, want) {
  if (!Array.isArray(got) || got.length !== want.length) return false;
  const key = (o) => `${o.op}\u0000${o.path}\u0000${o.value}`;
  const a = got.map(key).sort();
  const b = want.map(key).sort();
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function decodePatch(r) {
  try {
    return JSON.parse(encoding.b64decode(r.patch, 'std', 's'));
  } catch (e) {
    return 'undecodable';
  }
}

// Checks an admission answer against what the sites' entries predict:
// status 200, the uid echoed, `allowed`, the patch (exact operations when
// every pin is known), and for denials one message line per denied image
// with its reason code. Records the admission metrics unless `record` is
// false. Returns true when every check passed.
export function checkAdmission(res, built, record = true) {
  const { body, sites } = built;
  let parsed = null;
  try { parsed = res.json(); } catch (e) { parsed = null; }
  const r = parsed && parsed.response;
  const expectAllowed = sites.every((s) => s.entry.allowed);
  const results = {
    'status 200': res.status === 200,
    'uid echoed': !!r && r.uid === body.request.uid,
    'allowed as expected': !!r && r.allowed === expectAllowed,
  };
  if (expectAllowed) {
    const want = expectedPatch(sites);
    let ok = !!r;
    if (ok && want === null) ok = !r.patch && !r.patchType;
    else if (ok && want === undefined) ok = !r.patch || r.patchType === 'JSONPatch';
    else if (ok) ok = r.patchType === 'JSONPatch' && !!r.patch && samePatch(decodePatch(r), want);
    results['patch as expected'] = ok;
  } else {
    const msg = (r && r.status && r.status.message) || '';
    let ok = !!r && !r.patch;
    for (const s of sites) {
      if (s.entry.allowed) continue;
      const prefix = s.entry.reason ? `${s.entry.image}: ${s.entry.reason}` : `${s.entry.image}: `;
      if (!msg.split('\n').some((l) => l.startsWith(prefix))) ok = false;
    }
    results['deny reasons as expected'] = ok;
  }
  return finish(res, body, results, record);
}

// Checks an answer that must be a 400 (malformed request).
export function checkBadRequest(res, record = true) {
  return finish(res, null, { 'status 400 for malformed': res.status === 400 }, record);
}

// Checks a deny that is not about particular images (e.g. a malformed pod
// spec): status 200, allowed false, the message contains `needle`.
export function checkDeny(res, body, needle, record = true) {
  let parsed = null;
  try { parsed = res.json(); } catch (e) { parsed = null; }
  const r = parsed && parsed.response;
  const msg = (r && r.status && r.status.message) || '';
  return finish(res, body, {
    'status 200': res.status === 200,
    'uid echoed': !!r && r.uid === body.request.uid,
    'allowed as expected': !!r && r.allowed === false,
    'deny reasons as expected': msg.indexOf(needle) >= 0 && !(r && r.patch),
  }, record);
}

function finish(res, body, results, record) {
  const ok = check(res, Object.fromEntries(Object.entries(results).map(([k, v]) => [k, () => v])));
  if (!ok) warn(Object.keys(results).filter((k) => !results[k]).join(', '), res, body);
  if (record) {
    admissions.add(1);
    admissionDuration.add(res.timings.duration);
    if (!ok) admissionErrors.add(1);
  }
  return ok;
}

// Sends one admission per image in `list` (sequentially) so the verifiers
// have them cached before the measured scenario; fails loudly if any answer
// is wrong. Returns the setup data (the time the measurement starts).
export function prime(list, label) {
  let bad = 0;
  for (const entry of list) {
    const built = podReview([entry]);
    const res = post(built.body, { tags: { phase: 'prime' } });
    if (!checkAdmission(res, built, false)) bad++;
  }
  if (bad) throw new Error(`priming ${label}: ${bad} of ${list.length} admissions were answered wrongly`);
  return { t0: Date.now(), primed: list.length };
}

// ---------------------------------------------------------------------------
// Options and summary
// ---------------------------------------------------------------------------

// The executor options for a constant arrival rate.
export function arrival(rate, duration, extra = {}) {
  return Object.assign({
    executor: 'constant-arrival-rate',
    rate,
    timeUnit: '1s',
    duration,
    preAllocatedVUs: Number(__ENV.VUS || Math.max(20, Math.ceil(rate / 20))),
    maxVUs: Number(__ENV.MAX_VUS || Math.min(1000, Math.max(200, rate))),
    gracefulStop: '30s',
  }, extra);
}

// The thresholds every script declares: p99 latency of the measured
// admissions, zero failed checks, zero wrong answers, no failed requests.
export function thresholds(p99Ms, extra = {}) {
  return Object.assign({
    admission_duration: [`p(99)<${p99Ms}`],
    admission_errors: ['count==0'],
    checks: ['rate==1'],
    http_req_failed: ['rate==0'],
  }, extra);
}

export const summaryTrendStats = ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'p(99.9)', 'max'];

// Fewer system tags per sample (no url/name/proto/tls_version/group):
// cheaper for k6 at high rates, nothing the summary needs.
export const systemTags = ['status', 'method', 'scenario', 'check', 'error', 'error_code', 'expected_response'];

function val(data, metric, stat, dflt = 0) {
  const m = data.metrics[metric];
  if (!m || !m.values || m.values[stat] === undefined) return dflt;
  return m.values[stat];
}

// handleSummary for every script: writes the whole k6 summary plus a compact
// `portcullis` block to SUMMARY, and a short text report to stdout.
export function summary(data, scenario, extra = {}) {
  const setup = data.setup_data || {};
  const elapsed = setup.t0 ? (Date.now() - setup.t0) / 1000 : data.state.testRunDurationMs / 1000;
  const n = val(data, 'admissions', 'count');
  const thresholdsOk = Object.values(data.metrics).every(
    (m) => !m.thresholds || Object.values(m.thresholds).every((t) => t.ok));
  const compact = Object.assign({
    scenario,
    target: TARGET,
    endpoint: ENDPOINT,
    admissions: n,
    seconds: elapsed,
    throughput: elapsed > 0 ? n / elapsed : 0,
    p50_ms: val(data, 'admission_duration', 'med'),
    p95_ms: val(data, 'admission_duration', 'p(95)'),
    p99_ms: val(data, 'admission_duration', 'p(99)'),
    p999_ms: val(data, 'admission_duration', 'p(99.9)'),
    max_ms: val(data, 'admission_duration', 'max'),
    avg_ms: val(data, 'admission_duration', 'avg'),
    errors: val(data, 'admission_errors', 'count'),
    failed_checks: val(data, 'checks', 'fails'),
    http_failed: val(data, 'http_req_failed', 'passes'),
    dropped_iterations: val(data, 'dropped_iterations', 'count'),
    thresholds_ok: thresholdsOk,
    primed: setup.primed || 0,
  }, extra);
  const f = (x) => (Math.round(x * 100) / 100).toFixed(2);
  const checkLines = [];
  (function walk(g) {
    const where = g.name ? ` [${g.name}]` : '';
    for (const c of g.checks || []) checkLines.push(`    ${c.fails ? 'FAIL' : 'ok  '} ${c.name}${where}: ${c.passes} passed, ${c.fails} failed`);
    for (const sub of g.groups || []) walk(sub);
  })(data.root_group);
  const text = [
    '',
    `  portcullis ${scenario} -> ${TARGET}${ENDPOINT}`,
    `    admissions ${n} in ${f(elapsed)} s = ${f(compact.throughput)}/s (dropped iterations ${compact.dropped_iterations})`,
    `    latency ms: p50 ${f(compact.p50_ms)}  p95 ${f(compact.p95_ms)}  p99 ${f(compact.p99_ms)}  max ${f(compact.max_ms)}`,
    `    wrong answers ${compact.errors}, failed checks ${compact.failed_checks}, failed requests ${compact.http_failed}`,
    ...checkLines,
    `    thresholds: ${thresholdsOk ? 'all passed' : 'FAILED'}`,
    '',
  ].join('\n');
  const out = { stdout: text };
  data.portcullis = compact;
  out[__ENV.SUMMARY || `${scenario}-summary.json`] = JSON.stringify(data, null, 2);
  return out;
}
