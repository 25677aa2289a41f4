// startServer runs the imagegraph binary on a free loopback port, in sandbox
// mode (no credentials in its environment), and waits until it is healthy.
//
// The binary is $IMAGEGRAPH_BIN, or bin/imagegraph at the repository root
// (build it with `go build -o bin/imagegraph .` or `make build`).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: e2e/lib/../.. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The server binary the tests start. */
export const serverBinary = resolve(repoRoot, process.env.IMAGEGRAPH_BIN || 'bin/imagegraph');

/** freePort asks the kernel for a free TCP port on 127.0.0.1. */
export async function freePort() {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

/**
 * startServer starts the binary and resolves once GET /healthz answers 200.
 *
 * @param {object} [options]
 * @param {Record<string, string>} [options.env] variables added to the
 *   server's environment (PORT is always set, COMPSHARE_* always removed).
 * @param {number} [options.timeoutMs] how long to wait for /healthz.
 * @returns {Promise<{url: string, port: number, logs: () => string, stop: () => Promise<void>}>}
 *   url is the server's base URL without a trailing slash, e.g.
 *   http://127.0.0.1:41234; logs returns what the server wrote so far; stop
 *   sends SIGTERM and waits for the process to exit (SIGKILL after 10s).
 */
export async function startServer({ env = {}, timeoutMs = 20_000 } = {}) {
  if (!existsSync(serverBinary)) {
    throw new Error(`server binary ${serverBinary} not found: run "go build -o bin/imagegraph ." at the repository root, or set IMAGEGRAPH_BIN`);
  }
  const port = await freePort();
  // Metrics off unless a test asks: tests run servers side by side.
  const childEnv = { ...process.env, METRICS_ADDR: '', ...env, PORT: String(port) };
  for (const key of Object.keys(childEnv)) {
    if (key.startsWith('COMPSHARE_')) delete childEnv[key];
  }
  const child = spawn(serverBinary, [], { cwd: repoRoot, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk) => {
    output += chunk;
    if (output.length > 1_000_000) output = output.slice(-500_000);
  };
  child.stdout.setEncoding('utf8').on('data', collect);
  child.stderr.setEncoding('utf8').on('data', collect);
  const exited = once(child, 'exit');

  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`server exited early (${child.exitCode ?? child.signalCode}):\n${output}`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`server did not answer GET /healthz with 200 within ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, port, logs: () => output, stop };
}
