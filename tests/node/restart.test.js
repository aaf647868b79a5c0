'use strict';
// A server killed with SIGKILL and started again keeps its sessions and tokens: on SQLite,
// and on PostgreSQL when the test command provides one.
const test = require('node:test');
const assert = require('node:assert/strict');
const { OpenVidu, OpenViduRole } = require('openvidu-node-client');
const { startServer, tempDir } = require('./support/server');

async function crashAndRestart(databaseUrl) {
  const dir = tempDir();
  let server = await startServer({ dir, databaseUrl });
  let ov = new OpenVidu(server.url, server.secret);
  ov.enableProdMode();
  const s = await ov.createSession({ customSessionId: `crash-${Date.now()}` });
  const c = await s.createConnection({ role: OpenViduRole.MODERATOR, data: 'kept' });
  const token = await s.generateToken({ role: OpenViduRole.SUBSCRIBER });
  const revoked = await s.createConnection();
  await s.forceDisconnect(revoked);
  // No graceful shutdown: every acknowledged write must already be on disk.
  await server.stop('SIGKILL');

  server = await startServer({ dir, databaseUrl, port: server.port });
  ov = new OpenVidu(server.url, server.secret);
  ov.enableProdMode();
  try {
    await ov.fetch();
    const again = ov.activeSessions.find((x) => x.sessionId === s.sessionId);
    assert.ok(again, 'the session survived');
    assert.equal(again.createdAt, s.createdAt);
    const byId = Object.fromEntries(again.connections.map((x) => [x.connectionId, x]));
    assert.equal(again.connections.length, 2, 'two pending connections, the revoked one gone');
    assert.equal(byId[c.connectionId].token, c.token, 'the same token is still valid');
    assert.equal(byId[c.connectionId].serverData, 'kept');
    assert.equal(byId[c.connectionId].connectionProperties.role, OpenViduRole.MODERATOR);
    assert.ok(again.connections.some((x) => x.token === token));
    assert.ok(!byId[revoked.connectionId]);
    // The restarted server keeps issuing tokens for it.
    const more = await again.createConnection();
    assert.equal(more.status, 'pending');
  } finally {
    await server.stop();
  }
}

test('SIGKILL and restart on SQLite keeps sessions and tokens', async () => {
  await crashAndRestart(undefined);
});

test('SIGKILL and restart on PostgreSQL keeps sessions and tokens', async (t) => {
  const url = process.env.CAMERATA_TEST_PG_NODE_URL;
  if (!url) {
    if (process.env.CI) assert.fail('CAMERATA_TEST_PG_NODE_URL must be set in CI');
    t.skip('CAMERATA_TEST_PG_NODE_URL is not set');
    return;
  }
  await crashAndRestart(url);
});
