'use strict';
// The callback API of the original openvidu-node-client (1.x), as the npm package `camerata`
// provides it, against the `camerata` binary and against the embedded server.
const test = require('node:test');
const assert = require('node:assert/strict');
const { OpenVidu, TokenOptions, OpenViduRole, CamerataError, startServer: startEmbedded } = require('camerata');
const { startServer, http } = require('./support/server');

const TOKEN_RE = /^ws:\/\/127\.0\.0\.1:\d+\?sessionId=ses_[A-Za-z0-9]+&token=tok_[A-Za-z0-9_.-]+$/;

/** Calls `fn(callback)` and resolves with the arguments the callback got. */
function viaCallback(fn) {
  return new Promise((resolve) => fn((...args) => resolve(args)));
}

async function seedFlow(server) {
  const OV = new OpenVidu(server.url, server.secret);
  const session = OV.createSession();
  // getSessionId(callback): the id is the callback's first argument.
  const [sessionId, noError] = await viaCallback((cb) => session.getSessionId(cb));
  assert.match(sessionId, /^ses_/);
  assert.equal(noError, undefined);
  // Once known, the callback is called at once with the same id.
  let sync;
  session.getSessionId((id) => { sync = id; });
  assert.equal(sync, sessionId);
  assert.equal(await session.getSessionId(), sessionId, 'a Promise without a callback');

  // generateToken(callback): default options, PUBLISHER with empty data.
  const [token] = await viaCallback((cb) => session.generateToken(cb));
  assert.match(token, TOKEN_RE);
  // generateToken(tokenOptions, callback)
  const opts = new TokenOptions.Builder().data('alice').role(OpenViduRole.SUBSCRIBER).build();
  assert.equal(opts.getData(), 'alice');
  assert.equal(opts.getRole(), 'SUBSCRIBER');
  const [token2] = await viaCallback((cb) => session.generateToken(opts, cb));
  assert.match(token2, TOKEN_RE);
  const promised = await session.generateToken(
    new TokenOptions.Builder().role(OpenViduRole.PUBLISHER_ONLY).build(),
  );
  assert.match(promised, TOKEN_RE);

  // The server has them as pending connections with those roles and data.
  const res = await http(server, 'GET', `/openvidu/api/sessions/${sessionId}/connection`);
  const byToken = Object.fromEntries(res.json.content.map((c) => [c.token, c]));
  assert.equal(byToken[token].role, 'PUBLISHER');
  assert.equal(byToken[token].serverData, '');
  assert.equal(byToken[token2].role, 'SUBSCRIBER');
  assert.equal(byToken[token2].serverData, 'alice');
  assert.equal(byToken[promised].role, 'PUBLISHER_ONLY');
}

test('seed API against the camerata binary', async () => {
  const server = await startServer();
  try {
    await seedFlow(server);
  } finally {
    await server.stop();
  }
});

test('seed API against the embedded server', async () => {
  const server = await startEmbedded();
  try {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(server.secret.length > 8);
    await seedFlow(server);
  } finally {
    await server.stop();
  }
  await server.stop(); // a second stop does nothing
  await assert.rejects(fetch(`${server.url}/openvidu/api/config`), 'the port is closed after stop');
});

test('embedded server on a chosen port and folder keeps its state across restarts', async () => {
  const fs = require('node:fs');
  const path = require('node:path');
  const dir = fs.mkdtempSync(path.join(require('./support/server').ROOT, 'target', 'embedded-'));
  let server = await startEmbedded({ dataDir: dir, secret: 'EMBED_SECRET' });
  const port = server.port;
  const s = new OpenVidu(server.url, 'EMBED_SECRET').createSession({ customSessionId: 'kept-room' });
  assert.equal(await s.getSessionId(), 'kept-room');
  await server.stop();
  server = await startEmbedded({ dataDir: dir, secret: 'EMBED_SECRET', port });
  try {
    assert.equal(server.port, port);
    const res = await http(server, 'GET', '/openvidu/api/sessions/kept-room');
    assert.equal(res.status, 200);
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('concurrent first calls create one session', async () => {
  const server = await startEmbedded();
  try {
    const session = new OpenVidu(server.url, server.secret).createSession();
    const ids = await Promise.all([session.getSessionId(), session.getSessionId(), session.generateToken()]);
    assert.equal(ids[0], ids[1]);
    const list = await http(server, 'GET', '/openvidu/api/sessions');
    assert.equal(list.json.numberOfElements, 1);
  } finally {
    await server.stop();
  }
});

test('errors reach the caller: callback second argument, or a rejected Promise', async () => {
  const server = await startEmbedded();
  try {
    // Wrong secret.
    const bad = new OpenVidu(server.url, 'WRONG').createSession();
    const [value, err] = await viaCallback((cb) => bad.getSessionId(cb));
    assert.equal(value, undefined);
    assert.ok(err instanceof CamerataError);
    assert.equal(err.status, 401);
    assert.match(err.message, /401/);
    await assert.rejects(bad.generateToken(), (e) => e instanceof CamerataError && e.status === 401);

    // A session closed on the server: generating a token for it is a 404.
    const session = new OpenVidu(server.url, server.secret).createSession();
    const id = await session.getSessionId();
    assert.equal((await http(server, 'DELETE', `/openvidu/api/sessions/${id}`)).status, 204);
    const [none, gone] = await viaCallback((cb) => session.generateToken(cb));
    assert.equal(none, undefined);
    assert.equal(gone.status, 404);
    assert.match(gone.message, /not found/);

    // Over-long data is refused before anything is sent.
    assert.throws(
      () => new TokenOptions.Builder().data('x'.repeat(1001)).build(),
      /limited to 1000 characters/,
    );
    assert.throws(() => new TokenOptions.Builder().role('KING').build(), /unknown role 'KING'/);
    const ok = new TokenOptions.Builder().data('é'.repeat(1000)).build();
    assert.equal(ok.getData().length, 1000);

    // Malformed options object.
    await assert.rejects(session.generateToken({ data: 'x' }), /TokenOptions.Builder/);
  } finally {
    await server.stop();
  }
  // An unreachable server: an error with no status that says so.
  const lost = new OpenVidu('http://127.0.0.1:9', 'S').createSession();
  const [v, e] = await viaCallback((cb) => lost.getSessionId(cb));
  assert.equal(v, undefined);
  assert.equal(e.status, undefined);
  assert.match(e.message, /cannot reach the server/);
  // A URL that is not http(s).
  assert.throws(() => new OpenVidu('ftp://example.org', 'S'), /not http\(s\):\/\/host/);
});

test('the seed\'s one-parameter callbacks: called with the value only, failures reject the returned Promise', async () => {
  const server = await startEmbedded();
  try {
    const session = new OpenVidu(server.url, server.secret).createSession();
    let got;
    const id = await session.getSessionId((sessionId) => { got = sessionId; });
    await new Promise((r) => setImmediate(r));
    assert.equal(got, id, 'the callback and the Promise carry the same id');
    const token = await session.generateToken(new TokenOptions.Builder().build(), (t) => { got = t; });
    await new Promise((r) => setImmediate(r));
    assert.equal(got, token);
    assert.match(token, TOKEN_RE);

    // A failure: the one-parameter callback is never called with undefined; the Promise
    // rejects with the CamerataError.
    const bad = new OpenVidu(server.url, 'WRONG').createSession();
    const calls = [];
    await assert.rejects(bad.getSessionId((sessionId) => calls.push(sessionId)),
      (e) => e instanceof CamerataError && e.status === 401);
    await assert.rejects(bad.generateToken((t) => calls.push(t)), (e) => e.status === 401);
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(calls, []);
    // A two-parameter callback gets (undefined, error), and its Promise does not reject.
    let second;
    const settled = await bad.generateToken((t, e) => { second = [t, e]; });
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, undefined);
    assert.equal(second[0], undefined);
    assert.equal(second[1].status, 401);
  } finally {
    await server.stop();
  }
});

test('TokenOptions.Builder defaults and shape', () => {
  const t = new TokenOptions.Builder().build();
  assert.equal(t.getData(), '');
  assert.equal(t.getRole(), 'PUBLISHER');
  assert.ok(t instanceof TokenOptions);
  assert.deepEqual(Object.keys(OpenViduRole), ['SUBSCRIBER', 'PUBLISHER', 'MODERATOR', 'PUBLISHER_ONLY']);
});
