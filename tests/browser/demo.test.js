'use strict';
// The demo page served by the binary at `/`: two Chromium pages join one room through its UI
// and each shows the other's video playing. A screenshot is taken (kept under target/).
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { launch } = require('./support');
const { startServer, http: rest, ROOT } = require('../node/support/server');

async function joinThroughUi(page, url, name) {
  await page.goto(url);
  await page.fill('#room', 'demo-test');
  await page.fill('#name', name);
  await page.click('#join');
}

async function remotePlaying(page, who) {
  try {
    await page.waitForFunction(() => {
      const v = document.querySelector('.tile.remote video');
      return v && v.readyState >= 2 && v.videoWidth > 0 && !v.paused;
    }, null, { timeout: 20000 });
  } catch (e) {
    const status = await page.textContent('#status');
    throw new Error(`${who} shows no playing remote video; status: ${status}`);
  }
}

test('two people meet through the demo page', async () => {
  const camerata = await startServer();
  const { browser, cleanup } = await launch();
  try {
    const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
    const a = await context.newPage();
    const b = await context.newPage();
    await joinThroughUi(a, `${camerata.url}/`, 'alice');
    await joinThroughUi(b, `${camerata.url}/`, 'bob');
    await remotePlaying(a, 'alice');
    await remotePlaying(b, 'bob');
    assert.equal(await a.locator('.tile.remote span').textContent(), 'bob');
    assert.equal(await b.locator('.tile.remote span').textContent(), 'alice');
    assert.match(await a.textContent('#status'), /In demo-test as alice/);
    await a.screenshot({ path: path.join(ROOT, 'target', 'demo-page.png') });
    // The REST view agrees: one room, two people, each publishing.
    const view = (await rest(camerata, 'GET', '/openvidu/api/sessions/demo-test')).json;
    assert.equal(view.connections.numberOfElements, 2);
    for (const c of view.connections.content) assert.equal(c.publishers.length, 1);
    // Leaving empties the page and tells the other.
    await a.click('#leave');
    await b.waitForFunction(() => !document.querySelector('.tile.remote'), null, { timeout: 15000 });
    assert.match(await a.textContent('#status'), /Left/);
    await context.close();
  } finally {
    await cleanup();
    await camerata.stop();
  }
});

test('the token endpoint is off when switched off', async () => {
  const camerata = await startServer({ args: ['--dev-tokens', 'false'] });
  try {
    const res = await fetch(`${camerata.url}/camerata/dev/token`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"room":"x","name":"y"}',
    });
    assert.equal(res.status, 404);
    const page = await fetch(`${camerata.url}/`);
    assert.equal(page.status, 200);
  } finally {
    await camerata.stop();
  }
});
