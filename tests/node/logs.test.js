'use strict';
// `--log-format json`: every line the server writes is one JSON object; a join, a publish
// attempt and a leave are logged with the room and participant ids as fields; neither the
// REST secret, nor a token, nor an OpenTok project secret ever appears in the logs.
const test = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startServer, http } = require('./support/server');

test('JSON logs: one object per line, ids as fields, no secrets or tokens', async () => {
  const projectSecret = '6d0c1a5b2f3e4d5c6b7a8f9e0d1c2b3a4f5e6d7c';
  const server = await startServer({
    args: ['--log-format', 'json', '--opentok-project', `47000001:${projectSecret}`],
  });
  try {
    const session = await http(server, 'POST', '/openvidu/api/sessions', { customSessionId: 'logged' });
    assert.equal(session.status, 200);
    const conn = await http(server, 'POST', '/openvidu/api/sessions/logged/connection', { data: 'd' });
    const token = conn.json.token;
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/openvidu`);
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    const reply = (id) => new Promise((resolve) => ws.on('message', (m) => {
      const msg = JSON.parse(m.toString());
      if (msg.id === id) resolve(msg);
    }));
    const joined = reply(1);
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'joinRoom', params: { token, session: 'logged', platform: 'node', metadata: '' } }));
    const me = (await joined).result.id;
    const left = reply(2);
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'leaveRoom', params: {} }));
    await left;
    ws.close();
    // A refused REST call with a wrong secret, for the record.
    const res = await fetch(`${server.url}/openvidu/api/sessions`, {
      headers: { authorization: 'Basic ' + Buffer.from('OPENVIDUAPP:guess').toString('base64') },
    });
    assert.equal(res.status, 401);
    await new Promise((r) => setTimeout(r, 200));

    const lines = server.log().split('\n').filter((l) => l.trim());
    const objects = lines.map((l) => {
      try { return JSON.parse(l); } catch { assert.fail(`not a JSON line: ${l}`); }
      return null;
    });
    for (const o of objects) {
      assert.ok(o.timestamp && o.level && o.message !== undefined, JSON.stringify(o));
    }
    const join = objects.find((o) => o.message === 'joined');
    assert.ok(join, 'a join is logged');
    assert.equal(join.room, 'logged');
    assert.equal(join.participant, me);
    const removed = objects.find((o) => o.message === 'participant removed');
    assert.equal(removed.room, 'logged');
    assert.equal(removed.participant, me);
    const text = server.log();
    for (const secret of [server.secret, projectSecret, token, token.split('token=')[1], 'guess']) {
      assert.ok(!text.includes(secret), `the logs hold a secret or a token: ${secret.slice(0, 12)}…`);
    }
  } finally {
    await server.stop();
  }
});
