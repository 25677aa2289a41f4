// Apollo Federation v2: the imagegraph binary as a subgraph behind a real
// Apollo Gateway.
//
// The facade runs in sandbox mode with SANDBOX_LATENCY=20ms, so that upstream
// calls made at once overlap and /sandbox/stats can tell how many were made
// and how many were in flight together. A second subgraph (deployments.mjs)
// references ImageVersion by `imageId` and ImageGroup by `groupId`, and adds
// ImageVersion.deploymentCount. @apollo/gateway composes both with
// IntrospectAndCompose and is served by @apollo/server's standalone server.
//
// The ids come from the sandbox dataset (upstream/sandbox/data/images.json),
// read at test time, and every field is checked against it.
//
// Everything listens on 127.0.0.1. Two guards keep it there: the gateway's
// telemetry (which would report to Apollo and probe cloud metadata
// addresses) is turned off before it is built, and any TCP connection to a
// host other than the loopback one is refused and fails the last test.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { composeServices } from '@apollo/composition';
import { ApolloGateway, IntrospectAndCompose, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { startStandaloneServer } from '@apollo/server/standalone';
import { Kind, parse } from 'graphql';
import { repoRoot, startServer } from '../lib/server.mjs';
import { startDeploymentsSubgraph, typeDefs as deploymentTypeDefs } from './deployments.mjs';

// The gateway reads these when it is constructed: no telemetry, no Apollo
// Studio (usage reporting, managed federation).
process.env.APOLLO_TELEMETRY_DISABLED = 'true';
for (const key of Object.keys(process.env)) {
  if (key.startsWith('APOLLO_') && key !== 'APOLLO_TELEMETRY_DISABLED') delete process.env[key];
}

// Every TCP connection this process opens must go to the loopback address.
const offLoopback = [];
const isLoopback = (host) => host === 'localhost' || host === '::1' || /^(::ffff:)?127\./.test(host);
const socketConnect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function guardedConnect(...args) {
  const a = Array.isArray(args[0]) ? args[0] : args; // net.connect passes normalized [options, cb]
  const first = a[0];
  let host = null; // null: a Unix socket path
  if (first && typeof first === 'object') host = first.path ? null : (first.host ?? 'localhost');
  else if (typeof first === 'number' || /^\d+$/.test(String(first))) host = typeof a[1] === 'string' ? a[1] : 'localhost';
  if (host !== null && !isLoopback(host)) {
    offLoopback.push(host);
    process.nextTick(() => this.destroy(new Error(`refused: connection to ${host} (only 127.0.0.1 is allowed)`)));
    return this;
  }
  return socketConnect.apply(this, args);
};

const TIMEOUT = 60_000;
const SECRET = 's3cret';
const MISSING_IMAGE = 'compshareImage-doesnotexist';
const MISSING_GROUP = 'group-nope';

/** globalId is the facade's global ID: base64url, no padding, of "Type:id". */
const globalId = (type, id) => Buffer.from(`${type}:${id}`).toString('base64url');

// ---- the sandbox dataset and the ids the test uses --------------------------

const raw = JSON.parse(readFileSync(resolve(repoRoot, 'upstream', 'sandbox', 'data', 'images.json'), 'utf8'));
const groups = Array.isArray(raw) ? raw : raw.CompshareImageGroup;
const groupById = new Map(groups.map((g) => [g.GroupId, g]));
const versionById = new Map(groups.flatMap((g) => g.Data.map((v) => [v.CompShareImageId, { v, g }])));

/** latestVersion is the newest AVAILABLE version by PubTime, then CreateTime, then imageId ascending; null when none. */
function latestVersion(g) {
  const available = g.Data.filter((v) => v.Status === 'Available');
  available.sort((a, b) => b.PubTime - a.PubTime || b.CreateTime - a.CreateTime || (a.CompShareImageId < b.CompShareImageId ? -1 : 1));
  return available[0] ?? null;
}

// Four versions from four groups (each group has several versions, so group
// membership is not trivial), the group of the first one (referenced by
// both kinds of key across deployments), another group, and a group with no
// available version (its latestVersion is null).
const multiVersion = groups.filter((g) => g.Status === 'Available' && g.Data.length >= 2);
assert.ok(multiVersion.length >= 5, 'the dataset has at least five available groups with several versions');
const [A, B, C, D] = multiVersion.slice(0, 4).map((g) => g.Data[1].CompShareImageId);
const G1 = multiVersion[0].GroupId;
const G2 = multiVersion[4].GroupId;
const G3 = groups.find((g) => g.Status === 'UnAvailable')?.GroupId;
assert.ok(G3, 'the dataset has an UnAvailable group');

const gpuOf = (imageId) => versionById.get(imageId)?.v.SupportedGpuTypes[0] ?? 'RTX 4090';
/** @type {import('./deployments.mjs').DeploymentRow[]} */
const rows = [
  { id: 'dep-1', name: 'chat-prod', imageId: A, groupId: G1 },
  { id: 'dep-2', name: 'train-nightly', imageId: B, groupId: G2 },
  { id: 'dep-3', name: 'chat-staging', imageId: A, groupId: G1 },
  { id: 'dep-4', name: 'render-farm', imageId: C, groupId: G3 },
  { id: 'dep-5', name: 'eval', imageId: D, groupId: G2 },
  { id: 'dep-6', name: 'train-adhoc', imageId: B, groupId: G3 },
  { id: 'dep-7', name: 'orphan', imageId: MISSING_IMAGE, groupId: G1 },
].map((d) => ({ ...d, gpu: gpuOf(d.imageId) }));
const MISSING_ROW = rows.findIndex((d) => d.imageId === MISSING_IMAGE);

function expectedVersion(imageId) {
  const hit = versionById.get(imageId);
  if (!hit) return null;
  const { v, g } = hit;
  return {
    id: globalId('ImageVersion', v.CompShareImageId),
    imageId: v.CompShareImageId,
    name: v.Name,
    author: v.Author,
    group: { groupId: g.GroupId, name: g.ImageName },
  };
}

function expectedGroup(groupId) {
  const g = groupById.get(groupId);
  const latest = latestVersion(g);
  return {
    id: globalId('ImageGroup', g.GroupId),
    groupId: g.GroupId,
    name: g.ImageName,
    latestVersion: latest && { imageId: latest.CompShareImageId },
  };
}

// ---- helpers ----------------------------------------------------------------

/** post sends a GraphQL request and returns the status and the parsed body. */
async function post(url, body, headers = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    assert.fail(`${url} answered ${res.status} with a body that is not JSON: ${text.slice(0, 500)}`);
  }
  return { status: res.status, json };
}

async function stats(facade) {
  const res = await fetch(`${facade.url}/sandbox/stats`, { signal: AbortSignal.timeout(5_000) });
  assert.equal(res.status, 200, 'GET /sandbox/stats');
  return res.json();
}

async function resetStats(facade) {
  const res = await fetch(`${facade.url}/sandbox/stats/reset`, { method: 'POST', signal: AbortSignal.timeout(5_000) });
  await res.arrayBuffer();
  assert.equal(res.status, 204, 'POST /sandbox/stats/reset');
  assert.equal((await stats(facade)).calls, 0, 'stats are zero after a reset');
}

/**
 * startGateway composes the subgraphs with IntrospectAndCompose and serves
 * the gateway on 127.0.0.1. With secret, every request to a subgraph
 * (composition included) carries X-Federation-Secret.
 */
async function startGateway(subgraphs, { secret } = {}) {
  const gateway = new ApolloGateway({
    supergraphSdl: new IntrospectAndCompose({ subgraphs }),
    buildService: ({ url }) =>
      new RemoteGraphQLDataSource({
        url,
        willSendRequest({ request }) {
          if (secret) request.http.headers.set('X-Federation-Secret', secret);
        },
      }),
  });
  const server = new ApolloServer({ gateway, plugins: [ApolloServerPluginLandingPageDisabled()] });
  try {
    const { url } = await startStandaloneServer(server, { listen: { host: '127.0.0.1', port: 0 } });
    return { url, stop: () => server.stop() };
  } catch (err) {
    await server.stop().catch(() => {});
    throw err;
  }
}

/** stopAll stops what started, whatever failed. */
async function stopAll(...things) {
  await Promise.allSettled(things.filter(Boolean).map((t) => t.stop()));
}

/** withLogs runs a test body and, when it fails, prints the facade's log tail. */
function withLogs(getFacade, fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (err) {
      t.diagnostic(`facade log (tail):\n${getFacade()?.logs().slice(-8_000)}`);
      throw err;
    }
  };
}

/** directives lists the arguments of each directive `name` on type `type` of an SDL. */
function directiveArgs(sdl, type, name) {
  const out = [];
  for (const def of parse(sdl).definitions) {
    if ((def.kind !== Kind.OBJECT_TYPE_DEFINITION && def.kind !== Kind.OBJECT_TYPE_EXTENSION) || def.name.value !== type) continue;
    for (const d of def.directives ?? []) {
      if (d.name.value !== name) continue;
      out.push(Object.fromEntries(d.arguments.map((a) => [a.name.value, a.value.value])));
    }
  }
  return out;
}

// ---- the facade as a subgraph, in sandbox mode -------------------------------

describe('imagegraph as a Federation v2 subgraph behind Apollo Gateway', { timeout: 3 * TIMEOUT }, () => {
  let facade;
  let deployments;
  let gateway;

  before(async () => {
    facade = await startServer({ env: { SANDBOX_LATENCY: '20ms' } });
    deployments = await startDeploymentsSubgraph({ rows });
    gateway = await startGateway([
      { name: 'images', url: `${facade.url}/query` },
      { name: 'deployments', url: deployments.url },
    ]);
  }, { timeout: TIMEOUT });

  after(() => stopAll(gateway, deployments, facade), { timeout: TIMEOUT });

  test('_service { sdl } declares the entity keys and the shareable PageInfo', { timeout: TIMEOUT }, withLogs(() => facade, async () => {
    const { status, json } = await post(`${facade.url}/query`, { query: '{ _service { sdl } }' });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.errors, undefined);
    const { sdl } = json.data._service;
    const keys = (type) => directiveArgs(sdl, type, 'key').map((a) => a.fields).sort();
    assert.deepEqual(keys('ImageGroup'), ['groupId', 'id']);
    assert.deepEqual(keys('ImageVersion'), ['id', 'imageId']);
    assert.equal(directiveArgs(sdl, 'PageInfo', 'shareable').length, 1, 'PageInfo is @shareable');
    assert.match(sdl, /@link\(\s*url:\s*"https:\/\/specs\.apollo\.dev\/federation\/v2\.\d+"/);
  }));

  test('the composed supergraph keeps the cost directives a router\'s demand control reads', { timeout: TIMEOUT }, withLogs(() => facade, async () => {
    const { json } = await post(`${facade.url}/query`, { query: '{ _service { sdl } }' });
    const result = composeServices([
      { name: 'images', url: `${facade.url}/query`, typeDefs: parse(json.data._service.sdl) },
      { name: 'deployments', url: deployments.url, typeDefs: deploymentTypeDefs },
    ]);
    assert.equal(result.errors, undefined, `composition: ${result.errors?.map((e) => e.message).join('; ')}`);
    const supergraph = result.supergraphSdl;
    // The same annotations as the server's own limits (schema/*.graphqls).
    assert.match(supergraph, /\): ImageGroupConnection [^\n]*@cost\(weight: 10\) @listSize\(assumedSize: 20, slicingArguments: \["first", "last"\], sizedFields: \["edges", "nodes"\], requireOneSlicingArgument: false\)/);
    assert.match(supergraph, /matchedVersions: \[ImageVersion!\]! @listSize\(assumedSize: 10\)/);
  }));

  test('a query across both subgraphs: data from the sandbox, one upstream call per distinct entity, concurrently', { timeout: TIMEOUT }, withLogs(() => facade, async (t) => {
    await resetStats(facade);
    const query = /* GraphQL */ `{
      deployments {
        id name gpu
        imageVersion { id imageId name author group { groupId name } }
        imageGroup { id groupId name latestVersion { imageId } }
      }
    }`;
    const { status, json } = await post(gateway.url, { query });
    t.diagnostic(`gateway answered ${status}: errors ${JSON.stringify(json.errors ?? [])}`);
    assert.equal(status, 200, JSON.stringify(json));

    const got = json.data?.deployments;
    assert.ok(Array.isArray(got), `data.deployments is a list: ${JSON.stringify(json)}`);
    assert.deepEqual(
      got,
      rows.map((d) => ({
        id: d.id,
        name: d.name,
        gpu: d.gpu,
        imageVersion: expectedVersion(d.imageId),
        imageGroup: expectedGroup(d.groupId),
      })),
    );
    assert.equal(got[MISSING_ROW].imageVersion, null, 'the deployment of a missing image has imageVersion null');
    assert.equal(expectedGroup(G3).latestVersion, null, 'the UnAvailable group has no latest version');

    // Errors, if any, belong to the missing image alone.
    for (const err of json.errors ?? []) {
      assert.deepEqual(err.path?.slice(0, 3), ['deployments', MISSING_ROW, 'imageVersion'], `error outside the missing image: ${JSON.stringify(err)}`);
    }

    const distinctImages = new Set(rows.map((d) => d.imageId)).size; // 5, the missing one included
    const distinctGroups = new Set(rows.map((d) => d.groupId)).size; // 3
    const s = await stats(facade);
    t.diagnostic(`upstream: ${JSON.stringify(s)} for ${distinctImages} distinct imageIds and ${distinctGroups} distinct groupIds in ${rows.length} deployments`);
    assert.ok(s.calls >= 1, 'the facade called upstream');
    assert.ok(s.calls <= distinctImages + distinctGroups, `at most one upstream call per distinct entity: ${s.calls} > ${distinctImages + distinctGroups}`);
    assert.ok(s.maxInFlight > 1, `upstream calls were in flight together (maxInFlight ${s.maxInFlight})`);
  }));

  test('the deployments subgraph adds ImageVersion.deploymentCount to the facade\'s versions', { timeout: TIMEOUT }, withLogs(() => facade, async () => {
    const notDeployed = [...versionById.keys()].find((id) => !rows.some((d) => d.imageId === id));
    const query = /* GraphQL */ `query ($a: ID!, $n: ID!) {
      a: imageVersion(imageId: $a) { imageId name deploymentCount }
      n: imageVersion(imageId: $n) { imageId name deploymentCount }
    }`;
    const { status, json } = await post(gateway.url, { query, variables: { a: A, n: notDeployed } });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.errors, undefined, JSON.stringify(json.errors));
    assert.deepEqual(json.data, {
      a: { imageId: A, name: versionById.get(A).v.Name, deploymentCount: rows.filter((d) => d.imageId === A).length },
      n: { imageId: notDeployed, name: versionById.get(notDeployed).v.Name, deploymentCount: 0 },
    });
    assert.deepEqual(
      deployments.references.filter((r) => r.imageId === A || r.imageId === notDeployed).map((r) => r.imageId).sort(),
      [A, notDeployed].sort(),
      'the gateway resolved both versions through the deployments subgraph by imageId',
    );
  }));

  test('_entities with a mixed batch: representation order, null for a miss, one call per distinct entity', { timeout: TIMEOUT }, withLogs(() => facade, async (t) => {
    const G = multiVersion[1].GroupId; // B's group, by global id
    const representations = [
      { __typename: 'ImageVersion', imageId: A },
      { __typename: 'ImageGroup', id: globalId('ImageGroup', G) },
      { __typename: 'ImageGroup', groupId: G2 },
      { __typename: 'ImageVersion', id: globalId('ImageVersion', B) },
      { __typename: 'ImageVersion', imageId: A }, // the same key again
      { __typename: 'ImageGroup', groupId: MISSING_GROUP },
      { __typename: 'ImageGroup', groupId: G }, // the group of [1], by its other key
      { __typename: 'ImageVersion', imageId: B }, // the version of [3], by its other key
    ];
    const missing = 5;
    const distinctEntities = 5; // A, G, G2, B and the missing group
    const query = /* GraphQL */ `query ($representations: [_Any!]!) {
      _entities(representations: $representations) {
        __typename
        ... on ImageVersion { imageId name }
        ... on ImageGroup { groupId name }
      }
    }`;
    const version = (id) => ({ __typename: 'ImageVersion', imageId: id, name: versionById.get(id).v.Name });
    const group = (id) => ({ __typename: 'ImageGroup', groupId: id, name: groupById.get(id).ImageName });

    await resetStats(facade);
    const { status, json } = await post(`${facade.url}/query`, { query, variables: { representations } });
    t.diagnostic(`facade answered ${status}: ${JSON.stringify(json)}`);
    assert.equal(status, 200, JSON.stringify(json));
    assert.deepEqual(json.data?._entities, [version(A), group(G), group(G2), version(B), version(A), null, group(G), version(B)]);
    for (const err of json.errors ?? []) {
      assert.deepEqual(err.path, ['_entities', missing], `an error that is not the missing group's: ${JSON.stringify(err)}`);
    }

    const s = await stats(facade);
    t.diagnostic(`upstream: ${JSON.stringify(s)} for ${representations.length} representations of ${distinctEntities} distinct entities`);
    assert.ok(s.calls <= distinctEntities, `at most one upstream call per distinct entity: ${s.calls} > ${distinctEntities}`);
    assert.ok(s.maxInFlight > 1, `upstream calls were in flight together (maxInFlight ${s.maxInFlight})`);
  }));
});

// ---- introspection off: composition only with the federation secret ---------

describe('INTROSPECTION=false: _service answers only with X-Federation-Secret', { timeout: 3 * TIMEOUT }, () => {
  let facade;
  let deployments;
  let gateway;
  const service = '{ _service { sdl } }';
  let refusal; // the facade's message when _service is refused

  before(async () => {
    facade = await startServer({ env: { INTROSPECTION: 'false', FEDERATION_SECRET: SECRET, SANDBOX_LATENCY: '20ms' } });
    deployments = await startDeploymentsSubgraph({ rows });
  }, { timeout: TIMEOUT });

  after(() => stopAll(gateway, deployments, facade), { timeout: TIMEOUT });

  test('the facade refuses __schema, and _service without the right secret', { timeout: TIMEOUT }, withLogs(() => facade, async () => {
    const schema = await post(`${facade.url}/query`, { query: '{ __schema { queryType { name } } }' });
    assert.ok(schema.json.errors?.length > 0, `__schema is refused: ${JSON.stringify(schema.json)}`);
    assert.equal(schema.json.data?.__schema ?? null, null, 'no schema in the answer');

    for (const headers of [{}, { 'X-Federation-Secret': 'wrong' }, { 'X-Federation-Secret': '' }]) {
      const { json } = await post(`${facade.url}/query`, { query: service }, headers);
      assert.ok(json.errors?.length > 0, `_service with ${JSON.stringify(headers)} is refused: ${JSON.stringify(json)}`);
      assert.equal(json.data?._service?.sdl ?? null, null, `no SDL with ${JSON.stringify(headers)}`);
      refusal = json.errors[0].message;
    }

    const ok = await post(`${facade.url}/query`, { query: service }, { 'X-Federation-Secret': SECRET });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.equal(ok.json.errors, undefined, JSON.stringify(ok.json.errors));
    assert.match(ok.json.data._service.sdl, /@key\(fields:\s*"imageId"\)/);
  }));

  test('IntrospectAndCompose fails without the secret', { timeout: TIMEOUT }, withLogs(() => facade, async () => {
    const gw = new ApolloGateway({
      supergraphSdl: new IntrospectAndCompose({
        subgraphs: [
          { name: 'images', url: `${facade.url}/query` },
          { name: 'deployments', url: deployments.url },
        ],
      }),
      logger: { debug() {}, info() {}, warn() {}, error() {} },
    });
    try {
      // The gateway fails on the images subgraph, for the facade's refusal
      // (not, say, a connection error).
      await assert.rejects(gw.load(), (err) => {
        assert.match(err.message, /"images"/);
        assert.ok(refusal && err.message.includes(refusal), `the gateway failed for the refusal "${refusal}": ${err.message}`);
        return true;
      });
    } finally {
      await gw.stop().catch(() => {});
    }
  }));

  test('IntrospectAndCompose composes with the secret, and queries go through', { timeout: TIMEOUT }, withLogs(() => facade, async () => {
    gateway = await startGateway(
      [
        { name: 'images', url: `${facade.url}/query` },
        { name: 'deployments', url: deployments.url },
      ],
      { secret: SECRET },
    );
    const { status, json } = await post(gateway.url, {
      query: '{ deployments { id imageVersion { imageId name } imageGroup { groupId name } } }',
    });
    assert.equal(status, 200, JSON.stringify(json));
    assert.deepEqual(
      json.data?.deployments,
      rows.map((d) => ({
        id: d.id,
        imageVersion: d.imageId === MISSING_IMAGE ? null : { imageId: d.imageId, name: versionById.get(d.imageId).v.Name },
        imageGroup: { groupId: d.groupId, name: groupById.get(d.groupId).ImageName },
      })),
    );
  }));
});

test('nothing connected beyond 127.0.0.1', () => {
  assert.deepEqual(offLoopback, []);
});
