// The playground page: GraphiQL and its styles, bundled into dist/ and served
// by the imagegraph binary itself.
import 'graphiql/style.css';
import './page.css';
import { createElement, StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { defaultTabs } from './examples.js';

// meta returns the content of <meta name="NAME">, which the Go handler fills
// in for each response; a value still holding its placeholder (the page
// opened from disk or another server) counts as missing.
function meta(name) {
  const value = document.querySelector(`meta[name="${name}"]`)?.getAttribute('content') ?? '';
  return value.startsWith('__') ? '' : value;
}

// The GraphQL endpoint: a path on the page's own origin, e.g. "/query".
const endpoint = meta('graphql-endpoint') || '/query';

// Some of GraphiQL's dependencies (react-remove-scroll, for its dialogs) add
// <style> elements at run time and give them the nonce found in this global.
// The page's Content-Security-Policy admits inline styles only with the
// response's nonce.
globalThis.__webpack_nonce__ = meta('csp-nonce') || undefined;

// The WebSocket URL of the same endpoint, for subscriptions: the page's
// scheme with http: made ws: and https: made wss:, its host and port, and
// the endpoint's path. The page's Content-Security-Policy (connect-src
// 'self') admits exactly that origin.
function websocketURL(path) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.hash = '';
  return url.href;
}

// sameOriginFetch is the fetch the HTTP side of the fetcher uses: it asks for
// the GraphQL-over-HTTP media type first (unless the headers editor names an
// Accept of its own), sends the page's cookies only to its own origin, and
// turns an answer that is not JSON (a proxy's error page, say) into a GraphQL
// error GraphiQL can show, instead of a parse failure in the console.
async function sameOriginFetch(url, init = {}) {
  const headers = new Headers(init.headers);
  if (!headers.has('Accept')) headers.set('Accept', 'application/graphql-response+json, application/json;q=0.9');
  const response = await fetch(url, { ...init, headers, credentials: 'same-origin' });
  const text = await response.text();
  let body = text;
  try {
    JSON.parse(text);
  } catch {
    body = JSON.stringify({ errors: [{ message: `HTTP ${response.status}: ${text.slice(0, 500)}` }] });
  }
  return new Response(body, { headers: { 'Content-Type': 'application/json' } });
}

// The fetcher: queries and mutations are POSTed as JSON (the server does not
// stream @defer, so no multipart); subscriptions go over a WebSocket with
// graphql-ws (the graphql-transport-ws protocol), the server's live queries:
// the first result is the current value, then one for each change. The
// headers editor's JSON goes with each POST, and with a subscription as the
// WebSocket's connection_init payload (where the server reads Authorization).
const fetcher = createGraphiQLFetcher({
  url: endpoint,
  subscriptionUrl: websocketURL(endpoint),
  fetch: sameOriginFetch,
  enableIncrementalDelivery: false,
});

createRoot(document.getElementById('graphiql')).render(
  createElement(
    StrictMode,
    null,
    createElement(
      GraphiQL,
      { fetcher, defaultTabs },
      // The name of this API in place of GraphiQL's logo, a link off the site.
      createElement(GraphiQL.Logo, null, 'imagegraph'),
    ),
  ),
);
