'use strict';
// What the OpenTok door's suites share: a server serving two OpenTok projects and a Vonage
// application (its RSA key pair made here), the SDK clients pointed at it, and a raw
// JSON-RPC client of the OpenVidu signaling that joins with an SDK's token the way
// openvidu-browser does (the token inside a ws:// URL).
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const WebSocket = require('ws');
const { startServer, tempDir } = require('./server');

// Secrets of the service's shape (40 hexadecimal characters).
const PROJECT = { key: '47000001', secret: '6d0c1a5b2f3e4d5c6b7a8f9e0d1c2b3a4f5e6d7c' };
const OTHER = { key: '47000002', secret: '0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c' };
const APP_ID = '0b7c9a5e-1234-4cde-8f00-0123456789ab';

/** An RSA key pair for the Vonage application: the private key for the SDK, the public one
 * written where the server reads it. */
function vonageKeys(dir) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pub = path.join(dir, 'vonage-app.pub');
  fs.writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  return { privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }), publicKeyPath: pub };
}

/** A server with both projects and the application, plus `args`. */
async function openTokServer(args = []) {
  const dir = tempDir();
  const keys = vonageKeys(dir);
  const server = await startServer({
    dir,
    args: [
      '--opentok-project', `${PROJECT.key}:${PROJECT.secret}`,
      '--opentok-project', `${OTHER.key}:${OTHER.secret}`,
      '--vonage-application', `${APP_ID}=${keys.publicKeyPath}`,
      ...args,
    ],
  });
  return { server, vonagePrivateKey: keys.privateKey };
}

/** The token URL openvidu-browser is given for an OpenTok session and an SDK's token. */
function tokenUrl(server, sessionId, token) {
  return `ws://127.0.0.1:${server.port}?sessionId=${sessionId}&token=${encodeURIComponent(token)}`;
}

/** Joins `sessionId` over the OpenVidu JSON-RPC signaling with an SDK's `token`. Resolves with
 * the joinRoom response (result or error), the notifications as they come, `call` and `close`. */
async function rpcJoin(server, sessionId, token) {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/openvidu`);
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const notes = [];
  const waiting = new Map();
  let next = 0;
  ws.on('message', (raw) => {
    const msg = JSON.parse(raw.toString());
    if (msg.method) notes.push(msg);
    else if (waiting.has(msg.id)) { waiting.get(msg.id)(msg); waiting.delete(msg.id); }
  });
  const call = (method, params) => new Promise((resolve) => {
    next += 1;
    waiting.set(next, resolve);
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: next, method, params }));
  });
  const joined = await call('joinRoom', {
    token: tokenUrl(server, sessionId, token), session: sessionId, platform: 'node test', metadata: '{}',
  });
  const closed = new Promise((resolve) => ws.once('close', resolve));
  return {
    joined,
    notes,
    call,
    async close() { ws.close(); await closed; },
    /** Waits for a notification `method` matching `pred`. */
    async note(method, pred = () => true) {
      for (let i = 0; i < 100; i += 1) {
        const found = notes.find((n) => n.method === method && pred(n.params));
        if (found) return found.params;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`no ${method} notification: ${JSON.stringify(notes)}`);
    },
  };
}

/** Node-style callback call as a promise. */
function cb(f) {
  return new Promise((resolve, reject) => f((err, value) => (err ? reject(err) : resolve(value))));
}

/** Runs `f` with the clock `shiftMs` away (so an SDK mints a token that is already expired). */
function atTime(shiftMs, f) {
  const RealDate = Date;
  class Shifted extends RealDate {
    constructor(...a) { if (a.length) super(...a); else super(RealDate.now() + shiftMs); }
    static now() { return RealDate.now() + shiftMs; }
  }
  global.Date = Shifted;
  try { return f(); } finally { global.Date = RealDate; }
}

module.exports = { PROJECT, OTHER, APP_ID, openTokServer, tokenUrl, rpcJoin, cb, atTime };
