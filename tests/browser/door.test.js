'use strict';
// The design test of the call layer: a second, minimal front door (tests/door, a tiny
// JSON-over-WebSocket protocol that only calls camerata_server::calls) and the unmodified
// openvidu-browser in the same room. Ann joins through OpenVidu and publishes; Tia joins
// through the tiny door with a plain RTCPeerConnection, receives Ann's stream (the server
// offers) and publishes her own camera (Tia offers), which Ann's openvidu-browser receives.
const test = require('node:test');
const assert = require('node:assert/strict');
const { launch, staticServer, waitFor } = require('./support');
const { startServer, http: rest } = require('../node/support/server');

// The tiny protocol's client, run inside the page: one socket, requests by `ref`, events
// (`stream`, `gone`) logged in window.tinyEvents.
function tinyClient() {
  window.tinyEvents = [];
  window.tiny = {
    open(url) {
      const ws = new WebSocket(url);
      const waiting = new Map();
      let next = 1;
      ws.onmessage = (m) => {
        const msg = JSON.parse(m.data);
        if (msg.ref !== undefined && waiting.has(msg.ref)) {
          waiting.get(msg.ref)(msg);
          waiting.delete(msg.ref);
        } else {
          window.tinyEvents.push(msg);
        }
      };
      this.call = (req) => new Promise((resolve, reject) => {
        const ref = next++;
        waiting.set(ref, (msg) => (msg.op === 'error' ? reject(new Error(msg.message)) : resolve(msg)));
        ws.send(JSON.stringify({ ...req, ref }));
      });
      return new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
    },
    // Receives `stream`: the server offers, the page answers.
    async subscribe(stream) {
      const offer = await this.call({ op: 'subscribe', stream });
      const pc = new RTCPeerConnection();
      await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await this.call({ op: 'answer', stream, sdp: pc.localDescription.sdp });
      this.received = pc;
    },
    // Publishes the fake camera and microphone: the page offers, the server answers.
    async publish() {
      const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
      const pc = new RTCPeerConnection();
      for (const track of media.getTracks()) pc.addTrack(track, media);
      await pc.setLocalDescription(await pc.createOffer());
      const reply = await this.call({ op: 'publish', sdp: pc.localDescription.sdp, audio: true, video: true });
      await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
      for (const c of reply.candidates) await pc.addIceCandidate(c);
      this.sent = pc;
      return reply.stream;
    },
    async framesDecoded() {
      let frames = 0;
      (await this.received.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded || 0;
      });
      return frames;
    },
  };
}

test('a participant of a second door and an openvidu-browser participant see each other', async () => {
  const camerata = await startServer({ bin: 'camerata-test-door' });
  const site = await staticServer();
  const { browser, cleanup } = await launch();
  try {
    const sid = (await rest(camerata, 'POST', '/openvidu/api/sessions', { customSessionId: 'two-doors' })).json.id;
    const token = (await rest(camerata, 'POST', `/openvidu/api/sessions/${sid}/connection`, { role: 'PUBLISHER' })).json.token;
    const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
    const url = `http://127.0.0.1:${site.address().port}/`;

    const ann = await context.newPage();
    await ann.goto(url);
    await ann.evaluate(() => { window.autoSubscribe = true; });
    const annId = await ann.evaluate((t) => window.ovJoin(t, 'ann'), token);
    const annStream = await ann.evaluate(() => window.ovPublish());

    const tia = await context.newPage();
    await tia.goto(url);
    await tia.evaluate(tinyClient);
    await tia.evaluate((u) => window.tiny.open(u), `ws://127.0.0.1:${camerata.port}/tiny`);
    const joined = await tia.evaluate((room) => window.tiny.call({ op: 'join', room, name: 'tia' }), sid);
    assert.deepEqual(joined.streams.map((s) => [s.stream, s.publisher]), [[annStream, annId]],
      'the tiny door lists the OpenVidu participant\'s stream');
    // Ann's openvidu-browser hears of Tia's arrival.
    await waitFor(ann, (id) => window.events.some((e) => e.type === 'connectionCreated' && e.id === id),
      joined.id, 'ann sees tia join');

    // Tia receives Ann's camera.
    await tia.evaluate((s) => window.tiny.subscribe(s), annStream);
    await tia.waitForFunction(async () => (await window.tiny.framesDecoded()) > 10, null, { timeout: 20000 });

    // Tia publishes; Ann's openvidu-browser subscribes and decodes it.
    const tiaStream = await tia.evaluate(() => window.tiny.publish());
    await waitFor(ann, (s) => window.events.some((e) => e.type === 'streamCreated' && e.streamId === s),
      tiaStream, 'ann sees tia publish');
    for (const deadline = Date.now() + 20000; ; await ann.waitForTimeout(250)) {
      const s = (await ann.evaluate(() => window.ovStats()))[joined.id];
      if (s && s.frames > 10 && s.audio > 10) break;
      if (Date.now() > deadline) throw new Error(`ann receives nothing from tia: ${JSON.stringify(s)}`);
    }

    // The REST API of the OpenVidu door shows both, and Tia's subscription.
    const view = (await rest(camerata, 'GET', `/openvidu/api/sessions/${sid}`)).json;
    const byId = Object.fromEntries(view.connections.content.map((c) => [c.connectionId, c]));
    assert.equal(byId[joined.id].publishers[0].streamId, tiaStream);
    assert.deepEqual(byId[joined.id].subscribers.map((s) => s.streamId), [annStream]);

    // Ann unpublishes: the tiny door tells Tia.
    await ann.evaluate(() => window.ovUnpublish());
    await tia.waitForFunction((s) => window.tinyEvents.some((e) => e.op === 'gone' && e.stream === s), annStream);
    await context.close();
  } finally {
    await cleanup();
    site.close();
    await camerata.stop();
  }
});
