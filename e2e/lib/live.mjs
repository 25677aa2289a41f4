// Helpers for the tests of subscriptions (live queries): the sandbox's change
// endpoint, the server settings that make changes show quickly, and a queue
// that a client's callbacks push events into and a test waits on.

/** The version the sandbox has under review (upstream/sandbox: EdgeReviewingImageID). */
export const reviewingImageId = 'compshareImage-reviewing001';

/** How often the server polls its subscriptions in these tests, in ms. */
export const pollIntervalMs = 200;

/**
 * liveEnv is the server environment of these tests: polls every 200 ms, a
 * sandbox that never changes its data on its own (SANDBOX_TICK=0), so that
 * only the test's own changes make events, and no drain at shutdown (the
 * tests start and stop several servers; the default holds each for 5 s).
 */
export const liveEnv = { LIVE_POLL_INTERVAL: `${pollIntervalMs}ms`, SANDBOX_TICK: '0', SHUTDOWN_DRAIN: '0s' };

/** wsUrl turns the server's http:// base URL into its ws:// /query URL. */
export const wsUrl = (server) => `${server.url.replace(/^http/, 'ws')}/query`;

/**
 * changeVersion sets a version's upstream status through the sandbox's
 * endpoint, POST /sandbox/versions/{imageId} (Available, Reviewing, Offline,
 * any case), and fails unless the server answers 200.
 */
export async function changeVersion(server, status, imageId = reviewingImageId) {
  const res = await fetch(`${server.url}/sandbox/versions/${encodeURIComponent(imageId)}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ status }),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST /sandbox/versions/${imageId} answered ${res.status}: ${text}`);
}

/** sleep resolves after ms. */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Events is a queue of what a subscription delivered, each item with the
 * time it came (performance.now()). push is the client's callback; next waits
 * for the oldest item not yet taken.
 */
export class Events {
  #items = [];
  #waiters = [];

  /** push adds an item, handing it to the oldest waiter if there is one. */
  push(value) {
    const item = { value, at: performance.now() };
    const waiter = this.#waiters.shift();
    if (waiter) waiter(item);
    else this.#items.push(item);
  }

  /** pending is how many items came that nobody has taken yet. */
  get pending() {
    return this.#items.map((i) => i.value);
  }

  /** next resolves with the oldest item not taken, or rejects after timeoutMs. */
  next(timeoutMs, what = 'an event') {
    if (this.#items.length) return Promise.resolve(this.#items.shift());
    return new Promise((resolve, reject) => {
      const waiter = (item) => {
        clearTimeout(timer);
        resolve(item);
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(new Error(`no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }
}
