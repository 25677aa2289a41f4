// Subscriptions (live queries) through real GraphQL clients, each used as its
// documentation shows and none patched:
//
//   - graphql-ws: createClient({ url, webSocketImpl }) and client.iterate, over
//     the graphql-transport-ws protocol (Node 20 has no global WebSocket: the
//     `ws` package is the implementation);
//   - graphql-sse: createClient({ url }) in its default "distinct
//     connections" mode (one POST with Accept: text/event-stream each);
//   - Apollo Client 4: ApolloClient with a GraphQLWsLink and an
//     InMemoryCache, client.subscribe (an Observable);
//   - urql: @urql/core's Client with subscriptionExchange forwarding to
//     graphql-ws.
//
// Each client gets a server of its own (sandbox mode, LIVE_POLL_INTERVAL=200ms,
// SANDBOX_TICK=0 so that only the test changes data), subscribes to the
// status of the version under review, and sees: the current value first,
// then exactly one event for each of three changes made through the sandbox's
// endpoint, in order, each within the poll interval and a second (plus slack
// for a loaded machine), and nothing while the data stays as it is.
//
// Then subscriptions the server refuses (too deep for MAX_DEPTH, an unknown
// field): their errors and codes through graphql-ws and graphql-sse, and what
// becomes of the client's other subscriptions (nothing: no `complete` follows an `error`).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApolloClient, InMemoryCache, gql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { Client, cacheExchange, fetchExchange, subscriptionExchange } from '@urql/core';
import { createClient as createSSEClient } from 'graphql-sse';
import { createClient as createWSClient } from 'graphql-ws';
import WebSocket from 'ws';
import { startServer } from '../lib/server.mjs';
import { Events, changeVersion, liveEnv, pollIntervalMs, reviewingImageId, sleep, wsUrl } from '../lib/live.mjs';

/** The server promises a change within an interval and a second; this much more is slack for a loaded machine. */
const SLACK_MS = 2_000;
const changeWithinMs = pollIntervalMs + 1_000 + SLACK_MS;
/** How long the first event may take: the connection, the first poll. */
const FIRST_EVENT_MS = 10_000;
/** How long the test waits, once a change has arrived, to be sure no other event follows: five intervals. */
const QUIET_MS = 5 * pollIntervalMs;

const watchQuery = `subscription Watch { imageVersion(imageId: "${reviewingImageId}") { imageId status } }`;

/**
 * statusOf reads imageVersion.status from what a client delivered, failing
 * on any error it carries (the shapes differ: `errors` for graphql-ws and
 * graphql-sse, `error` for Apollo and urql, `thrown` for what the client
 * threw or sent to its error callback).
 */
function statusOf(value) {
  const problem = value.thrown ?? value.errors ?? value.error;
  assert.equal(problem, undefined, `the event carries no error: ${JSON.stringify(problem?.message ?? problem)}`);
  const version = value.data?.imageVersion;
  assert.ok(version, `the event has data.imageVersion: ${JSON.stringify(value)}`);
  assert.equal(version.imageId, reviewingImageId);
  return version.status;
}

/**
 * watchThroughChanges is what each client goes through. open(query) starts a
 * subscription and returns { events, close }, events being an Events queue
 * the client's callback pushes into.
 */
async function watchThroughChanges(t, open) {
  const server = await startServer({ env: liveEnv });
  let watch;
  t.after(async () => {
    await watch?.close();
    await server.stop();
  });
  try {
    watch = await open(server, watchQuery);
    const first = await watch.events.next(FIRST_EVENT_MS, 'first event');
    assert.equal(statusOf(first.value), 'REVIEWING', 'the first event is the current value');

    await sleep(2 * pollIntervalMs);
    assert.deepEqual(watch.events.pending, [], 'nothing while unchanged');

    for (const status of ['Available', 'Offline', 'Reviewing']) {
      const start = performance.now();
      await changeVersion(server, status);
      const event = await watch.events.next(changeWithinMs, `event for ${status}`);
      const latency = Math.round(event.at - start);
      t.diagnostic(`${status}: event after ${latency} ms`);
      assert.equal(statusOf(event.value), status.toUpperCase(), 'one event per change, in order');
      assert.ok(latency <= changeWithinMs, `${status} arrived after ${latency} ms`);
    }

    await sleep(QUIET_MS);
    assert.deepEqual(watch.events.pending, [], 'no event after the last change');
  } catch (err) {
    t.diagnostic(server.logs().slice(-4000));
    throw err;
  }
}

/** drain pushes each value of an async iterator into events, and what it throws as { thrown }. */
function drain(iterator, events) {
  (async () => {
    try {
      for await (const value of iterator) events.push(value);
    } catch (err) {
      events.push({ thrown: err });
    }
  })();
}

describe('subscriptions through real clients', () => {
  test('graphql-ws: createClient and iterate', async (t) => {
    await watchThroughChanges(t, async (server, query) => {
      const client = createWSClient({ url: wsUrl(server), webSocketImpl: WebSocket });
      const events = new Events();
      const iterator = client.iterate({ query });
      drain(iterator, events);
      return {
        events,
        close: async () => {
          await iterator.return?.();
          await client.dispose();
        },
      };
    });
  });

  test('graphql-sse: createClient in distinct connections mode', async (t) => {
    await watchThroughChanges(t, async (server, query) => {
      const client = createSSEClient({ url: `${server.url}/query` });
      const events = new Events();
      const iterator = client.iterate({ query });
      drain(iterator, events);
      return {
        events,
        close: async () => {
          await iterator.return?.();
          client.dispose();
        },
      };
    });
  });

  test('Apollo Client 4: GraphQLWsLink and client.subscribe', async (t) => {
    await watchThroughChanges(t, async (server, query) => {
      const wsClient = createWSClient({ url: wsUrl(server), webSocketImpl: WebSocket });
      const client = new ApolloClient({ link: new GraphQLWsLink(wsClient), cache: new InMemoryCache() });
      const events = new Events();
      const subscription = client.subscribe({ query: gql(query) }).subscribe({
        next: (result) => events.push(result),
        error: (err) => events.push({ thrown: err }),
        complete: () => events.push({ thrown: new Error('the subscription completed') }),
      });
      return {
        events,
        close: async () => {
          subscription.unsubscribe();
          client.stop();
          await wsClient.dispose();
        },
      };
    });
  });

  test('urql: subscriptionExchange forwarding to graphql-ws', async (t) => {
    await watchThroughChanges(t, async (server, query) => {
      const wsClient = createWSClient({ url: wsUrl(server), webSocketImpl: WebSocket });
      const client = new Client({
        url: `${server.url}/query`,
        exchanges: [
          cacheExchange,
          fetchExchange,
          subscriptionExchange({
            forwardSubscription(request) {
              const input = { ...request, query: request.query || '' };
              return {
                subscribe(sink) {
                  const unsubscribe = wsClient.subscribe(input, sink);
                  return { unsubscribe };
                },
              };
            },
          }),
        ],
      });
      const events = new Events();
      const { unsubscribe } = client.subscription(query, {}).subscribe((result) => events.push(result));
      return {
        events,
        close: async () => {
          unsubscribe();
          await wsClient.dispose();
        },
      };
    });
  });
});

// A subscription the server refuses before it runs: deeper than MAX_DEPTH,
// or a field the schema does not have.
const tooDeep = 'subscription { imageGroups(first: 1) { nodes { versions { nodes { group { name } } } } } }';
const unknownField = 'subscription { nope }';

// graphql-transport-ws (graphql-ws's PROTOCOL.md, "Error"): an `error`
// message "terminates the operation and no further messages will be sent".
// gqlgen sends a `complete` after it; the server drops that complete
// (internal/live, trackedConn), for graphql-ws's client, given both, releases
// the subscription twice and closes the WebSocket under its other live
// subscriptions.
describe('a refused subscription', () => {
  /** subscribe starts a subscription on a graphql-ws client and returns its queue; errors are pushed as { thrown }. */
  const subscribe = (client, query) => {
    const events = new Events();
    const dispose = client.subscribe(
      { query },
      {
        next: (value) => events.push(value),
        error: (err) => events.push({ thrown: err }),
        complete: () => events.push({ complete: true }),
      },
    );
    return { events, dispose };
  };

  /** refused subscribes to query and returns the GraphQL errors the client hands to its sink's error. */
  const refused = async (client, query) => {
    const { events } = subscribe(client, query);
    const { value } = await events.next(FIRST_EVENT_MS, 'refusal');
    assert.ok(value.thrown, `an error, not ${JSON.stringify(value)}`);
    // graphql-ws hands the payload of the protocol's `error` message to the
    // sink: an array of GraphQL errors.
    assert.ok(Array.isArray(value.thrown), `an array of GraphQL errors: ${value.thrown}`);
    await sleep(2 * pollIntervalMs);
    assert.deepEqual(events.pending, [], 'nothing after the error');
    return value.thrown;
  };

  /** withServer starts a server with MAX_DEPTH=3 and a graphql-ws client, and stops both after the test. */
  const withServer = async (t, on = {}) => {
    const server = await startServer({ env: { ...liveEnv, MAX_DEPTH: '3' } });
    const client = createWSClient({ url: wsUrl(server), webSocketImpl: WebSocket, on });
    t.after(async () => {
      await client.dispose();
      await server.stop();
    });
    return { server, client };
  };

  test('gets a GraphQL error with its extensions.code through graphql-ws, and the next subscribe works', async (t) => {
    const { server, client } = await withServer(t);
    try {
      const deep = await refused(client, tooDeep);
      assert.equal(deep[0].extensions?.code, 'MAX_DEPTH_LIMIT', JSON.stringify(deep));
      assert.equal(deep[0].extensions?.setting, 'MAX_DEPTH');
      assert.match(deep[0].message, /deep/);

      const unknown = await refused(client, unknownField);
      assert.equal(unknown[0].extensions?.code, 'GRAPHQL_VALIDATION_FAILED', JSON.stringify(unknown));

      const watch = subscribe(client, watchQuery);
      assert.equal(statusOf((await watch.events.next(FIRST_EVENT_MS, 'first event')).value), 'REVIEWING');
      await changeVersion(server, 'Available');
      assert.equal(statusOf((await watch.events.next(changeWithinMs, 'change')).value), 'AVAILABLE');
      watch.dispose();
    } catch (err) {
      t.diagnostic(server.logs().slice(-4000));
      throw err;
    }
  });

  test('the protocol: nothing follows the `error` message of a refused subscription', async (t) => {
    const server = await startServer({ env: { ...liveEnv, MAX_DEPTH: '3' } });
    const socket = new WebSocket(wsUrl(server), 'graphql-transport-ws');
    const messages = new Events();
    socket.on('message', (data) => messages.push(JSON.parse(String(data))));
    t.after(async () => {
      socket.terminate();
      await server.stop();
    });
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    socket.send(JSON.stringify({ type: 'connection_init' }));
    assert.equal((await messages.next(FIRST_EVENT_MS, 'connection_ack')).value.type, 'connection_ack');
    for (const [id, query] of [['deep', tooDeep], ['unknown', unknownField]]) {
      socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query } }));
      const { value } = await messages.next(FIRST_EVENT_MS, `the error of ${id}`);
      assert.equal(value.type, 'error', JSON.stringify(value));
      assert.equal(value.id, id);
      await sleep(2 * pollIntervalMs);
      assert.deepEqual(messages.pending, [], `no message after the error of ${id} ("This message terminates the operation and no further messages will be sent")`);
    }
  });

  test("leaves the client's other live subscriptions and its WebSocket alone", async (t) => {
    const opened = [];
    const closed = [];
    const { server, client } = await withServer(t, {
      connected: (socket) => opened.push(socket),
      closed: (event) => closed.push(event?.code),
    });
    try {
      // A live subscription, which holds the (lazy) client's WebSocket open.
      const watch = subscribe(client, watchQuery);
      assert.equal(statusOf((await watch.events.next(FIRST_EVENT_MS, 'first event')).value), 'REVIEWING');

      assert.equal((await refused(client, tooDeep))[0].extensions?.code, 'MAX_DEPTH_LIMIT');
      assert.equal((await refused(client, unknownField))[0].extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
      assert.deepEqual(watch.events.pending, [], 'the live subscription goes on');

      // The same WebSocket serves a new subscription, and the first one still
      // gets its events.
      const again = subscribe(client, watchQuery);
      assert.equal(statusOf((await again.events.next(FIRST_EVENT_MS, 'first event')).value), 'REVIEWING');
      await changeVersion(server, 'Available');
      assert.equal(statusOf((await watch.events.next(changeWithinMs, 'change, first subscription')).value), 'AVAILABLE');
      assert.equal(statusOf((await again.events.next(changeWithinMs, 'change, second subscription')).value), 'AVAILABLE');

      assert.equal(opened.length, 1, 'one WebSocket throughout');
      assert.deepEqual(closed, [], 'the WebSocket never closed');
      watch.dispose();
      again.dispose();
    } catch (err) {
      t.diagnostic(server.logs().slice(-4000));
      throw err;
    }
  });

  test('gets its error with its extensions.code through graphql-sse, as a next event', async (t) => {
    const server = await startServer({ env: { ...liveEnv, MAX_DEPTH: '3' } });
    const client = createSSEClient({ url: `${server.url}/query` });
    t.after(async () => {
      client.dispose();
      await server.stop();
    });
    for (const [query, code] of [[tooDeep, 'MAX_DEPTH_LIMIT'], [unknownField, 'GRAPHQL_VALIDATION_FAILED']]) {
      // graphql-sse's protocol: validation before execution reports errors in
      // `next` events of an accepted stream, which then completes.
      const results = [];
      for await (const result of client.iterate({ query })) results.push(result);
      assert.equal(results.length, 1, JSON.stringify(results));
      assert.equal(results[0].errors?.[0]?.extensions?.code, code, JSON.stringify(results));
      assert.equal(results[0].data ?? null, null);
    }
  });
});
