'use strict';
// The unmodified openvidu-browser 2.32.2 in headless Chromium against the camerata binary:
// three participants join with tokens from the REST API, see each other, signal to all and
// to one, a SUBSCRIBER's publish is refused, a MODERATOR forces someone out, and a leave is
// seen by the others. Run inside a loopback-only network namespace (tests/browser/run.sh).
const test = require('node:test');
const assert = require('node:assert/strict');
const { launch, staticServer, waitFor } = require('./support');
const { startServer, http: rest } = require('../node/support/server');

test('three browsers: join, signals, refused publish, moderation, leave', async () => {
  const camerata = await startServer();
  const site = await staticServer();
  const { browser, cleanup } = await launch();
  try {
    const sid = (await rest(camerata, 'POST', '/openvidu/api/sessions', { customSessionId: 'browsers' })).json.id;
    const tokenFor = async (role, data) =>
      (await rest(camerata, 'POST', `/openvidu/api/sessions/${sid}/connection`, { role, data })).json.token;
    const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
    const url = `http://127.0.0.1:${site.address().port}/`;
    const pages = {};
    const ids = {};
    for (const [name, role] of [['ann', 'MODERATOR'], ['bob', 'PUBLISHER'], ['cat', 'SUBSCRIBER']]) {
      const page = await context.newPage();
      await page.goto(url);
      ids[name] = await page.evaluate(([t, n]) => window.ovJoin(t, n), [await tokenFor(role, `server-${name}`), name]);
      pages[name] = page;
    }
    // Everyone sees everyone, with client and server data.
    for (const name of ['ann', 'bob', 'cat']) {
      for (const other of ['ann', 'bob', 'cat']) {
        await waitFor(pages[name], (id) => window.events.some((e) => e.type === 'connectionCreated' && e.id === id),
          ids[other], `${name} sees ${other}`);
      }
    }
    const annSeen = await pages.bob.evaluate((id) => window.events.find((e) => e.id === id).data, ids.ann);
    assert.equal(annSeen, '{"clientData":"ann"}%/%server-ann');

    // The REST view matches: three active connections with the browser's platform.
    const view = await rest(camerata, 'GET', `/openvidu/api/sessions/${sid}`);
    assert.equal(view.json.connections.numberOfElements, 3);
    for (const c of view.json.connections.content) {
      assert.equal(c.status, 'active');
      assert.match(c.platform, /Chrome/);
    }

    // A signal to everyone reaches all three, the sender included.
    await pages.bob.evaluate(() => window.ovSignal({ data: 'hello all', type: 'chat' }));
    for (const name of ['ann', 'bob', 'cat']) {
      await waitFor(pages[name], (from) => window.events.some((e) => e.type === 'signal' && e.data === 'hello all'
        && e.signalType === 'signal:chat' && e.from === from), ids.bob, `${name} gets bob's signal`);
    }
    // A REST signal to one connection reaches it and nobody else.
    const r = await rest(camerata, 'POST', '/openvidu/api/signal', { session: sid, to: [ids.cat], type: 'signal:news', data: 'only cat' });
    assert.equal(r.status, 200);
    await waitFor(pages.cat, () => window.events.some((e) => e.type === 'signal' && e.data === 'only cat' && e.from === null),
      null, 'cat gets the server signal');
    await pages.ann.waitForTimeout(300);
    for (const name of ['ann', 'bob']) {
      const got = await pages[name].evaluate(() => window.events.some((e) => e.data === 'only cat'));
      assert.equal(got, false, `${name} must not get cat's signal`);
    }

    // A SUBSCRIBER's publish is refused with a permission error.
    const refused = await pages.cat.evaluate(() => window.ovPublishError());
    assert.ok(refused, 'publish must fail');
    assert.equal(refused.name, 'OPENVIDU_PERMISSION_DENIED');

    // The MODERATOR forces cat out.
    await pages.ann.evaluate((id) => window.ovForceDisconnect(id), ids.cat);
    await waitFor(pages.cat, () => window.events.some((e) => e.type === 'sessionDisconnected' && e.reason === 'forceDisconnectByUser'),
      null, 'cat is told it was forced out');
    for (const name of ['ann', 'bob']) {
      await waitFor(pages[name], (id) => window.events.some((e) => e.type === 'connectionDestroyed' && e.id === id
        && e.reason === 'forceDisconnectByUser'), ids.cat, `${name} sees cat leave`);
    }

    // Bob leaves; ann sees it; the session lives on with ann.
    await pages.bob.evaluate(() => window.ovDisconnect());
    await waitFor(pages.ann, (id) => window.events.some((e) => e.type === 'connectionDestroyed' && e.id === id
      && e.reason === 'disconnect'), ids.bob, 'ann sees bob leave');
    const after = await rest(camerata, 'GET', `/openvidu/api/sessions/${sid}`);
    assert.equal(after.json.connections.numberOfElements, 1);
    await pages.ann.evaluate(() => window.ovDisconnect());
    await context.close();
  } finally {
    await cleanup();
    site.close();
    await camerata.stop();
  }
});
