'use strict';
// Starts the built `camerata` binary on 127.0.0.1 with a throwaway data folder, and stops it
// by its PID.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..', '..');
// The binary the test command built (CAMERATA_BIN), else the newest debug build.
function findBinary() {
  if (process.env.CAMERATA_BIN) return process.env.CAMERATA_BIN;
  const target = path.join(ROOT, 'target');
  const candidates = [path.join(target, 'debug', 'camerata')];
  for (const entry of fs.existsSync(target) ? fs.readdirSync(target) : []) {
    candidates.push(path.join(target, entry, 'debug', 'camerata'));
  }
  const found = candidates.filter((c) => fs.existsSync(c));
  found.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  return found[0] || candidates[0];
}
const SECRET = 'NODE_TEST_SECRET';

function tempDir() {
  const base = path.join(ROOT, 'target', 'node-tests');
  fs.mkdirSync(base, { recursive: true });
  return fs.mkdtempSync(path.join(base, 'run-'));
}

/**
 * Starts a server. `opts.dir` keeps the data folder across restarts, `opts.port` reuses a
 * port, `opts.databaseUrl` selects another database, `opts.args` adds flags, `opts.prefix`
 * runs the binary through a command that execs it (so the PID stays the server's),
 * `opts.bin` names another binary of the same build (the tests' second door).
 */
async function startServer(opts = {}) {
  const dir = opts.dir || tempDir();
  const args = ['--port', String(opts.port || 0), '--secret', opts.secret || SECRET, '--data-dir', dir];
  if (opts.databaseUrl) args.push('--database-url', opts.databaseUrl);
  args.push(...(opts.args || []));
  // Suites start servers one after another and Janus may run beside them: the Janus side
  // ports only when a test asks for them (the Janus API stays on the main port's /janus).
  for (const flag of ['--janus-http-port', '--janus-ws-port']) {
    if (!args.includes(flag)) args.push(flag, 'off');
  }
  // Tests stop servers whose webhook receivers may be gone: a short drain (the camerata
  // binary's flag; the tests' second door takes only its own).
  if (!opts.bin && !args.includes('--shutdown-grace')) args.push('--shutdown-grace', '3');
  const prefix = opts.prefix || [];
  const bin = opts.bin ? path.join(path.dirname(findBinary()), opts.bin) : findBinary();
  const command = prefix.length ? prefix[0] : bin;
  const argv = prefix.length ? [...prefix.slice(1), bin, ...args] : args;
  const child = spawn(command, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: 'info', NO_COLOR: '1' },
  });
  let log = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 20000);
    const onData = (chunk) => {
      log += chunk.toString();
      const m = log.match(/listening on 127\.0\.0\.1:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${log}`));
    });
  });
  child.removeAllListeners('exit');
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    dir,
    secret: opts.secret || SECRET,
    pid: child.pid,
    log: () => log,
    /** Stops the server by its PID with `signal` and waits for it to exit. */
    stop(signal = 'SIGTERM') {
      return new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        process.kill(child.pid, signal);
      });
    },
  };
}

/** A free port on 127.0.0.1 (for a process told its port in advance). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** A raw HTTP call with Basic auth (for what the SDK cannot express). */
async function http(server, method, pathname, body, headers = {}) {
  const auth = 'Basic ' + Buffer.from(`OPENVIDUAPP:${server.secret}`).toString('base64');
  const res = await fetch(server.url + pathname, {
    method,
    headers: { authorization: auth, ...(body ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, text, json };
}

module.exports = { startServer, http, freePort, tempDir, SECRET, ROOT };
