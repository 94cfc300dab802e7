// Warm path: a constant arrival rate of admissions whose images are all
// cached (verified once in setup, then served from the verifiers' caches).
// Pods and Deployments with 1-4 containers and 0-2 init containers, drawn
// from the catalogue's `warm` images (signed tags: /mutate pins each to its
// digest, which is checked exactly).
//
//   TARGET=https://127.0.0.1:8443 IMAGES=images.json RATE=1000 DURATION=60s k6 run loadtest/warm.js
//
// Target (2 cores, k6 on the same machine): 1,000/s for 60 s, p99 <= 5 ms,
// zero errors.
import { images, workloadPool, sendPooled, pick, prime, arrival, thresholds, summary, summaryTrendStats, systemTags } from './lib.js';

const RATE = Number(__ENV.RATE || 1000);
const WARM = images('warm');
// Pre-serialised workloads per VU (POOL, default 100), each sent with a new uid.
const POOL = workloadPool(() => pick(WARM));

export const options = {
  insecureSkipTLSVerify: true,
  scenarios: { warm: arrival(RATE, __ENV.DURATION || '60s') },
  thresholds: thresholds(Number(__ENV.P99_MS || 5)),
  summaryTrendStats,
  systemTags,
  setupTimeout: '300s',
};

export function setup() {
  return prime(WARM, 'warm');
}

export default function () {
  sendPooled(POOL);
}

export function handleSummary(data) {
  return summary(data, 'warm', { rate: RATE, images: WARM.length });
}
