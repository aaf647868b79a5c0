'use strict';
// Captures the fuzz targets' seed corpus from real traffic: one openvidu-browser call in
// headless Chromium against the camerata binary, its JSON-RPC frames (tokens replaced by
// @TOKEN@ for rpc_frames), its SDP offers, the tokens the server and the opentok SDK issue,
// the REST bodies openvidu-node-client and the opentok SDK send, and, when tcpdump is given
// (TCPDUMP_PCAP, written by the caller around this run), the UDP datagrams of the call.
// Run from the repository root inside a loopback-only namespace (see fuzz/README.md).
const fs = require('node:fs');
const path = require('node:path');
const { OpenVidu } = require('openvidu-node-client');
const OpenTok = require('opentok');
const { launch, staticServer } = require('../../tests/browser/support');
const { startServer } = require('../../tests/node/support/server');

const OUT = path.join(__dirname, '..', 'corpus');
function seed(target, name, data) {
  const dir = path.join(OUT, target);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, name), data);
}

(async () => {
  const project = ['47000001', '6d0c1a5b2f3e4d5c6b7a8f9e0d1c2b3a4f5e6d7c'];
  const server = await startServer({ args: ['--opentok-project', project.join(':'), '--udp-port', process.env.MEDIA_PORT || '40999'] });
  // REST bodies as the SDKs send them: a recording proxy between them and the server.
  const http = require('node:http');
  const bodies = [];
  const proxy = http.createServer((req, res) => {
    let body = Buffer.alloc(0);
    req.on('data', (c) => { body = Buffer.concat([body, c]); });
    req.on('end', () => {
      if (body.length) bodies.push({ path: req.url, body });
      const up = http.request({ host: '127.0.0.1', port: server.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.end(body);
    });
  });
  await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
  const via = `http://127.0.0.1:${proxy.address().port}`;
  const site = await staticServer();
  const { browser, cleanup } = await launch();
  try {
    const ov = new OpenVidu(via, server.secret);
    const session = await ov.createSession({ customSessionId: 'fuzz', recordingMode: 'MANUAL', mediaMode: 'ROUTED' });
    const tokens = [];
    for (const role of ['PUBLISHER', 'SUBSCRIBER']) {
      const c = await session.createConnection({ role, data: `seed-${role}` });
      tokens.push(c.token);
    }
    const ot = new OpenTok(project[0], project[1], { apiUrl: via });
    const otSession = await new Promise((resolve, reject) => ot.createSession({ mediaMode: 'routed' }, (e, s) => (e ? reject(e) : resolve(s))));
    await new Promise((resolve) => ot.signal(otSession.sessionId, null, { type: 'chat', data: 'x' }, () => resolve()));
    await new Promise((resolve) => ot.startArchive(otSession.sessionId, { name: 'n', outputMode: 'composed' }, () => resolve()));
    const otTokens = [ot.generateToken(otSession.sessionId), ot.generateToken(otSession.sessionId, { role: 'moderator', data: 'd' }, true)];

    const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
    const pages = [];
    const frames = [];
    for (const [i, token] of tokens.entries()) {
      const page = await context.newPage();
      await page.addInitScript(() => {
        window.sentFrames = [];
        const send = WebSocket.prototype.send;
        WebSocket.prototype.send = function (data) { window.sentFrames.push(String(data)); return send.call(this, data); };
      });
      await page.goto(`http://127.0.0.1:${site.address().port}/`);
      await page.evaluate(() => { window.autoSubscribe = true; });
      await page.evaluate(([t, n]) => window.ovJoin(t, n), [token, `p${i}`]);
      if (i === 0) await page.evaluate(() => window.ovPublish());
      pages.push(page);
    }
    await new Promise((r) => setTimeout(r, 4000));
    await pages[0].evaluate(() => window.ovSignal({ data: 'hello', type: 'chat' }));
    await new Promise((r) => setTimeout(r, 500));
    for (const page of pages) {
      frames.push(...(await page.evaluate(() => window.sentFrames)));
      await page.evaluate(() => window.session.disconnect());
    }
    await new Promise((r) => setTimeout(r, 500));
    const all = tokens.concat(otTokens);
    const blank = (f) => all.reduce((t, tok) => t.split(JSON.stringify(tok).slice(1, -1)).join('@TOKEN@'), f);
    // rpc_frames: the whole conversation of each page, and each frame alone.
    seed('rpc_frames', 'conversation', frames.map(blank).join('\n'));
    frames.forEach((f, i) => seed('rpc_frames', `frame-${String(i).padStart(3, '0')}`, blank(f)));
    // sdp_offers: every offer the browsers made.
    let n = 0;
    for (const f of frames) {
      const m = JSON.parse(f);
      const offer = m.params && (m.params.sdpOffer || m.params.sdpString);
      if (offer) seed('sdp_offers', `offer-${n++}`, offer);
    }
    // tokens: what the server and the SDK issued (the token query value of each URL).
    all.forEach((t, i) => seed('tokens', `token-${i}`, t.includes('token=') ? t.split('token=')[1] : t));
    // rest_bodies: the first byte picks the route in fuzz_targets/rest_bodies.rs.
    const route = (p) => (p.startsWith('/openvidu/api/sessions/') && p.endsWith('/connection') ? 1
      : p === '/openvidu/api/sessions' ? 0 : p === '/openvidu/api/signal' ? 3
        : p.startsWith('/openvidu/api/recordings/start') ? 4 : p === '/session/create' ? 6
          : p.endsWith('/archive') ? 7 : p.includes('/signal') ? 3 : 0);
    bodies.forEach((b, i) => seed('rest_bodies', `body-${i}`, Buffer.concat([Buffer.from([route(b.path)]), b.body])));
    console.log(`captured ${frames.length} frames, ${n} offers, ${all.length} tokens, ${bodies.length} bodies`);
    await context.close();
  } finally {
    await cleanup();
    site.close();
    proxy.close();
    await server.stop();
  }
})().catch((e) => { console.error(e); process.exit(1); });
