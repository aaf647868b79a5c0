'use strict';
// The Janus door with the real janode 1.8.0 (the Node client Janus backends use), over its
// WebSocket transport on the main port: server info, a session, a VideoRoom handle, and a
// VideoRoom request answered with the error that names what is not served yet.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./support/server');

test('janode connects, creates a session, attaches a VideoRoom handle and detaches', async () => {
  const { default: Janode } = await import('janode');
  const { default: VideoRoomPlugin } = await import('janode/plugins/videoroom');
  const server = await startServer();
  let connection;
  try {
    connection = await Janode.connect({
      address: { url: `ws://127.0.0.1:${server.port}/janus` },
      max_retries: 1,
    });
    const info = await connection.getInfo();
    assert.equal(info.version_string, '1.1.2');
    assert.ok(info.plugins['janus.plugin.videoroom'], 'the VideoRoom plugin is listed');

    const session = await connection.create();
    assert.ok(Number.isSafeInteger(session.id) && session.id > 0, `a 53-bit id: ${session.id}`);
    const handle = await session.attach(VideoRoomPlugin);
    assert.ok(Number.isSafeInteger(handle.id) && handle.id > 0);

    // Not served yet: the request fails with Janus's error, which janode surfaces.
    await assert.rejects(handle.list(), (e) => /462/.test(String(e.message || e)));

    await handle.detach();
    await session.destroy();
  } finally {
    if (connection) await connection.close().catch(() => {});
    await server.stop();
  }
});
