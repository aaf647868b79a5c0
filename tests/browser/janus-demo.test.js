'use strict';
// The VideoRoom demo page Debian ships (package janus-demos, with janus.js from
// libjs-janus-gateway), served unmodified from /usr/share/janus/demos: its settings.js points
// janus.js at http://<page host>:8088/janus, Janus's default port, which Camerata also serves
// (this suite runs in a loopback-only namespace, so the fixed ports are free). One addition:
// Debian's settings.js (1.1.2-1) leaves out the `token` and `apisecret` variables that its
// videoroomtest.js reads, so the page stops with a ReferenceError before it connects, to
// Janus or anything else; the served settings.js is Debian's with those two lines appended,
// as upstream's settings.js has them (both null: no auth, as Janus ships). Two demo pages
// in headless Chromium publish and see and hear each other through Camerata, with VP8 and
// with H.264; three pages of the multistream demo each receive the other two on one peer
// connection and drop a feed that leaves; then a demo page and an openvidu-browser page
// share one room, which an INDIVIDUAL recording records with a file for each publisher.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { launch, staticServer, receiver } = require('./support');
const { demoServer, createRoom, joinDemo, flowing, listener } = require('./janus-support');
const { startServer, http: rest } = require('../node/support/server');

async function twoPublishers(room, query, codec, extra, talking = false) {
  const camerata = await startServer({ args: ['--janus-http-port', '8088', '--janus-ws-port', '8188'] });
  const site = await demoServer();
  const { browser, cleanup } = await launch();
  try {
    await createRoom(room, extra);
    const ear = talking ? await listener(room, 99) : null;
    const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
    const url = `http://127.0.0.1:${site.address().port}/videoroomtest.html?room=${room}${query}`;
    const ann = await joinDemo(context, url, 'ann');
    const bob = await joinDemo(context, url, 'bob');
    const annSees = await flowing(ann, 'ann');
    const bobSees = await flowing(bob, 'bob');
    assert.equal(annSees.display, 'bob');
    assert.equal(bobSees.display, 'ann');
    assert.equal(annSees.codec, codec);
    assert.equal(bobSees.codec, codec);
    if (talking) {
      // The demo's bitrate menu sends configure with a bitrate: the server caps ann's video
      // with REMB, and her encoder, above the cap until then, follows.
      const target = () => ann.evaluate(async () => {
        const stats = await window.sfutest.webrtcStuff.pc.getStats();
        let bps = 0;
        stats.forEach((r) => { if (r.type === 'outbound-rtp' && r.kind === 'video') bps = r.targetBitrate || 0; });
        return bps;
      });
      for (const deadline = Date.now() + 20000; (await target()) <= 128000; await ann.waitForTimeout(250)) {
        if (Date.now() > deadline) throw new Error('ann\'s encoder never went above 128 kbps');
      }
      await ann.evaluate(() => window.sfutest.send({ message: { request: 'configure', bitrate: 128000 } }));
      for (const deadline = Date.now() + 20000; ; await ann.waitForTimeout(250)) {
        const bps = await target();
        if (bps > 0 && bps <= 128000) break;
        if (Date.now() > deadline) throw new Error(`ann's encoder targets ${bps} bps, over the 128 kbps cap`);
      }
    }
    // The OpenVidu REST API sees the Janus room and its two publishers.
    const session = await rest(camerata, 'GET', `/openvidu/api/sessions/${room}`);
    assert.equal(session.status, 200);
    assert.equal(session.json.connections.content.filter((c) => c.publishers.length).length, 2);
    if (ear) {
      // Chromium's fake microphone beeps: the room hears each publisher talking, with the
      // level it measured (averaged over 10 packets), and the lists show it.
      for (const page of [ann, bob]) {
        const id = await page.evaluate(() => window.myid);
        const started = await ear.until((d) => d.videoroom === 'talking' && d.id === id, `${id} talking`);
        assert.ok(started['audio-level-dBov-avg'] < 126, JSON.stringify(started));
        assert.equal(started.mid, '0');
      }
      await ear.close();
    }
  } finally {
    await cleanup();
    site.close();
    await camerata.stop();
  }
}

test('two demo pages publish and receive each other through Camerata (VP8), and talk', async () => {
  await twoPublishers(1234, '', 'video/VP8',
    { audiolevel_event: true, audio_active_packets: 10, audio_level_average: 126 }, true);
});

test('the same in an H.264 room, the demo asking for H.264', async () => {
  await twoPublishers(4321, '&vcodec=h264', 'video/H264', { videocodec: 'h264' });
});

/** What the multistream demo's one subscription receives, per video track. */
function multiStats(page) {
  return page.evaluate(async () => {
    const feed = window.remoteFeed;
    const pc = feed && feed.webrtcStuff && feed.webrtcStuff.pc;
    if (!pc) return { videos: [], audio: 0 };
    const stats = await pc.getStats();
    const videos = [];
    let audio = 0;
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') videos.push({ mid: r.mid, frames: r.framesDecoded || 0 });
      if (r.type === 'inbound-rtp' && r.kind === 'audio') audio += r.packetsReceived || 0;
    });
    return { videos, audio, senders: pc.getTransceivers().filter((t) => t.currentDirection === 'recvonly').length };
  });
}

/** Waits until `page` decodes frames on `n` video tracks of its one subscription, growing. */
async function flowingOn(page, n, who) {
  let first;
  for (const deadline = Date.now() + 40000; ; await page.waitForTimeout(300)) {
    const s = await multiStats(page);
    const live = s.videos.filter((v) => v.frames > 0);
    if (live.length === n && s.senders === 2 * n) {
      const total = live.reduce((a, v) => a + v.frames, 0);
      if (!first) first = total;
      else if (total > first + 10) return s;
    }
    if (Date.now() > deadline) {
      throw new Error(`${who}: not ${n} feeds on one peer connection: ${JSON.stringify(s)}; page said ${page.log.slice(-10).join(' | ')}`);
    }
  }
}

test('the multistream demo: one subscription carries every other publisher, and drops one that leaves', async () => {
  const camerata = await startServer({ args: ['--janus-http-port', '8088', '--janus-ws-port', '8188'] });
  const site = await demoServer();
  const { browser, cleanup } = await launch();
  try {
    await createRoom(1234);
    const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
    const url = `http://127.0.0.1:${site.address().port}/mvideoroomtest.html`;
    const ann = await joinDemo(context, url, 'ann');
    const bob = await joinDemo(context, url, 'bob');
    const cat = await joinDemo(context, url, 'cat');
    await flowingOn(ann, 2, 'ann');
    await flowingOn(bob, 2, 'bob');
    await flowingOn(cat, 2, 'cat');
    // Cat leaves: the others' subscriptions drop her feed (an `update` renegotiates) and
    // keep receiving the remaining one.
    await cat.close({ runBeforeUnload: true });
    await flowingOn(ann, 1, 'ann after cat left');
    await flowingOn(bob, 1, 'bob after cat left');
  } finally {
    await cleanup();
    site.close();
    await camerata.stop();
  }
});

test('one room, two doors: a janus.js publisher and an openvidu-browser publisher', async () => {
  const hook = await receiver();
  const recordings = fs.mkdtempSync(path.join(os.tmpdir(), 'janus-rec-'));
  const camerata = await startServer({
    args: ['--janus-http-port', '8088', '--janus-ws-port', '8188',
      '--webhook', 'true', '--webhook-endpoint', hook.url,
      '--recording', 'true', '--recording-path', recordings],
  });
  const demos = await demoServer();
  const site = await staticServer();
  const { browser, cleanup } = await launch();
  try {
    await createRoom(1234);
    const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
    // The OpenVidu side: a token for session "1234", the same room.
    const token = (await rest(camerata, 'POST', '/openvidu/api/sessions/1234/connection', { role: 'PUBLISHER' })).json.token;
    const ov = await context.newPage();
    await ov.goto(`http://127.0.0.1:${site.address().port}/`);
    await ov.evaluate(() => { window.autoSubscribe = true; });
    await ov.evaluate(([t]) => window.ovJoin(t, 'ovi'), [token]);
    await ov.evaluate(() => window.ovPublish());
    const jan = await joinDemo(context, `http://127.0.0.1:${demos.address().port}/videoroomtest.html`, 'jan');
    // The demo page receives the openvidu-browser publisher...
    await flowing(jan, 'jan');
    // ... and openvidu-browser receives the janus.js publisher.
    for (const deadline = Date.now() + 30000; ; await ov.waitForTimeout(250)) {
      const s = Object.values(await ov.evaluate(() => window.ovStats()));
      if (s.length === 1 && s[0].frames > 0 && s[0].audio > 0) break;
      if (Date.now() > deadline) throw new Error(`openvidu-browser got no media from jan: ${JSON.stringify(s)}`);
    }
    const connections = (await rest(camerata, 'GET', '/openvidu/api/sessions/1234')).json.connections.content;
    assert.equal(connections.length, 2);
    assert.ok(connections.some((c) => c.clientData === 'jan'), JSON.stringify(connections.map((c) => c.clientData)));
    const events = await hook.count(1);
    const joined = () => hook.bodies.filter((b) => b.body.event === 'participantJoined');
    for (const deadline = Date.now() + 10000; joined().length < 2 && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(joined().length, 2, JSON.stringify(events.map((e) => e.event)));
    assert.deepEqual(new Set(joined().map((b) => b.body.sessionId)), new Set(['1234']));
    // An INDIVIDUAL recording of the room has a file for each publisher, Janus's included.
    const started = await rest(camerata, 'POST', '/openvidu/api/recordings/start',
      { session: '1234', outputMode: 'INDIVIDUAL' });
    assert.equal(started.status, 200, started.text);
    await ov.waitForTimeout(3000);
    await rest(camerata, 'POST', `/openvidu/api/recordings/stop/${started.json.id}`);
    let ready;
    for (const deadline = Date.now() + 30000; !ready; await ov.waitForTimeout(250)) {
      const r = (await rest(camerata, 'GET', `/openvidu/api/recordings/${started.json.id}`)).json;
      if (r.status === 'ready') ready = r;
      else if (Date.now() > deadline || r.status === 'failed') throw new Error(`recording: ${JSON.stringify(r)}`);
    }
    const zip = Buffer.from(await (await fetch(ready.url, {
      headers: { authorization: 'Basic ' + Buffer.from(`OPENVIDUAPP:${camerata.secret}`).toString('base64') },
    })).arrayBuffer()).toString('latin1');
    const files = new Set(zip.match(/str_[A-Za-z0-9_]+\.webm/g));
    assert.equal(files.size, 2, `one file per publisher: ${[...files]}`);
    const janId = connections.find((c) => c.clientData === 'jan').connectionId;
    assert.ok([...files].some((f) => f.endsWith(`_${janId}.webm`)), `the Janus publisher's file: ${[...files]}`);
  } finally {
    await cleanup();
    demos.close();
    site.close();
    hook.close();
    await camerata.stop();
    fs.rmSync(recordings, { recursive: true, force: true });
  }
});
