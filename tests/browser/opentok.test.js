'use strict';
// The OpenTok migration path with real parts: a backend on the real opentok@2.23.2 SDK
// pointed at Camerata creates sessions and mints tokens locally; the unmodified
// openvidu-browser in headless Chromium joins with them (`ws://host:port?sessionId=…&token=…`),
// publishes and receives. Roles hold (a subscriber cannot publish, a publisheronly participant
// cannot subscribe), expired, forged and foreign tokens are refused, the SDK's moderation,
// signals, stream calls and archives act on the browsers, an archive is a playable file, an
// `always` session archives itself, and webhooks and the OpenVidu REST API see the sessions.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const OpenTok = require('opentok');
const { launch, receiver, staticServer, waitFor } = require('./support');
const { http } = require('../node/support/server');
const { PROJECT, openTokServer, tokenUrl, cb, atTime } = require('../node/support/opentok');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `f` until it returns a truthy value. */
async function until(f, what, tries = 150) {
  for (let i = 0; i < tries; i += 1) {
    const v = await f();
    if (v) return v;
    await sleep(100);
  }
  throw new Error(`${what}: never`);
}

test('openvidu-browser joins OpenTok sessions with the SDK\'s tokens; moderation, archives, roles', async () => {
  const hook = await receiver();
  const { server } = await openTokServer([
    '--recording', 'true',
    '--webhook', 'true', '--webhook-endpoint', hook.url, '--webhook-events', '["participantJoined"]',
  ]);
  const site = await staticServer();
  const { browser, cleanup } = await launch();
  const ot = new OpenTok(PROJECT.key, PROJECT.secret, { apiUrl: server.url });
  try {
    const sid = (await cb((d) => ot.createSession({ mediaMode: 'routed' }, d))).sessionId;
    const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
    const open = async () => {
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${site.address().port}/`);
      return page;
    };
    const join = (page, session, token, name) =>
      page.evaluate(([t, n]) => window.ovJoin(t, n), [tokenUrl(server, session, token), name]);
    /** Joins and returns the error text, or 'joined'. */
    const attempt = async (session, token) => {
      const page = await open();
      const out = await page.evaluate(async (t) => {
        try { await window.ovJoin(t, 'x'); return 'joined'; } catch (e) { return String((e && (e.message || e.name)) || e); }
      }, tokenUrl(server, session, token));
      await page.close();
      return out;
    };

    // Ann publishes with a publisher JWT; Bob, with a moderator T1 token, receives her.
    const ann = await open();
    const annId = await join(ann, sid, ot.generateToken(sid, {
      role: 'publisher', data: 'ann', initialLayoutClassList: ['focus'],
    }), 'ann');
    const annStream = await ann.evaluate(() => window.ovPublish());
    const bob = await open();
    await bob.evaluate(() => { window.autoSubscribe = true; });
    const bobId = await join(bob, sid, ot.generateToken(sid, { role: 'moderator', data: 'bob' }, true), 'bob');
    await until(async () => {
      const s = (await bob.evaluate(() => window.ovStats()))[annId];
      return s && s.frames > 10 && s.audio > 10;
    }, 'Bob decodes Ann');
    // Webhooks and the OpenVidu REST API see an ordinary session.
    const joinedEvents = await hook.count(2);
    assert.deepEqual(joinedEvents.map((e) => e.sessionId), [sid, sid]);
    const ov = await http(server, 'GET', `/openvidu/api/sessions/${sid}`);
    assert.deepEqual(ov.json.connections.content.map((c) => c.serverData).sort(), ['ann', 'bob']);

    // Streams: Ann's, with the classes of her token, then the ones the SDK sets.
    const streams = await cb((d) => ot.listStreams(sid, d));
    assert.equal(streams.length, 1);
    assert.equal(streams[0].id, annStream);
    assert.equal(streams[0].videoType, 'camera');
    assert.deepEqual(streams[0].layoutClassList, ['focus']);
    await cb((d) => ot.setStreamClassLists(sid, [{ id: annStream, layoutClassList: ['full', 'main'] }], d));
    assert.deepEqual((await cb((d) => ot.getStream(sid, annStream, d))).layoutClassList, ['full', 'main']);

    // A signal from the backend reaches the browsers as `signal:<type>`.
    await cb((d) => ot.signal(sid, null, { type: 'chat', data: 'from the backend' }, d));
    await waitFor(bob, () => window.events.some((e) => e.type === 'signal' && e.signalType === 'signal:chat'
      && e.data === 'from the backend'), null, 'signal');

    // An archive of the call: started, stopped, available, a playable 640x480 file, listed,
    // deleted.
    const archive = await cb((d) => ot.startArchive(sid, { name: 'Call with Ann' }, d));
    assert.equal(archive.status, 'started');
    assert.equal(archive.sessionId, sid);
    assert.equal(archive.outputMode, 'composed');
    assert.equal(archive.resolution, '640x480');
    await assert.rejects(cb((d) => ot.startArchive(sid, {}, d)), /already/);
    await cb((d) => ot.setArchiveLayout(archive.id, 'pip', null, null, d));
    await sleep(3000);
    const stopped = await cb((d) => ot.stopArchive(archive.id, d));
    assert.ok(['stopped', 'available'].includes(stopped.status), stopped.status);
    await assert.rejects(cb((d) => ot.stopArchive(archive.id, d)), /not being recorded|409/);
    const ready = await until(async () => {
      const a = await cb((d) => ot.getArchive(archive.id, d));
      return ['available', 'failed'].includes(a.status) && a;
    }, 'archive available');
    assert.equal(ready.status, 'available');
    assert.ok(ready.duration >= 2 && ready.size > 0, `${ready.duration} s, ${ready.size} bytes`);
    const res = await fetch(ready.url.replace(/^https?:\/\/[^/]+/, server.url), {
      headers: { Authorization: `Basic ${Buffer.from(`OPENVIDUAPP:${server.secret}`).toString('base64')}` },
    });
    assert.equal(res.status, 200);
    const file = path.join(server.dir, 'archive.mp4');
    fs.writeFileSync(file, Buffer.from(await res.arrayBuffer()));
    const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_streams', file]));
    const video = probe.streams.find((s) => s.codec_type === 'video');
    assert.equal(`${video.width}x${video.height}`, '640x480');
    assert.ok(probe.streams.some((s) => s.codec_type === 'audio'));
    execFileSync('ffmpeg', ['-v', 'error', '-xerror', '-i', file, '-f', 'null', '-']);
    // An individual archive: one file per stream, zipped.
    const each = await cb((d) => ot.startArchive(sid, { outputMode: 'individual', hasVideo: true }, d));
    assert.equal(each.outputMode, 'individual');
    assert.equal(each.resolution, undefined);
    await sleep(1500);
    await cb((d) => ot.stopArchive(each.id, d));
    const zipped = await until(async () => {
      const a = await cb((d) => ot.getArchive(each.id, d));
      return ['available', 'failed'].includes(a.status) && a;
    }, 'individual archive available');
    assert.equal(zipped.status, 'available');
    assert.match(zipped.url, /\.zip$/);
    const listed = await cb((d) => ot.listArchives({ sessionId: sid }, d));
    assert.deepEqual(listed.map((a) => a.id), [each.id, archive.id], 'newest first');
    await cb((d) => ot.deleteArchive(archive.id, d));
    await assert.rejects(cb((d) => ot.getArchive(archive.id, d)));

    // Mute everyone but Ann, newcomers too: Ann keeps her audio; Cara (publisheronly, T1)
    // publishes muted, and cannot subscribe.
    await cb((d) => ot.forceMuteAll(sid, { excludedStreamIds: [annStream] }, d));
    const annView = await http(server, 'GET', `/openvidu/api/sessions/${sid}`);
    const annPublisher = annView.json.connections.content.find((c) => c.connectionId === annId).publishers[0];
    assert.equal(annPublisher.mediaOptions.audioActive, true, 'an excluded stream keeps its audio');
    const cara = await open();
    const caraId = await join(cara, sid, ot.generateToken(sid, { role: 'publisheronly', data: 'cara' }, true), 'cara');
    const caraStream = await cara.evaluate(() => window.ovPublish());
    const caraView = await until(async () => {
      const s = await http(server, 'GET', `/openvidu/api/sessions/${sid}`);
      const c = s.json.connections.content.find((x) => x.connectionId === caraId);
      return c && c.publishers.length === 1 && c.publishers[0];
    }, 'Cara publishes');
    assert.equal(caraView.streamId, caraStream);
    assert.equal(caraView.mediaOptions.audioActive, false, 'a newcomer is muted');
    const refused = await cara.evaluate(() => new Promise((resolve) => {
      const remote = [...window.session.remoteConnections.values()].find((c) => c.stream);
      window.session.subscribe(remote.stream, undefined, {}, (e) => resolve(e ? String(e.message || e) : 'subscribed'));
    }));
    assert.notEqual(refused, 'subscribed');
    assert.match(refused, /PUBLISHER_ONLY|not allow|role/i);
    await cb((d) => ot.disableForceMute(sid, d));
    // Force mute of one stream: the browsers see Ann's audio go inactive.
    await cb((d) => ot.forceMuteStream(sid, annStream, d));
    await waitFor(bob, (id) => window.events.some((e) => e.type === 'streamPropertyChanged'
      && e.id === id && e.property === 'audioActive' && e.value === false), annId, 'Ann muted');

    // A subscriber can join but not publish.
    const dave = await open();
    await join(dave, sid, ot.generateToken(sid, { role: 'subscriber' }), 'dave');
    const publish = await dave.evaluate(async () => {
      try { await window.ovPublish(); return 'published'; } catch (e) { return String((e && (e.message || e.name)) || e); }
    });
    assert.notEqual(publish, 'published');

    // Refused tokens, each with its own error.
    const expired = atTime(-2 * 86400 * 1000, () => ot.generateToken(sid));
    assert.match(await attempt(sid, expired), /has expired/);
    const forged = new OpenTok(PROJECT.key, '00000000000000000000000000000000000000ff', { apiUrl: server.url });
    assert.match(await attempt(sid, forged.generateToken(sid)), /is not valid/);
    const other = (await cb((d) => ot.createSession({ mediaMode: 'routed' }, d))).sessionId;
    assert.match(await attempt(sid, ot.generateToken(other)), /is for another session/);

    // The backend puts Bob out.
    await cb((d) => ot.forceDisconnect(sid, bobId, d));
    await waitFor(bob, () => window.events.some((e) => e.type === 'sessionDisconnected'
      && e.reason === 'forceDisconnectByServer'), null, 'Bob put out');

    // A session archived always starts its archive when its first client publishes, with the
    // session's archive name and resolution.
    const auto = (await cb((d) => ot.createSession({
      mediaMode: 'routed', archiveMode: 'always', archiveName: 'auto_show', archiveResolution: '1280x720',
    }, d))).sessionId;
    const eve = await open();
    await join(eve, auto, ot.generateToken(auto), 'eve');
    await eve.evaluate(() => window.ovPublish());
    const running = await until(async () => {
      const list = await cb((d) => ot.listArchives({ sessionId: auto }, d));
      return list.length === 1 && list[0].status === 'started' && list[0];
    }, 'automatic archive');
    assert.equal(running.name, 'auto:show');
    assert.equal(running.resolution, '1280x720');
    await sleep(1500);
    await cb((d) => ot.stopArchive(running.id, d));
    await context.close();
  } finally {
    await cleanup();
    site.close();
    await hook.close();
    await server.stop();
  }
});
