// Static-rule throughput: a constant arrival rate of 3-container Pod
// admissions whose images are all allowed by static rules
// (deploy/local/policy.yaml). Measures the gateway + verifier overhead
// without any registry. No patch is expected (static allows pin nothing).
//
//   TARGET=https://127.0.0.1:8443 RATE=1000 DURATION=30s k6 run loadtest/static.js
import { podReview, post, checkAdmission, arrival, thresholds, summary, summaryTrendStats, systemTags } from './lib.js';

const RATE = Number(__ENV.RATE || 1000);
const IMAGES = (__ENV.STATIC_IMAGES || 'nginx:1.27,redis:7.2,busybox:1.36')
  .split(',').map((image) => ({ image, allowed: true, pinned: null }));

export const options = {
  insecureSkipTLSVerify: true,
  scenarios: { static: arrival(RATE, __ENV.DURATION || '30s') },
  thresholds: thresholds(Number(__ENV.P99_MS || 25)),
  summaryTrendStats,
  systemTags,
};

export function setup() {
  return { t0: Date.now() };
}

export default function () {
  const built = podReview(IMAGES);
  checkAdmission(post(built.body), built);
}

export function handleSummary(data) {
  return summary(data, 'static', { rate: RATE });
}
