// A 1,000-replica Deployment's burst: COUNT (1000) Pod admissions, as the
// ReplicaSet controller creates them, of one image that has not been
// verified yet, arriving within SECONDS (3). Every admission must be
// answered (allowed, pinned to the digest) within P99_MS (1000) at p99.
// Locally, loadtest/run.sh also checks that the registry saw only the
// requests of one verification and that no verifier verified twice.
//
//   TARGET=... IMAGES=images.json COUNT=1000 SECONDS=3 k6 run loadtest/rollout.js
//   TARGET=... ROLLOUT_IMAGE=registry.example.com/team/app:v42 k6 run loadtest/rollout.js
import exec from 'k6/execution';
import { images, replicaSetPodReview, post, checkAdmission, arrival, thresholds, summary, summaryTrendStats, systemTags } from './lib.js';

const COUNT = Number(__ENV.COUNT || 1000);
const SECONDS = Number(__ENV.SECONDS || 3);
const RATE = Math.ceil(COUNT / SECONDS);
const ROLLOUT = images('rollout');
const IMAGE = ROLLOUT[0];

export const options = {
  insecureSkipTLSVerify: true,
  scenarios: {
    rollout: arrival(RATE, `${SECONDS}s`, {
      // Few pre-allocated VUs (k6 adds more while admissions wait): k6
      // hands iterations to VUs in turn, each VU has its own connection, and
      // 500 VUs would mean 500 fresh TLS connections, where an API server
      // reuses a few keep-alive ones.
      preAllocatedVUs: Number(__ENV.VUS || 50),
      maxVUs: Number(__ENV.MAX_VUS || COUNT),
    }),
  },
  thresholds: thresholds(Number(__ENV.P99_MS || 1000), {
    admissions: [`count==${COUNT}`],
    dropped_iterations: ['count==0'],
  }),
  summaryTrendStats,
  systemTags,
};

export function setup() {
  return { t0: Date.now() };
}

export default function () {
  if (exec.scenario.iterationInTest >= COUNT) return;
  const built = replicaSetPodReview([IMAGE]);
  checkAdmission(post(built.body), built);
}

export function handleSummary(data) {
  return summary(data, 'rollout', { rate: RATE, count: COUNT, image: IMAGE.image });
}
