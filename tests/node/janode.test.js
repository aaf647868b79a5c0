'use strict';
// The Janus door with the real janode 1.8.0 (the Node client Janus backends use), over its
// WebSocket transport on the main port: server info, a session, VideoRoom handles managing a
// room, a publisher joining it and another seeing it through events, the errors janode turns
// into rejected promises, and the room gone for the OpenVidu REST API once destroyed.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, http } = require('./support/server');

test('janode drives the VideoRoom plugin: rooms, publishers, their events and errors', async () => {
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

    const created = await handle.create({ room: 4242, description: 'janode room', max_publishers: 4, secret: 's3' });
    assert.equal(created.room, 4242);
    assert.equal((await handle.exists({ room: 4242 })).exists, true);
    const listed = (await handle.list()).list.find((r) => r.room === 4242);
    assert.equal(listed.description, 'janode room');
    assert.equal(listed.max_publishers, 4);
    // VideoRoom errors reach janode as rejected promises with the plugin's code.
    await assert.rejects(handle.create({ room: 4242 }), (e) => e._code === 427);
    await assert.rejects(handle.destroy({ room: 4242, secret: 'wrong' }), (e) => e._code === 433);
    await assert.rejects(handle.joinPublisher({ room: 9999 }), (e) => e._code === 426);

    // A publisher joins; a second one joining is seen in the first one's participants list.
    const alice = await session.attach(VideoRoomPlugin);
    const joined = await alice.joinPublisher({ room: 4242, feed: 7001, display: 'alice' });
    assert.equal(joined.feed, 7001);
    assert.deepEqual(joined.publishers, []);
    assert.ok(Number.isSafeInteger(joined.private_id));
    const bob = await session.attach(VideoRoomPlugin);
    await bob.joinPublisher({ room: 4242, feed: 7002, display: 'bob' });
    const participants = await handle.listParticipants({ room: 4242 });
    assert.deepEqual(participants.participants.map((p) => p.feed).sort(), [7001, 7002]);
    await assert.rejects(bob.joinPublisher({ room: 4242 }), (e) => e._code === 425);
    // The OpenVidu REST API sees both in session "4242".
    const ov = await http(server, 'GET', '/openvidu/api/sessions/4242');
    assert.deepEqual(ov.json.connections.content.map((c) => c.clientData).sort(), ['alice', 'bob']);
    // Bob leaves: alice hears of it.
    const left = new Promise((resolve) => alice.once(VideoRoomPlugin.EVENT.VIDEOROOM_LEAVING, resolve));
    await bob.leave();
    assert.equal((await left).feed, 7002);

    const destroyed = new Promise((resolve) => alice.once(VideoRoomPlugin.EVENT.VIDEOROOM_DESTROYED, resolve));
    await handle.destroy({ room: 4242, secret: 's3' });
    assert.equal((await destroyed).room, 4242);
    assert.equal((await http(server, 'GET', '/openvidu/api/sessions/4242')).status, 404);

    await handle.detach();
    await session.destroy();
  } finally {
    if (connection) await connection.close().catch(() => {});
    await server.stop();
  }
});
