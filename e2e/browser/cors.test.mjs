// CORS in a real browser: Debian's Chromium, driven by playwright-core, opens
// a page served from one loopback origin and has it call the API on another
// (a different port is a different origin). With the page's origin in
// CORS_ALLOWED_ORIGINS the call, preflight included (it sends Authorization
// and a JSON body), succeeds and the page can read the answer and its
// X-Request-Id; from an origin that is not listed, the browser refuses to
// hand the answer to the page.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { freePort, startServer } from '../lib/server.mjs';

const chromiumPath = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/** servePage serves an empty HTML page on a free loopback port. */
async function servePage() {
  const port = await freePort();
  const srv = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>frontend</title><p>a frontend on another origin</p>');
  });
  srv.listen(port, '127.0.0.1');
  await once(srv, 'listening');
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((r) => srv.close(r)) };
}

let allowed;
let refused;
let api;
let userDataDir;
let context;

before(async () => {
  allowed = await servePage();
  refused = await servePage();
  api = await startServer({ env: { CORS_ALLOWED_ORIGINS: allowed.origin } });
  userDataDir = await mkdtemp(join(tmpdir(), 'imagegraph-cors-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  });
});

after(async () => {
  await context?.close();
  await api?.stop();
  await allowed?.close();
  await refused?.close();
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
});

/** callFrom opens a page of origin and has it POST a query to the API. */
async function callFrom(origin) {
  const page = await context.newPage();
  await page.goto(`${origin}/`);
  const result = await page.evaluate(async (url) => {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/graphql-response+json, application/json;q=0.9',
          Authorization: 'Bearer not-needed-here',
        },
        body: JSON.stringify({ query: '{ imageGroups(first: 2) { nodes { groupId name } } }' }),
      });
      return { status: res.status, requestId: res.headers.get('X-Request-Id'), body: await res.json() };
    } catch (err) {
      return { error: String(err) };
    }
  }, `${api.url}/query`);
  await page.close();
  return result;
}

test('a page on an allowed origin calls the API and reads its answer', async () => {
  const result = await callFrom(allowed.origin);
  assert.equal(result.error, undefined, `the browser refused: ${result.error}`);
  assert.equal(result.status, 200);
  assert.equal(result.body.errors, undefined);
  assert.equal(result.body.data.imageGroups.nodes.length, 2);
  assert.ok(result.requestId, 'X-Request-Id is exposed to the page');
});

test('a page on another origin is refused by the browser', async () => {
  const result = await callFrom(refused.origin);
  assert.match(result.error ?? '', /Failed to fetch/, `expected the browser to refuse, got ${JSON.stringify(result)}`);
});
