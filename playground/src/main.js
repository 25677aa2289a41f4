// The playground page: GraphiQL and its styles, bundled into dist/ and served
// by the imagegraph binary itself.
import 'graphiql/style.css';
import './page.css';
import { createElement, StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
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

// fetcher posts one operation as JSON and asks for the GraphQL-over-HTTP media
// type first. A non-JSON answer (a proxy's error page, say) becomes an error
// GraphiQL can show, instead of a parse failure in the console.
async function fetcher(params, opts) {
  const response = await fetch(endpoint, {
    method: 'POST',
    credentials: 'same-origin',
    headers: {
      Accept: 'application/graphql-response+json, application/json;q=0.9',
      'Content-Type': 'application/json',
      ...(opts?.headers ?? {}),
    },
    body: JSON.stringify(params),
  });
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return { errors: [{ message: `HTTP ${response.status}: ${text.slice(0, 500)}` }] };
  }
}

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
