'use strict';
// Webhook events of a real browser session: openvidu-browser in headless Chromium joins,
// publishes, subscribes, signals and leaves, and an HTTP receiver on 127.0.0.1 gets exactly
// the expected sequence, with the keys of the OpenVidu CE catalogue.
const test = require('node:test');
const assert = require('node:assert/strict');
const { launch, receiver, staticServer, waitFor } = require('./support');
const { startServer, http: rest } = require('../node/support/server');

const sortedKeys = (o) => Object.keys(o).sort();

test('a browser session produces the expected webhook events in order', async () => {
  const hook = await receiver();
  const camerata = await startServer({ args: ['--webhook', 'true', '--webhook-endpoint', hook.url] });
  const site = await staticServer();
  const { browser, cleanup } = await launch();
  try {
    const sid = (await rest(camerata, 'POST', '/openvidu/api/sessions', { customSessionId: 'hooked-browser' })).json.id;
    const token = async () => (await rest(camerata, 'POST', `/openvidu/api/sessions/${sid}/connection`, { role: 'PUBLISHER' })).json.token;
    const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
    const url = `http://127.0.0.1:${site.address().port}/`;
    const ann = await context.newPage();
    await ann.goto(url);
    const annId = await ann.evaluate(async (t) => window.ovJoin(t, 'ann'), await token());
    await hook.count(2);
    const streamId = await ann.evaluate(() => window.ovPublish());
    await hook.count(3);

    const bob = await context.newPage();
    await bob.goto(url);
    await bob.evaluate(() => { window.autoSubscribe = true; });
    const bobId = await bob.evaluate(async (t) => window.ovJoin(t, 'bob'), await token());
    await hook.count(5);
    await bob.evaluate(() => window.ovSignal({ data: 'hello', type: 'chat' }));
    await hook.count(6);

    await bob.evaluate(() => window.session.disconnect());
    await hook.count(8);
    await ann.evaluate(() => window.session.disconnect());
    const events = await hook.count(11);

    assert.deepEqual(events.map((e) => e.event), [
      'sessionCreated',
      'participantJoined',
      'webrtcConnectionCreated',
      'participantJoined',
      'webrtcConnectionCreated',
      'signalSent',
      'webrtcConnectionDestroyed',
      'participantLeft',
      'webrtcConnectionDestroyed',
      'participantLeft',
      'sessionDestroyed',
    ]);
    const [created, annJoined, annOut, bobJoined, bobIn, signal, bobInEnd, bobLeft, annOutEnd, annLeft, destroyed] = events;
    for (const e of events) {
      assert.equal(e.sessionId, sid);
      assert.equal(e.uniqueSessionId, `${sid}_${created.timestamp}`);
    }
    // Member counts of the CE catalogue (plus `event`).
    assert.equal(sortedKeys(created).length, 4);
    assert.equal(sortedKeys(annJoined).length, 11);
    assert.equal(annJoined.connectionId, annId);
    assert.equal(annJoined.clientData, JSON.stringify({ clientData: 'ann' }));
    assert.ok(annJoined.platform.length > 0, 'the browser described itself');
    assert.equal(bobJoined.connectionId, bobId);

    assert.deepEqual(sortedKeys(annOut), ['audioEnabled', 'connection', 'connectionId', 'event', 'participantId',
      'sessionId', 'streamId', 'timestamp', 'uniqueSessionId', 'videoDimensions', 'videoEnabled',
      'videoFramerate', 'videoSource']);
    assert.equal(annOut.connection, 'OUTBOUND');
    assert.equal(annOut.streamId, streamId);
    assert.equal(annOut.connectionId, annId);
    assert.equal(annOut.videoSource, 'CAMERA');
    assert.equal(annOut.audioEnabled, true);

    assert.equal(bobIn.connection, 'INBOUND');
    assert.equal(bobIn.connectionId, bobId);
    assert.equal(bobIn.receivingFrom, annId);
    assert.equal(bobIn.streamId, streamId);
    assert.equal(sortedKeys(bobIn).length, 14);

    assert.equal(signal.from, bobId);
    assert.deepEqual(signal.to.sort(), [annId, bobId].sort());
    assert.equal(signal.type, 'chat');
    assert.equal(signal.data, 'hello');

    assert.equal(bobInEnd.connection, 'INBOUND');
    assert.equal(bobInEnd.reason, 'disconnect');
    assert.equal(bobInEnd.startTime, bobIn.timestamp);
    assert.ok(Number.isInteger(bobInEnd.duration));
    assert.equal(bobLeft.connectionId, bobId);
    assert.equal(bobLeft.reason, 'disconnect');
    assert.equal(sortedKeys(bobLeft).length, 14);
    assert.equal(annOutEnd.connection, 'OUTBOUND');
    assert.equal(annOutEnd.reason, 'disconnect');
    assert.equal(annOutEnd.startTime, annOut.timestamp);
    assert.equal(annLeft.connectionId, annId);
    assert.equal(destroyed.reason, 'lastParticipantLeft');
    assert.equal(destroyed.startTime, created.timestamp);
    assert.equal(sortedKeys(destroyed).length, 7);

    // Each request carried a distinct event id.
    const ids = new Set(hook.bodies.map((b) => b.headers['x-camerata-event-id']));
    assert.equal(ids.size, 11);
    await context.close();
  } finally {
    await cleanup();
    site.close();
    await camerata.stop();
    await hook.close();
  }
});
