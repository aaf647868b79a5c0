'use strict';
// The media scenario the browser suites share: two PUBLISHERs and a SUBSCRIBER through
// Camerata's SFU, with checks of what each receives.
const assert = require('node:assert/strict');
const { launch, staticServer, waitFor } = require('./support');
const { startServer, http: rest } = require('../node/support/server');

async function stats(page) {
  return page.evaluate(() => window.ovStats());
}

async function growing(page, who, ids) {
  // Every subscription decodes frames and receives audio, and both keep growing.
  const deadline = Date.now() + 20000;
  let first;
  for (;;) {
    const s = await stats(page);
    const ok = ids.every((id) => s[id] && s[id].frames > 0 && s[id].audio > 0);
    if (ok && !first) first = s;
    if (ok && first && ids.every((id) => s[id].frames > first[id].frames && s[id].audio > first[id].audio)) {
      return s;
    }
    if (Date.now() > deadline) throw new Error(`${who}: media not flowing: ${JSON.stringify(s)}`);
    await page.waitForTimeout(250);
  }
}

async function scenario(sessionProperties, codec, options = {}) {
  const camerata = await startServer({ args: options.serverArgs || [] });
  const site = await staticServer();
  const { browser, cleanup } = await launch(options.browserArgs || []);
  try {
    const sid = (await rest(camerata, 'POST', '/openvidu/api/sessions', sessionProperties)).json.id;
    const tokenFor = async (role, extra = {}) =>
      (await rest(camerata, 'POST', `/openvidu/api/sessions/${sid}/connection`, { role, ...extra })).json.token;
    // Bob may send the server at most 150 kbps of video (kurentoOptions).
    const limits = { bob: { kurentoOptions: { videoMaxRecvBandwidth: 150 } } };
    const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
    const url = `http://127.0.0.1:${site.address().port}/`;
    const pages = {};
    const ids = {};
    for (const [name, role] of [['ann', 'PUBLISHER'], ['bob', 'PUBLISHER'], ['cat', 'SUBSCRIBER']]) {
      const page = await context.newPage();
      await page.goto(url);
      await page.evaluate(() => { window.autoSubscribe = true; });
      ids[name] = await page.evaluate(([t, n]) => window.ovJoin(t, n), [await tokenFor(role, limits[name]), name]);
      pages[name] = page;
    }
    await pages.ann.evaluate(() => window.ovPublish());
    await pages.bob.evaluate(() => window.ovPublish());

    await growing(pages.ann, 'ann', [ids.bob]);
    await growing(pages.bob, 'bob', [ids.ann]);
    const received = await growing(pages.cat, 'cat', [ids.ann, ids.bob]);
    // The answer to bob's offer caps his video at his limit; ann has the server default (1000).
    // Chromium reports no target for a moment while it reconfigures its encoder: wait for one.
    const target = async (page) => {
      for (const deadline = Date.now() + 5000; ; await page.waitForTimeout(100)) {
        const bps = await page.evaluate(() => window.ovSendTarget());
        if (bps > 0 || Date.now() > deadline) return bps;
      }
    };
    const bobTarget = await target(pages.bob);
    assert.ok(bobTarget > 0 && bobTarget <= 150000, `bob's encoder targets ${bobTarget} bps`);
    assert.ok((await target(pages.ann)) <= 1000000, 'ann within the server default');
    assert.equal(received[ids.ann].codec, codec, 'the room forwards its one video codec');
    // The server sends each subscriber RTCP sender reports (the browser's remote-outbound-rtp):
    // counts of what it sent that track, and a wall clock that is the real one.
    let reported;
    for (const deadline = Date.now() + 15000; !reported; await pages.cat.waitForTimeout(250)) {
      const r = (await stats(pages.cat))[ids.ann].reports;
      if (r.video && r.audio && r.video.packetsSent > 0 && r.audio.packetsSent > 0) reported = r;
      else if (Date.now() > deadline) throw new Error(`no sender reports for ann's tracks: ${JSON.stringify(r)}`);
    }
    for (const kind of ['video', 'audio']) {
      assert.ok(Math.abs(reported[kind].remoteTimestamp - Date.now()) < 5000,
        `${kind} report's wall clock: ${reported[kind].remoteTimestamp} against ${Date.now()}`);
    }
    if (options.check) {
      // The selected candidate pairs of the subscriber's two peer connections.
      const all = Object.values(received);
      options.check({ ports: all.flatMap((r) => r.ports), protocols: all.flatMap((r) => r.protocols) });
    }

    // The REST view matches what the browsers see.
    const view = (await rest(camerata, 'GET', `/openvidu/api/sessions/${sid}`)).json;
    const byId = Object.fromEntries(view.connections.content.map((c) => [c.connectionId, c]));
    assert.equal(byId[ids.ann].publishers.length, 1);
    assert.equal(byId[ids.ann].publishers[0].mediaOptions.hasVideo, true);
    assert.equal(byId[ids.cat].publishers.length, 0);
    assert.equal(byId[ids.cat].subscribers.length, 2);

    // A mute reaches the others as streamPropertyChanged.
    await pages.ann.evaluate(() => window.ovMuteAudio());
    for (const name of ['bob', 'cat']) {
      await waitFor(pages[name], (id) => window.events.some((e) => e.type === 'streamPropertyChanged'
        && e.id === id && e.property === 'audioActive' && e.value === false), ids.ann, `${name} sees ann mute`);
    }

    // Video mute and unmute reach the others too.
    await pages.bob.evaluate(() => window.ovMuteVideo(true));
    await waitFor(pages.cat, (id) => window.events.some((e) => e.type === 'streamPropertyChanged'
      && e.id === id && e.property === 'videoActive' && e.value === false), ids.bob, 'cat sees bob hide video');
    await pages.bob.evaluate(() => window.ovMuteVideo(false));
    await waitFor(pages.cat, (id) => window.events.some((e) => e.type === 'streamPropertyChanged'
      && e.id === id && e.property === 'videoActive' && e.value === true), ids.bob, 'cat sees bob show video');

    // Bob's signaling socket drops and comes back: same connection, media keeps flowing.
    await pages.bob.evaluate(() => window.ovDropSocket());
    await waitFor(pages.bob, () => window.events.some((e) => e.type === 'reconnected'), null, 'bob reconnects');
    await growing(pages.cat, 'cat after bob reconnected', [ids.ann, ids.bob]);
    await growing(pages.bob, 'bob after reconnecting', [ids.ann]);
    const again = (await rest(camerata, 'GET', `/openvidu/api/sessions/${sid}`)).json;
    assert.deepEqual(again.connections.content.map((c) => c.connectionId).sort(),
      [ids.ann, ids.bob, ids.cat].sort(), 'no duplicate participant after the reconnect');

    // Media recovery (reconnectStream): bob's publisher and cat's subscription to ann get
    // new peer connections; the others keep theirs and the media comes back.
    await pages.bob.evaluate(() => window.ovReconnectPublisher());
    await pages.cat.evaluate((id) => window.ovReconnectSubscriber(id), ids.ann);
    await growing(pages.cat, 'cat after reconnectStream', [ids.ann, ids.bob]);
    await growing(pages.ann, 'ann after bob reconnected', [ids.bob]);

    // Bob unpublishes: the others see his stream end; the REST view forgets it.
    await pages.bob.evaluate(() => window.ovUnpublish());
    for (const name of ['ann', 'cat']) {
      await waitFor(pages[name], (id) => window.events.some((e) => e.type === 'streamDestroyed'
        && e.id === id && e.reason === 'unpublish'), ids.bob, `${name} sees bob unpublish`);
    }
    const after = (await rest(camerata, 'GET', `/openvidu/api/sessions/${sid}`)).json;
    const bob = after.connections.content.find((c) => c.connectionId === ids.bob);
    assert.equal(bob.publishers.length, 0);
    // The server API force-unpublishes ann: everyone, ann included, hears it.
    const streamId = after.connections.content.find((c) => c.connectionId === ids.ann).publishers[0].streamId;
    assert.equal((await rest(camerata, 'DELETE', `/openvidu/api/sessions/${sid}/stream/${streamId}`)).status, 204);
    await waitFor(pages.cat, (id) => window.events.some((e) => e.type === 'streamDestroyed'
      && e.id === id && e.reason === 'forceUnpublishByServer'), ids.ann, 'cat sees ann force-unpublished');
    await context.close();
  } finally {
    await cleanup();
    site.close();
    await camerata.stop();
  }
}

module.exports = { scenario };
