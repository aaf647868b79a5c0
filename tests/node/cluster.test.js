'use strict';
// Three Camerata nodes on loopback sharing one PostgreSQL database (cluster mode): the real
// openvidu-node-client pointed at node 1 creates sessions that land on all three by load,
// and every node's REST API serves every session; participants join the node their token
// names; a REST call on node 3 moves a participant of node 2; a SIGKILL of node 2: its
// participants leave with `nodeCrashed`, its undelivered webhook events arrive once from a
// survivor, new sessions go to the survivors, its pending tokens are accepted there.
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const WebSocket = require('ws');
const { OpenVidu, OpenViduRole } = require('openvidu-node-client');
const { startServer, http: rest, tempDir } = require('./support/server');

const BASE = process.env.CAMERATA_TEST_PG_URL;

/** A fresh database on the test PostgreSQL, its URL. */
function freshDatabase(name) {
  const psql = fs.readdirSync('/usr/lib/postgresql').sort().reverse()
    .map((v) => `/usr/lib/postgresql/${v}/bin/psql`).find((p) => fs.existsSync(p));
  execFileSync(psql, [BASE, '-q', '-c', `DROP DATABASE IF EXISTS ${name}`, '-c', `CREATE DATABASE ${name}`],
    { env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' } });
  return BASE.replace(/\/[^/]*$/, `/${name}`);
}

/** A webhook receiver that refuses (500) while `blocked`, and keeps every event it took. */
async function hookReceiver() {
  const events = [];
  const ids = [];
  const state = { blocked: false };
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c) => { text += c; });
    req.on('end', () => {
      if (state.blocked) { res.statusCode = 500; return res.end(); }
      events.push(JSON.parse(text));
      ids.push(req.headers['x-camerata-event-id']);
      res.end();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const close = () => new Promise((r) => { server.close(r); server.closeAllConnections(); });
  return { url: `http://127.0.0.1:${server.address().port}/hook`, events, ids, state, close };
}

async function until(what, check, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A participant joined over the signaling socket of the node its token names. */
async function join(token) {
  const url = new URL(token.replace(/^ws/, 'http'));
  const ws = new WebSocket(`ws://${url.host}/openvidu`);
  const messages = [];
  ws.on('message', (m) => messages.push(JSON.parse(m.toString())));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'joinRoom',
    params: { token, session: url.searchParams.get('sessionId'), platform: 'node', metadata: '' } }));
  const answer = await until('the join answer', () => messages.find((m) => m.id === 1));
  return { ws, messages, answer, port: Number(url.port) };
}

async function cluster(t, name, hook) {
  const databaseUrl = freshDatabase(name);
  const nodes = [];
  for (const i of [1, 2, 3]) {
    const args = ['--cluster', 'true', '--node-id', `node${i}`, '--cluster-lease', '3',
      '--webhook', 'true', '--webhook-endpoint', hook.url];
    nodes.push(await startServer({ dir: tempDir(), databaseUrl, args }));
  }
  t.after(async () => { for (const n of nodes) await n.stop('SIGKILL'); });
  return nodes;
}

test('cluster: placement by load, every node serves every session, tokens name the owner', async (t) => {
  if (!BASE) {
    if (process.env.CI) assert.fail('CAMERATA_TEST_PG_URL must be set in CI');
    return t.skip('CAMERATA_TEST_PG_URL is not set');
  }
  const hook = await hookReceiver();
  t.after(() => hook.close());
  const nodes = await cluster(t, 'camerata_cluster_a', hook);
  const ov = new OpenVidu(nodes[0].url, nodes[0].secret);
  ov.enableProdMode();

  const sessions = [];
  for (let i = 0; i < 6; i += 1) sessions.push(await ov.createSession());
  const ports = [];
  for (const s of sessions) {
    const c = await s.createConnection({ role: OpenViduRole.PUBLISHER });
    ports.push(Number(new URL(c.token.replace(/^ws/, 'http')).port));
  }
  const byPort = {};
  for (const p of ports) byPort[p] = (byPort[p] || 0) + 1;
  assert.deepEqual(Object.keys(byPort).map(Number).sort(), nodes.map((n) => n.port).sort(),
    `the sessions spread over the three nodes: ${JSON.stringify(byPort)}`);
  assert.deepEqual(Object.values(byPort), [2, 2, 2]);

  // Every node lists the whole cluster.
  for (const n of nodes) {
    const list = await rest(n, 'GET', '/openvidu/api/sessions');
    assert.equal(list.status, 200);
    assert.equal(list.json.numberOfElements, 6);
    assert.deepEqual(list.json.content.map((s) => s.id).sort(), sessions.map((s) => s.sessionId).sort());
  }

  // A participant on node 2, moved by a REST call on node 3 through the node client.
  const on2 = sessions[ports.indexOf(nodes[1].port)];
  const granted = await on2.createConnection({ data: 'moved' });
  const p = await join(granted.token);
  assert.ok(p.answer.result, JSON.stringify(p.answer));
  assert.equal(p.port, nodes[1].port);
  const ov3 = new OpenVidu(nodes[2].url, nodes[2].secret);
  ov3.enableProdMode();
  await ov3.fetch();
  const seen = ov3.activeSessions.find((s) => s.sessionId === on2.sessionId);
  assert.ok(seen, 'node 3 lists the session of node 2');
  const active = seen.activeConnections.find((c) => c.connectionId === granted.connectionId);
  assert.ok(active, 'node 3 sees the participant of node 2');
  // A signal sent through node 1 reaches the participant on node 2.
  const signal = await rest(nodes[0], 'POST', '/openvidu/api/signal',
    { session: on2.sessionId, type: 'hello', data: 'across' });
  assert.equal(signal.status, 200, signal.text);
  await until('the signal', () => p.messages.find((m) => m.method === 'sendMessage'));
  await seen.forceDisconnect(active);
  await until('the eviction', () => p.messages.find((m) => m.method === 'participantEvicted'));
  p.ws.close();
  const left = await until('participantLeft', () => hook.events.find((e) => e.event === 'participantLeft'));
  assert.equal(left.reason, 'forceDisconnectByServer');

  // A session that does not exist is 404 on every node; a foreign signature is refused.
  for (const n of nodes) assert.equal((await rest(n, 'GET', '/openvidu/api/sessions/nowhere')).status, 404);
  const forged = await rest(nodes[0], 'GET', `/openvidu/api/sessions/${on2.sessionId}`, undefined,
    { 'x-camerata-node': `node2 ${Date.now()} ${'00'.repeat(32)}` });
  assert.equal(forged.status, 401);
  assert.match(forged.text, /not signed by this cluster/);
});

test('cluster: a node killed mid-call is taken over by a survivor', async (t) => {
  if (!BASE) {
    if (process.env.CI) assert.fail('CAMERATA_TEST_PG_URL must be set in CI');
    return t.skip('CAMERATA_TEST_PG_URL is not set');
  }
  const hook = await hookReceiver();
  t.after(() => hook.close());
  const nodes = await cluster(t, 'camerata_cluster_b', hook);
  // Two sessions on each node, created through node 1.
  const made = [];
  for (let i = 0; i < 6; i += 1) {
    const r = await rest(nodes[0], 'POST', '/openvidu/api/sessions', {});
    assert.equal(r.status, 200, r.text);
    const c = await rest(nodes[0], 'POST', `/openvidu/api/sessions/${r.json.id}/connection`, {});
    made.push({ id: r.json.id, token: c.json.token, port: Number(new URL(c.json.token.replace(/^ws/, 'http')).port) });
  }
  const mine = made.filter((m) => m.port === nodes[1].port);
  assert.equal(mine.length, 2);
  // On node 2: a call in one session (its only grant used), a pending token in the other.
  hook.state.blocked = true;
  const [inCall, pending] = mine;
  const p = await join(inCall.token);
  assert.ok(p.answer.result, JSON.stringify(p.answer));
  await until('node 2 to hold an undelivered event', async () => {
    const s = await rest(nodes[1], 'GET', `/openvidu/api/sessions/${inCall.id}`);
    return s.json && s.json.connections.numberOfElements === 1;
  });
  await nodes[1].stop('SIGKILL');
  p.ws.terminate();
  hook.state.blocked = false;

  // A survivor takes the rooms (lease 3 s): the call's participant left with nodeCrashed,
  // its room closed, the pending token's room kept with its grant.
  const destroyed = await until('sessionDestroyed of the call', () =>
    hook.events.find((e) => e.event === 'sessionDestroyed' && e.sessionId === inCall.id), 30000);
  assert.equal(destroyed.reason, 'nodeCrashed');
  const left = hook.events.find((e) => e.event === 'participantLeft' && e.sessionId === inCall.id);
  assert.ok(left, 'participantLeft delivered');
  assert.equal(left.reason, 'nodeCrashed');
  // Node 2's own events (created, joined) came from the survivor, before those, once each.
  const joined = hook.events.findIndex((e) => e.event === 'participantJoined' && e.sessionId === inCall.id);
  assert.ok(joined >= 0 && joined < hook.events.indexOf(left), 'in order');
  const counts = {};
  for (const id of hook.ids) counts[id] = (counts[id] || 0) + 1;
  assert.deepEqual(Object.entries(counts).filter(([, n]) => n > 1), [], 'no event delivered twice');

  const live = [nodes[0], nodes[2]];
  const listed = await rest(nodes[0], 'GET', '/openvidu/api/sessions?pendingConnections=true');
  const kept = listed.json.content.find((s) => s.id === pending.id);
  assert.ok(kept, 'the room with a pending token lives on a survivor');
  assert.ok(!listed.json.content.some((s) => s.id === inCall.id), 'the crashed call ended');
  assert.equal(kept.connections.numberOfElements, 1);
  // Its pending token joins on the survivor that has the room now.
  let survivor;
  for (const n of live) {
    const r = await fetch(`${n.url}/openvidu/api/sessions/${pending.id}`, {
      headers: { authorization: 'Basic ' + Buffer.from(`OPENVIDUAPP:${n.secret}`).toString('base64') },
    });
    assert.equal(r.status, 200);
  }
  for (const n of live) {
    const again = await join(pending.token.replace(`:${nodes[1].port}`, `:${n.port}`));
    if (again.answer.result) { survivor = n; again.ws.close(); break; }
    again.ws.close();
  }
  assert.ok(survivor, 'the pending token was accepted on a survivor');

  // New sessions go to the survivors only.
  for (let i = 0; i < 4; i += 1) {
    const r = await rest(nodes[2], 'POST', '/openvidu/api/sessions', {});
    const c = await rest(nodes[2], 'POST', `/openvidu/api/sessions/${r.json.id}/connection`, {});
    const port = Number(new URL(c.json.token.replace(/^ws/, 'http')).port);
    assert.ok(live.some((n) => n.port === port), `a new session on ${port}`);
  }
});
