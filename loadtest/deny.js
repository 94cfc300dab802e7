// A flood of requests that must all be refused correctly: unsigned images,
// images signed by the wrong key, images outside every allowed rule,
// unknown tags (unique ones, so every such request reaches the registry),
// invalid references, malformed pod specs, too many images, and malformed
// AdmissionReviews. Every answer must be a deny with the right reason code
// (status 200, allowed false) or a 400 for the malformed bodies; never a
// 5xx, a timeout or an allow.
//
//   TARGET=... IMAGES=images.json RATE=500 DURATION=30s k6 run loadtest/deny.js
import http from 'k6/http';
import { images, workload, podReview, deploymentReview, pick, randInt, weighted, uid, post, checkAdmission, checkBadRequest, checkDeny, arrival, thresholds, summary, summaryTrendStats, systemTags } from './lib.js';

const RATE = Number(__ENV.RATE || 500);
const DENIED = images('denied');            // {image, allowed: false, reason}
const INVALID = images('invalid', false);   // INVALID_REFERENCE
const ALLOWED = images('warm', false);      // mixed into some denied workloads
const MISSING = images('missing_repos', false); // {repo}: unique tags -> IMAGE_NOT_FOUND

// 400 is an expected answer here; 5xx and transport errors are not.
http.setResponseCallback(http.expectedStatuses(200, 400));

export const options = {
  insecureSkipTLSVerify: true,
  // Some denials (unknown tags) wait on the registry: enough VUs up front.
  scenarios: { deny: arrival(RATE, __ENV.DURATION || '30s', { preAllocatedVUs: Number(__ENV.VUS || Math.max(50, Math.ceil(RATE / 5))) }) },
  thresholds: thresholds(Number(__ENV.P99_MS || 100)),
  summaryTrendStats,
  systemTags,
};

export function setup() {
  return { t0: Date.now() };
}

function malformedBody() {
  switch (randInt(4)) {
    case 0: return '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":';
    case 1: return JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' });
    case 2: return JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: uid() } });
    default: return 'not json at all';
  }
}

export default function () {
  const kind = weighted([35, 15, 10, 10, 5, 5, 5, 15]);
  switch (kind) {
    case 0: { // only denied images (unsigned, wrong key, static deny, missing)
      const built = workload(() => pick(DENIED));
      checkAdmission(post(built.body), built);
      return;
    }
    case 1: { // a denied image among allowed ones: only it is named
      const bad = pick(DENIED);
      let placed = false;
      const built = workload(() => {
        if (!placed) { placed = true; return bad; }
        return ALLOWED.length ? pick(ALLOWED) : pick(DENIED);
      });
      checkAdmission(post(built.body), built);
      return;
    }
    case 2: { // an invalid reference
      if (!INVALID.length) break;
      const built = podReview([pick(INVALID)]);
      checkAdmission(post(built.body), built);
      return;
    }
    case 3: { // a tag that does not exist, unique per request
      if (!MISSING.length) break;
      const repo = pick(MISSING).repo;
      const entry = { image: `${repo}:nope-${uid().slice(0, 13)}`, allowed: false, reason: 'IMAGE_NOT_FOUND' };
      const built = podReview([entry]);
      checkAdmission(post(built.body), built);
      return;
    }
    case 4: { // a malformed pod spec
      const built = deploymentReview([pick(DENIED)]);
      built.body.request.object.spec.template.spec.containers = 'not-a-list';
      checkDeny(post(built.body), built.body, 'malformed pod spec');
      return;
    }
    case 5: { // more distinct images than the gateway verifies per admission
      const many = [];
      for (let k = 0; k < 65; k++) many.push({ image: `quay.io/flood/img-${k}:v${randInt(1000)}`, allowed: false, reason: 'TOO_MANY_IMAGES' });
      const built = podReview(many);
      checkAdmission(post(built.body), built);
      return;
    }
    case 6: { // a Deployment whose image field is not a string
      const built = deploymentReview([pick(DENIED)]);
      built.body.request.object.spec.template.spec.containers[0].image = 42;
      checkDeny(post(built.body), built.body, 'malformed pod spec');
      return;
    }
    default:
      break;
  }
  checkBadRequest(post(malformedBody()));
}

export function handleSummary(data) {
  return summary(data, 'deny', { rate: RATE });
}
