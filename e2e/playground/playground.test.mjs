// The playground in a real browser: Debian's Chromium, driven by
// playwright-core, opens the page the imagegraph binary serves at "/", runs
// the first example operation and opens the docs explorer; then runs the
// subscription example over a WebSocket and sees the result pane follow
// changes made through the sandbox's endpoint. Every request the page makes
// is watched: one to any other origin than the server's (a WebSocket's
// included) fails the test (and is aborted, so it never leaves the machine),
// as does any console error or uncaught exception, Content-Security-Policy
// violations included.
//
// A screenshot goes to e2e/artifacts/playground.png (not committed); with
// UPDATE_SCREENSHOT=1 it is also copied to playground/screenshot.png, the one
// the documentation shows.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { repoRoot, startServer } from '../lib/server.mjs';
import { changeVersion, liveEnv, pollIntervalMs, reviewingImageId } from '../lib/live.mjs';

const chromiumPath = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const artifacts = resolve(repoRoot, 'e2e', 'artifacts');
const screenshot = join(artifacts, 'playground.png');
const docsScreenshot = resolve(repoRoot, 'playground', 'screenshot.png');

let server;
let userDataDir;
let context;

before(async () => {
  server = await startServer();
  userDataDir = await mkdtemp(join(tmpdir(), 'imagegraph-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // A second guard behind the request routing below: no host but the
      // loopback address resolves, so nothing the pages miss can go out either.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  });
});

after(async () => {
  await context?.close();
  await server?.stop();
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
});

/**
 * watchPage opens a page and watches what it does: a request or WebSocket to
 * any other origin than the server's is aborted and listed in offsite; a
 * console error, a page error, a failed request to the server or an answer
 * of 400 or more is listed in problems. Both must stay empty.
 */
async function watchPage(t, server) {
  const origin = new URL(server.url).origin;
  const wsOrigin = origin.replace(/^http/, 'ws');
  const offsite = []; // requests to any other origin: must stay empty
  const problems = []; // console errors, page errors, failed same-origin requests

  const page = await context.newPage();
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (new URL(url).origin === origin) return route.continue();
    offsite.push(`${route.request().method()} ${url}`);
    return route.abort('blockedbyclient');
  });
  // WebSockets to the server's own origin (ws: for http:) connect as usual.
  await page.routeWebSocket(
    (url) => url.origin !== wsOrigin,
    (ws) => {
      offsite.push(`WebSocket ${ws.url()}`);
      return ws.close();
    },
  );
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => {
    if (new URL(req.url()).origin === origin) problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`HTTP ${res.status()}: ${res.url()}`);
  });
  t.after(() => {
    if (problems.length || offsite.length) t.diagnostic(server.logs().slice(-4000));
  });
  return { page, offsite, problems };
}

/** waitForResult waits until the result pane's text matches re, and returns the text. */
async function waitForResult(page, re, timeout) {
  const handle = await page.waitForFunction(
    ({ source, flags }) => {
      const text = document.querySelector('.result-window .CodeMirror')?.CodeMirror?.getValue() ?? '';
      return new RegExp(source, flags).test(text) ? text : false;
    },
    { source: re.source, flags: re.flags },
    { timeout },
  );
  return handle.jsonValue();
}

test('the playground runs the first example and shows the schema docs, all from the server', async (t) => {
  const { page, offsite, problems } = await watchPage(t, server);

  const response = await page.goto(`${server.url}/`, { waitUntil: 'load' });
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-security-policy'] ?? '', /script-src 'self'/);

  // The editor is up with the first example tab.
  const queryEditor = page.locator('.graphiql-query-editor .CodeMirror');
  await queryEditor.waitFor({ state: 'visible', timeout: 30_000 });
  await page.waitForFunction(
    () => document.querySelector('.graphiql-query-editor .CodeMirror')?.CodeMirror?.getValue().includes('query FirstPage'),
    null,
    { timeout: 10_000 },
  );
  assert.ok((await page.locator('.graphiql-tab').count()) >= 5, 'the example operations open as tabs');

  // Run it and wait for data in the result pane.
  await page.locator('.graphiql-execute-button').click();
  const resultText = await page.waitForFunction(
    () => {
      const text = document.querySelector('.result-window .CodeMirror')?.CodeMirror?.getValue() ?? '';
      return text.includes('"totalCount"') ? text : false;
    },
    null,
    { timeout: 15_000 },
  );
  const result = JSON.parse(await resultText.jsonValue());
  assert.equal(result.errors, undefined, `the first example runs without errors: ${JSON.stringify(result.errors)}`);
  const groups = result.data.imageGroups;
  assert.ok(Number.isInteger(groups.totalCount) && groups.totalCount > 0, `totalCount is ${groups.totalCount}`);
  assert.ok(groups.edges.length > 0 && groups.edges.length <= 5, `${groups.edges.length} edges`);
  assert.ok(groups.edges[0].node.name, 'the first group has a name');
  assert.equal(typeof groups.pageInfo.hasNextPage, 'boolean');

  // The docs explorer lists the root type, which needs introspection.
  await page.locator('button[aria-label="Show Documentation Explorer"]').click();
  const docs = page.locator('.graphiql-doc-explorer');
  await docs.getByText('Root Types').waitFor({ timeout: 10_000 });
  await docs.locator('a.graphiql-doc-explorer-type-name', { hasText: /^Query$/ }).first().click();
  await docs.getByText('imageGroups', { exact: true }).first().waitFor({ timeout: 5_000 });

  // A dialog: Radix adds <style> elements, which the CSP admits only with the
  // page's nonce. A violation would show up as a console error.
  await page.locator('button[aria-label="Open settings dialog"]').click();
  await page.locator('.graphiql-dialog').waitFor({ timeout: 5_000 });
  await page.keyboard.press('Escape');
  await page.locator('.graphiql-dialog').waitFor({ state: 'detached', timeout: 5_000 });

  // The docs of Query beside the result: a screenshot a person can look at.
  await mkdir(artifacts, { recursive: true });
  await page.screenshot({ path: screenshot });
  t.diagnostic(`screenshot: ${screenshot}`);
  if (process.env.UPDATE_SCREENSHOT === '1') {
    await copyFile(screenshot, docsScreenshot);
    t.diagnostic(`copied to ${docsScreenshot}`);
  }

  assert.deepEqual(offsite, [], 'no request leaves the server\'s origin');
  assert.deepEqual(problems, [], 'no console errors, page errors or failed requests');
  await page.close();
});

test('the playground runs the subscription example over a WebSocket and shows each change', async (t) => {
  // A server of its own: polls every 200 ms, and only the test changes its
  // sandbox's data. Its origin (another port) has no saved tabs yet.
  const live = await startServer({ env: liveEnv });
  t.after(() => live.stop());
  const { page, offsite, problems } = await watchPage(t, live);

  // Every WebSocket the page opens, with the frames it sends.
  const sockets = [];
  page.on('websocket', (ws) => {
    const socket = { url: ws.url(), sent: [], closed: false };
    ws.on('framesent', ({ payload }) => socket.sent.push(JSON.parse(String(payload))));
    ws.on('close', () => {
      socket.closed = true;
    });
    sockets.push(socket);
  });

  const response = await page.goto(`${live.url}/`, { waitUntil: 'load' });
  assert.equal(response.status(), 200);
  await page.locator('.graphiql-query-editor .CodeMirror').waitFor({ state: 'visible', timeout: 30_000 });

  // The example tab, named after its operation.
  await page.locator('.graphiql-tab', { hasText: 'WatchReview' }).click();
  await page.waitForFunction(
    () => document.querySelector('.graphiql-query-editor .CodeMirror')?.CodeMirror?.getValue().includes('subscription WatchReview'),
    null,
    { timeout: 10_000 },
  );
  // GraphiQL takes the operation's name from the editor 100 ms after a change
  // (a tab switch included), and Run sends the name it has: run too soon and
  // it asks for the previous tab's operation. It then saves the tab, name
  // included, to local storage, which tells the test it is ready.
  await page.waitForFunction(
    () => {
      try {
        const state = JSON.parse(localStorage.getItem('graphiql:tabState'));
        return state.tabs[state.activeTabIndex].operationName === 'WatchReview';
      } catch {
        return false;
      }
    },
    null,
    { timeout: 10_000 },
  );

  // Run it: the first result is the version as it is, under review.
  await page.locator('.graphiql-execute-button').click();
  const first = JSON.parse(await waitForResult(page, /"status": "REVIEWING"/, 15_000));
  assert.equal(first.errors, undefined, JSON.stringify(first.errors));
  assert.equal(first.data.imageVersion.imageId, reviewingImageId);

  // Each change made through the sandbox's endpoint shows in the result pane.
  const within = pollIntervalMs + 1_000 + 2_000; // the server's promise, and slack for a loaded machine
  for (const status of ['Available', 'Offline']) {
    const start = Date.now();
    await changeVersion(live, status);
    const shown = JSON.parse(await waitForResult(page, new RegExp(`"status": "${status.toUpperCase()}"`), within));
    assert.equal(shown.data.imageVersion.imageId, reviewingImageId);
    t.diagnostic(`${status}: shown after ${Date.now() - start} ms`);
  }

  // It went over one WebSocket to the server's own origin, with the
  // graphql-transport-ws protocol's messages.
  const wsURL = `${live.url.replace(/^http/, 'ws')}/query`;
  assert.deepEqual(sockets.map((s) => s.url), [wsURL], 'one WebSocket, to the page\'s own origin');
  const types = sockets[0].sent.map((m) => m.type);
  assert.deepEqual(types.slice(0, 2), ['connection_init', 'subscribe'], `frames sent: ${types}`);
  assert.equal(sockets[0].sent[1].payload.operationName, 'WatchReview');

  await mkdir(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, 'playground-subscription.png') });

  // The stop button ends the subscription; the client then closes its
  // WebSocket, having nothing else on it.
  await page.locator('.graphiql-execute-button').click();
  const deadline = Date.now() + 10_000;
  while (!sockets[0].closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(sockets[0].closed, 'the WebSocket closed once the subscription was stopped');
  assert.ok(sockets[0].sent.some((m) => m.type === 'complete'), 'the client sent complete');
  await changeVersion(live, 'Reviewing');

  assert.deepEqual(offsite, [], 'no request leaves the server\'s origin');
  assert.deepEqual(problems, [], 'no console errors, page errors or failed requests');
  await page.close();
});

test('the page is 404 when PLAYGROUND=false', async () => {
  const off = await startServer({ env: { PLAYGROUND: 'false' } });
  try {
    const page = await fetch(`${off.url}/`);
    assert.equal(page.status, 404);
    const query = await fetch(`${off.url}/query`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    assert.equal(query.status, 200, 'the API still answers');
  } finally {
    await off.stop();
  }
});
