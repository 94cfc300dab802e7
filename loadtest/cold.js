// Cold path: every admission names only images never seen before, so each
// one is a full verification (registry round trips and signature checks).
// Pods and Deployments with 1-4 containers and 0-2 init containers; the
// catalogue's `fresh` images are dealt out in order, each used exactly once,
// and the run ends when they are used up (COUNT limits it further).
//
//   TARGET=... IMAGES=images.json RATE=20 k6 run loadtest/cold.js
import exec from 'k6/execution';
import { SharedArray } from 'k6/data';
import { images, podReview, deploymentReview, post, checkAdmission, arrival, thresholds, summary, summaryTrendStats, systemTags, prng } from './lib.js';

const RATE = Number(__ENV.RATE || 20);
const FRESH = images('fresh');
const LIMIT = Math.min(Number(__ENV.COUNT || FRESH.length), FRESH.length);

// The plan, the same for every VU: admission k takes images
// [start, start + containers + init) of the fresh list.
const PLAN = new SharedArray('cold-plan', () => {
  const r = prng(0xc01d);
  const pickW = (w) => {
    let t = 0; for (const x of w) t += x;
    let v = r() * t;
    for (let i = 0; i < w.length; i++) { v -= w[i]; if (v < 0) return i; }
    return w.length - 1;
  };
  const plan = [];
  let next = 0;
  for (;;) {
    const containers = 1 + pickW([45, 30, 15, 10]);
    const init = pickW([60, 30, 10]);
    if (next + containers + init > LIMIT) break;
    plan.push({ start: next, containers, init, pod: r() < 0.6 });
    next += containers + init;
  }
  return plan;
});

// Enough time for the plan at RATE, unless DURATION says otherwise.
const DURATION = __ENV.DURATION || `${Math.max(1, Math.ceil(PLAN.length / RATE))}s`;

export const options = {
  insecureSkipTLSVerify: true,
  // Cold admissions wait on the registry: pre-allocate enough VUs that no
  // planned admission is dropped while k6 starts more.
  scenarios: {
    cold: arrival(RATE, DURATION, {
      preAllocatedVUs: Number(__ENV.VUS || Math.max(20, Math.min(PLAN.length, RATE * 2))),
      maxVUs: Number(__ENV.MAX_VUS || Math.max(200, RATE * 5)),
    }),
  },
  thresholds: thresholds(Number(__ENV.P99_MS || 1000), { dropped_iterations: ['count==0'] }),
  summaryTrendStats,
  systemTags,
};

export function setup() {
  return { t0: Date.now(), planned: PLAN.length };
}

export default function () {
  const i = exec.scenario.iterationInTest;
  if (i >= PLAN.length) return;
  const p = PLAN[i];
  const containers = [];
  const init = [];
  for (let k = 0; k < p.containers; k++) containers.push(FRESH[p.start + k]);
  for (let k = 0; k < p.init; k++) init.push(FRESH[p.start + p.containers + k]);
  const built = p.pod ? podReview(containers, init) : deploymentReview(containers, init);
  checkAdmission(post(built.body), built);
}

export function handleSummary(data) {
  const last = PLAN.length ? PLAN[PLAN.length - 1] : { start: 0, containers: 0, init: 0 };
  return summary(data, 'cold', {
    rate: RATE,
    planned_admissions: PLAN.length,
    fresh_images_used: last.start + last.containers + last.init,
  });
}
