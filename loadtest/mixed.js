// A realistic mix: about 90% of admissions name only images seen before
// (cosign-signed tags and digests, Notary-signed tags, static allows),
// 8% bring one signed image never seen before, and 2% name an unsigned or
// otherwise denied image (each with its expected reason code).
//
//   TARGET=... IMAGES=images.json RATE=500 DURATION=60s k6 run loadtest/mixed.js
//
// The catalogue lists `repeat` (primed in setup), `fresh` (each used once;
// when they run out they wrap and become repeats, counted in
// `fresh_exhausted`) and `denied`.
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { images, workload, workloadPool, sendPooled, pick, post, checkAdmission, prime, arrival, thresholds, summary, summaryTrendStats, systemTags, prng } from './lib.js';

const RATE = Number(__ENV.RATE || 500);
const REPEAT = images('repeat');
const FRESH = images('fresh');
const DENIED = images('denied');
const freshExhausted = new Counter('fresh_exhausted');
// The 90% of repeat-only admissions come from pre-serialised workloads.
const POOL = workloadPool(() => pick(REPEAT));

// Within every block of 50 admissions, 4 bring a new signed image (8%) and
// 1 a denied one (2%). The positions differ per block but every VU agrees
// on them, so the i-th new admission uses fresh image i exactly once.
const BLOCK = 50;
const NEW_PER_BLOCK = 4;
function blockLayout(block) {
  const r = prng(0x5eed + block);
  const pos = [];
  while (pos.length < NEW_PER_BLOCK + 1) {
    const p = Math.floor(r() * BLOCK);
    if (pos.indexOf(p) < 0) pos.push(p);
  }
  return { fresh: pos.slice(0, NEW_PER_BLOCK), denied: pos[NEW_PER_BLOCK] };
}

export const options = {
  insecureSkipTLSVerify: true,
  // 10% of admissions wait on the registry: enough VUs up front that k6
  // does not drop iterations while it starts more.
  scenarios: { mixed: arrival(RATE, __ENV.DURATION || '60s', { preAllocatedVUs: Number(__ENV.VUS || Math.max(50, Math.ceil(RATE / 5))) }) },
  thresholds: thresholds(Number(__ENV.P99_MS || 250)),
  summaryTrendStats,
  systemTags,
  setupTimeout: '300s',
};

export function setup() {
  // Every distinct repeat image once (the list may weight some by repeating).
  const seen = {};
  const distinct = REPEAT.filter((e) => (seen[e.image] ? false : (seen[e.image] = true)));
  return prime(distinct, 'repeat');
}

export default function () {
  const i = exec.scenario.iterationInTest;
  const block = Math.floor(i / BLOCK);
  const layout = blockLayout(block);
  const slot = layout.fresh.indexOf(i % BLOCK);
  let built;
  if (slot >= 0) {
    const n = block * NEW_PER_BLOCK + slot;
    if (n >= FRESH.length) freshExhausted.add(1);
    const fresh = FRESH[n % FRESH.length];
    let placed = false;
    built = workload(() => {
      if (!placed) { placed = true; return fresh; }
      return pick(REPEAT);
    });
  } else if (i % BLOCK === layout.denied) {
    const bad = pick(DENIED);
    let placed = false;
    built = workload(() => {
      if (!placed) { placed = true; return bad; }
      return pick(REPEAT);
    });
  } else {
    sendPooled(POOL);
    return;
  }
  checkAdmission(post(built.body), built);
}

export function handleSummary(data) {
  const m = data.metrics.fresh_exhausted;
  return summary(data, 'mixed', {
    rate: RATE,
    fresh_available: FRESH.length,
    fresh_exhausted: m ? m.values.count : 0,
  });
}
