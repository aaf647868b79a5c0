'use strict';
// A stopping server (SIGTERM) admits nothing new while it drains: no session, no
// connection, no join (each refused with the API's 503 and a message saying why), `/ready`
// and the health route report it; a webhook receiver that never answers cannot hold the stop
// past CAMERATA_SHUTDOWN_GRACE, and its undelivered events stay queued for the next start.
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const WebSocket = require('ws');
const { startServer, http, tempDir } = require('./support/server');

test('draining: nothing new admitted, readiness reported, the stop bounded by the grace', async () => {
  // A webhook receiver that accepts connections and never answers.
  const sockets = [];
  const silent = net.createServer((s) => sockets.push(s));
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  const dir = tempDir();
  const args = ['--webhook', 'true', '--webhook-endpoint', `http://127.0.0.1:${silent.address().port}/hook`,
    '--shutdown-grace', '3'];
  let server = await startServer({ dir, args });
  try {
    assert.equal((await http(server, 'POST', '/openvidu/api/sessions', { customSessionId: 'early' })).status, 200);
    const conn = await http(server, 'POST', '/openvidu/api/sessions/early/connection', {});
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/openvidu`);
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });

    const started = Date.now();
    let exited = false;
    const stopped = server.stop('SIGTERM').then(() => { exited = true; });
    // Wait for the drain to show.
    let ready;
    for (let i = 0; i < 100; i += 1) {
      ready = await fetch(`${server.url}/ready`);
      if (ready.status === 503) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(ready.status, 503);
    assert.deepEqual(await ready.json(), { status: 'DRAINING' });
    const health = await http(server, 'GET', '/openvidu/api/health');
    assert.equal(health.status, 503);
    assert.match(health.text, /DRAINING/);
    const created = await http(server, 'POST', '/openvidu/api/sessions', { customSessionId: 'late' });
    assert.equal(created.status, 503);
    assert.match(created.json.message, /stopping/);
    const granted = await http(server, 'POST', '/openvidu/api/sessions/early/connection', {});
    assert.equal(granted.status, 503);
    const joined = await new Promise((resolve) => {
      ws.on('message', (m) => resolve(JSON.parse(m.toString())));
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'joinRoom',
        params: { token: conn.json.token, session: 'early', platform: 'node', metadata: '' } }));
    });
    assert.equal(joined.error.code, 503, JSON.stringify(joined));
    assert.match(joined.error.message, /stopping/);

    await stopped;
    const took = Date.now() - started;
    assert.ok(exited && took < 8000, `the stop took ${took} ms with a grace of 3 s`);
    assert.match(server.log(), /grace ran out/);

    // The session (and its connection) are kept; the undelivered events wait in the outbox.
    server = await startServer({ dir, args: ['--shutdown-grace', '1'] });
    const kept = await http(server, 'GET', '/openvidu/api/sessions/early?pendingConnections=true');
    assert.equal(kept.status, 200);
    assert.equal(kept.json.connections.numberOfElements, 1);
  } finally {
    await server.stop();
    for (const s of sockets) s.destroy();
    silent.close();
  }
});
