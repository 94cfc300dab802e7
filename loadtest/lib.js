// Shared helpers for the Portcullis k6 scripts: AdmissionReview v1 bodies
// and response checks.
import { check } from 'k6';

export const TARGET = __ENV.TARGET || 'https://127.0.0.1:8443';

// A random RFC 4122-ish uid per request.
export function uid() {
  const h = () => Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  const a = h(), b = h(), c = h(), d = h();
  return `${a}-${b.slice(0, 4)}-4${b.slice(5, 8)}-a${c.slice(1, 4)}-${c.slice(4)}${d}`;
}

function containers(images, prefix) {
  return images.map((image, i) => ({ name: `${prefix}${i}`, image }));
}

// A Pod AdmissionReview naming `images` (containers) and `init` (initContainers).
export function podReview(images, init = []) {
  const spec = { containers: containers(images, 'c') };
  if (init.length) spec.initContainers = containers(init, 'i');
  return review('', 'v1', 'Pod', 'pods', {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: `p-${Math.floor(Math.random() * 1e9)}`, namespace: 'load' },
    spec,
  });
}

// A Deployment AdmissionReview.
export function deploymentReview(images, init = []) {
  const spec = { containers: containers(images, 'c') };
  if (init.length) spec.initContainers = containers(init, 'i');
  return review('apps', 'v1', 'Deployment', 'deployments', {
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: { name: `d-${Math.floor(Math.random() * 1e9)}`, namespace: 'load' },
    spec: { replicas: 3, selector: { matchLabels: { app: 'x' } }, template: { metadata: { labels: { app: 'x' } }, spec } },
  });
}

function review(group, version, kind, resource, object) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: uid(),
      kind: { group, version, kind },
      resource: { group, version, resource },
      name: object.metadata.name,
      namespace: 'load',
      operation: 'CREATE',
      userInfo: { username: 'k6' },
      object,
      oldObject: null,
      dryRun: false,
    },
  };
}

export const params = { headers: { 'Content-Type': 'application/json' }, timeout: '15s' };

// Checks one response: status 200, the uid echoed, `allowed` as expected,
// and a JSON patch present (or absent) as expected. Returns the verdict.
export function checkResponse(res, body, expectAllowed, expectPatch) {
  let parsed = null;
  try { parsed = res.json(); } catch (e) { parsed = null; }
  const r = parsed && parsed.response;
  return check(res, {
    'status 200': (x) => x.status === 200,
    'uid echoed': () => r && r.uid === body.request.uid,
    'allowed as expected': () => r && r.allowed === expectAllowed,
    'patch as expected': () => r && (expectPatch === undefined || (!!r.patch === expectPatch && (!!r.patchType === !!r.patch))),
  });
}
