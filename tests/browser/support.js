'use strict';
// What the browser suites share: the static page server, a Chromium launcher, waiting on
// page state.
const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { ROOT } = require('../node/support/server');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Serves the test page and the openvidu-browser bundle from node_modules on 127.0.0.1. */
function staticServer() {
  const files = {
    '/': [path.join(__dirname, 'page.html'), 'text/html'],
    '/openvidu-browser.js': [
      path.join(ROOT, 'node_modules', 'openvidu-browser', 'static', 'js', 'openvidu-browser-2.32.2.js'),
      'application/javascript',
    ],
  };
  const server = http.createServer((req, res) => {
    const f = files[req.url.split('?')[0]];
    if (!f) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-type': f[1] });
    fs.createReadStream(f[0]).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Headless Chromium with fake devices and loopback ICE (plus `extraArgs`); `cleanup()` closes it. */
async function launch(extraArgs = []) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--no-sandbox',
      '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--allow-loopback-in-peer-connection',
      ...extraArgs],
  });
  return { browser, cleanup: () => browser.close() };
}

/** Waits until `predicate(arg)` holds in the page; fails with the page's events. */
async function waitFor(page, predicate, arg, what) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: 15000 });
  } catch (e) {
    const events = await page.evaluate(() => window.events);
    throw new Error(`${what}: not seen; events were ${JSON.stringify(events)}`);
  }
}

/** An HTTP receiver that records every JSON body it is sent. */
async function receiver() {
  const bodies = [];
  let waiting = [];
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c) => { text += c; });
    req.on('end', () => {
      bodies.push({ headers: req.headers, body: JSON.parse(text) });
      res.end();
      waiting = waiting.filter((w) => !w());
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/hook`,
    bodies,
    /** Resolves once `n` events arrived. */
    count(n) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${n} events expected, got ${JSON.stringify(bodies.map((b) => b.body.event))}`)), 20000);
        const check = () => {
          if (bodies.length < n) return false;
          clearTimeout(timer);
          resolve(bodies.map((b) => b.body));
          return true;
        };
        if (!check()) waiting.push(check);
      });
    },
    // Servers under test may keep connections open (keep-alive): closed here, not waited for.
    close: () => new Promise((resolve) => { server.close(resolve); server.closeAllConnections(); }),
  };
}

module.exports = { staticServer, launch, waitFor, receiver };
