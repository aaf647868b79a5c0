'use strict';
// The VideoRoom demo pages Debian ships (package janus-demos, with janus.js from
// libjs-janus-gateway), served unmodified from /usr/share/janus/demos, and the raw Janus API
// calls the browser suites make beside them. One addition to the served settings.js:
// Debian's (1.1.2-1) leaves out the `token` and `apisecret` variables that its
// videoroomtest.js reads, so the page would stop with a ReferenceError before it connects;
// they are appended, as upstream's settings.js has them (both null: no auth, as Janus
// ships), and so is `server` when a suite points the pages at another Janus API than
// Janus's default port of the page's host.
const assert = require('node:assert/strict');
const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');

const DEMOS = '/usr/share/janus/demos';
const JANUS = 'http://127.0.0.1:8088/janus';
const TYPES = {
  '.html': 'text/html', '.js': 'application/javascript', '.css': 'text/css', '.png': 'image/png',
  '.svg': 'image/svg+xml', '.woff': 'font/woff', '.woff2': 'font/woff2', '.ttf': 'font/ttf',
};

/** Serves the demo folder as it is installed, its pages talking to `janus` (default: port
 * 8088 of the page's host, Debian's settings). */
function demoServer(janus = null) {
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(req.url.split('?')[0]);
    const file = path.resolve(DEMOS, `.${rel}`);
    if (!file.startsWith(DEMOS + path.sep)) { res.writeHead(403); res.end(); return; }
    fs.stat(file, (err, st) => {
      if (err || !st.isFile()) { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
      if (rel === '/settings.js') {
        const pointed = janus ? `var server = ${JSON.stringify(janus)};\n` : '';
        res.end(`${fs.readFileSync(file, 'utf8')}\nvar token = null;\nvar apisecret = null;\n${pointed}`);
        return;
      }
      fs.createReadStream(file).pipe(res);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Creates VideoRoom room `room` through the Janus API at `janus`, as an operator's config
 * would; resolves to the plugin's answer. */
async function createRoom(room, extra = {}, janus = JANUS) {
  const post = async (url, body) => (await fetch(url, { method: 'POST', body: JSON.stringify(body) })).json();
  const session = (await post(janus, { janus: 'create', transaction: 'c' })).data.id;
  const handle = (await post(`${janus}/${session}`,
    { janus: 'attach', plugin: 'janus.plugin.videoroom', transaction: 'a' })).data.id;
  const created = await post(`${janus}/${session}/${handle}`, {
    janus: 'message', transaction: 'm',
    body: { request: 'create', room, description: 'Demo Room', publishers: 6, ...extra },
  });
  assert.equal(created.plugindata.data.videoroom, 'created', JSON.stringify(created));
  await post(`${janus}/${session}`, { janus: 'destroy', transaction: 'd' });
  return created.plugindata.data;
}

/** Opens the demo page, starts it and registers `name`, which joins and publishes. */
async function joinDemo(context, url, name) {
  const page = await context.newPage();
  const log = [];
  page.on('console', (m) => { if (m.type() !== 'debug') log.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => log.push(String(e)));
  page.log = log;
  await page.goto(url);
  await page.waitForFunction(() => window.Janus && window.Janus.initDone);
  await page.click('#start');
  await page.waitForSelector('#username', { state: 'visible', timeout: 15000 }).catch((e) => {
    throw new Error(`${name}: the demo did not start: ${e.message}; page said ${log.slice(-15).join(' | ')}`);
  });
  await page.fill('#username', name);
  await page.click('#register');
  return page;
}

/** What the demo's first remote feed receives: decoded frames, audio packets, video codec. */
function feedStats(page) {
  return page.evaluate(async () => {
    const feed = (window.feeds || []).find((f) => f && f.webrtcStuff && f.webrtcStuff.pc);
    if (!feed) return { frames: 0, audio: 0 };
    const stats = await feed.webrtcStuff.pc.getStats();
    let frames = 0; let audio = 0; let codec = null;
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        frames += r.framesDecoded || 0;
        const c = r.codecId && stats.get(r.codecId);
        if (c) codec = c.mimeType;
      }
      if (r.type === 'inbound-rtp' && r.kind === 'audio') audio += r.packetsReceived || 0;
    });
    return { frames, audio, codec, display: feed.rfdisplay };
  });
}

/** Waits until the page's remote feed decodes frames and receives audio, both growing. */
async function flowing(page, who) {
  let first;
  for (const deadline = Date.now() + 30000; ; await page.waitForTimeout(250)) {
    const s = await feedStats(page);
    if (s.frames > 0 && s.audio > 0) {
      if (!first) first = s;
      else if (s.frames > first.frames && s.audio > first.audio) return s;
    }
    if (Date.now() > deadline) {
      throw new Error(`${who}: no media from the remote feed: ${JSON.stringify(s)}; page said ${page.log.slice(-10).join(' | ')}`);
    }
  }
}

/**
 * A participant with no media, joined through the raw HTTP API, that collects the room's
 * events (as a dashboard or a moderator's backend would).
 */
async function listener(room, id, janus = JANUS) {
  const post = async (url, body) => (await fetch(url, { method: 'POST', body: JSON.stringify(body) })).json();
  const session = (await post(janus, { janus: 'create', transaction: 'c' })).data.id;
  const handle = (await post(`${janus}/${session}`,
    { janus: 'attach', plugin: 'janus.plugin.videoroom', transaction: 'a' })).data.id;
  await post(`${janus}/${session}/${handle}`, {
    janus: 'message', transaction: 'j', body: { request: 'join', room, ptype: 'publisher', id, display: 'ear' },
  });
  const events = [];
  return {
    /** Waits for an event whose plugin data `wanted` takes. */
    async until(wanted, what) {
      for (const deadline = Date.now() + 30000; Date.now() < deadline;) {
        const found = events.find((e) => e.plugindata && wanted(e.plugindata.data));
        if (found) return found.plugindata.data;
        const got = await (await fetch(`${janus}/${session}?maxev=10`)).json();
        events.push(...(Array.isArray(got) ? got : [got]));
      }
      throw new Error(`${what}: not seen in ${JSON.stringify(events)}`);
    },
    close: () => post(`${janus}/${session}`, { janus: 'destroy', transaction: 'd' }),
  };
}

module.exports = { JANUS, demoServer, createRoom, joinDemo, feedStats, flowing, listener };
