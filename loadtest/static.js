// Static-rule throughput: a constant arrival rate of 3-container Pod
// admissions whose images are all allowed by static rules
// (deploy/local/policy.yaml). Measures the gateway + verifier overhead
// without any registry.
//
//   TARGET=https://127.0.0.1:8443 RATE=1000 DURATION=30s k6 run loadtest/static.js
import http from 'k6/http';
import { TARGET, podReview, params, checkResponse } from './lib.js';

export const options = {
  insecureSkipTLSVerify: true,
  discardResponseBodies: false,
  scenarios: {
    static: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 1000),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: Number(__ENV.VUS || 50),
      maxVUs: Number(__ENV.MAX_VUS || 200),
    },
  },
  thresholds: {
    checks: ['rate==1'],
    http_req_failed: ['rate==0'],
    http_req_duration: [`p(99)<${__ENV.P99_MS || 25}`],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

const IMAGES = ['nginx:1.27', 'redis:7.2', 'busybox:1.36'];

export default function () {
  const body = podReview(IMAGES);
  const res = http.post(`${TARGET}/mutate`, JSON.stringify(body), params);
  checkResponse(res, body, true, false);
}

export function handleSummary(data) {
  const out = {};
  out[__ENV.SUMMARY || 'static-summary.json'] = JSON.stringify(data, null, 2);
  out.stdout = '';
  return out;
}
