'use strict';
// Three Camerata nodes sharing one PostgreSQL, in this loopback-only namespace, with the
// unmodified openvidu-browser in headless Chromium: sessions created through node 1 land on
// every node; browsers joining with those tokens reach the node of their room and see each
// other's media; a REST call on node 3 puts out a browser of node 2; SIGKILL of node 2: its
// browser's connection drops, the survivor that takes its rooms sends `nodeCrashed`, and a
// new session lands on a survivor, where browsers meet again.
const test = require('node:test');
const assert = require('node:assert/strict');
const { OpenVidu, OpenViduRole } = require('openvidu-node-client');
const { launch, staticServer, waitFor, receiver } = require('./support');
const { startServer, tempDir } = require('../node/support/server');
const { startPostgres } = require('../node/support/postgres');

async function decoding(page, id, who) {
  let first;
  for (const deadline = Date.now() + 25000; ; await page.waitForTimeout(250)) {
    const s = (await page.evaluate(() => window.ovStats()))[id];
    if (s && s.frames > 0) {
      if (!first) first = s.frames;
      else if (s.frames > first) return s;
    }
    if (Date.now() > deadline) throw new Error(`${who}: no frames decoded from ${id}: ${JSON.stringify(s)}`);
  }
}

test('three nodes: browsers meet in rooms spread over the cluster, and survive a node', async (t) => {
  const pg = await startPostgres();
  t.after(() => pg.stop());
  const databaseUrl = pg.createDatabase('cluster');
  const hook = await receiver();
  t.after(() => hook.close());
  const nodes = [];
  t.after(async () => { for (const n of nodes) await n.stop('SIGKILL'); });
  for (const i of [1, 2, 3]) {
    nodes.push(await startServer({ dir: tempDir(), databaseUrl, args: ['--cluster', 'true', '--node-id', `node${i}`,
      '--cluster-lease', '3', '--udp-port', String(42000 + i), '--webhook', 'true', '--webhook-endpoint', hook.url] }));
  }
  const site = await staticServer();
  t.after(() => site.close());
  const { browser, cleanup } = await launch();
  t.after(cleanup);
  const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
  const url = `http://127.0.0.1:${site.address().port}/`;

  const ov = new OpenVidu(nodes[0].url, nodes[0].secret);
  ov.enableProdMode();
  const rooms = [];
  for (let i = 0; i < 3; i += 1) {
    const session = await ov.createSession();
    const pub = await session.createConnection({ role: OpenViduRole.PUBLISHER });
    const sub = await session.createConnection({ role: OpenViduRole.SUBSCRIBER });
    const port = Number(new URL(pub.token.replace(/^ws/, 'http')).port);
    rooms.push({ session, pub, sub, node: nodes.findIndex((n) => n.port === port) });
  }
  assert.deepEqual(rooms.map((r) => r.node).sort(), [0, 1, 2], 'one session on each node');

  // In every room a publisher and a subscriber, each on the node of its room.
  for (const room of rooms) {
    room.pages = {};
    for (const [name, conn] of [['pub', room.pub], ['sub', room.sub]]) {
      const page = await context.newPage();
      await page.goto(url);
      await page.evaluate(() => { window.autoSubscribe = true; });
      await page.evaluate(([tk, n]) => window.ovJoin(tk, n), [conn.token, name]);
      room.pages[name] = page;
    }
    await room.pages.pub.evaluate(() => window.ovPublish());
  }
  for (const room of rooms) {
    await decoding(room.pages.sub, room.pub.connectionId, `subscriber on node ${room.node + 1}`);
  }

  // A REST call on node 3 puts out the subscriber of node 2's room.
  const on2 = rooms.find((r) => r.node === 1);
  const ov3 = new OpenVidu(nodes[2].url, nodes[2].secret);
  ov3.enableProdMode();
  await ov3.fetch();
  const seen = ov3.activeSessions.find((s) => s.sessionId === on2.session.sessionId);
  await seen.forceDisconnect(on2.sub.connectionId);
  await waitFor(on2.pages.sub, () => window.events.some((e) => e.type === 'sessionDisconnected'
    && e.reason === 'forceDisconnectByServer'), null, 'the subscriber of node 2 is put out');

  // SIGKILL of node 2 with its publisher in the call.
  await nodes[1].stop('SIGKILL');
  const left = await (async () => {
    for (const deadline = Date.now() + 30000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      const e = hook.bodies.map((b) => b.body).find((b) => b.event === 'participantLeft'
        && b.sessionId === on2.session.sessionId && b.connectionId === on2.pub.connectionId);
      if (e) return e;
    }
    throw new Error(`no participantLeft for node 2's publisher: ${JSON.stringify(hook.bodies.map((b) => b.body.event))}`);
  })();
  assert.equal(left.reason, 'nodeCrashed');
  // The other rooms go on.
  for (const room of rooms.filter((r) => r !== on2)) {
    await decoding(room.pages.sub, room.pub.connectionId, `subscriber on node ${room.node + 1} after the crash`);
  }
  // A new session lands on a survivor; browsers meet there.
  const again = await ov.createSession();
  const p = await again.createConnection({ role: OpenViduRole.PUBLISHER });
  const s = await again.createConnection({ role: OpenViduRole.SUBSCRIBER });
  const port = Number(new URL(p.token.replace(/^ws/, 'http')).port);
  assert.ok([nodes[0].port, nodes[2].port].includes(port), `the new session is on a survivor (${port})`);
  const pages = [];
  for (const [name, conn] of [['pub2', p], ['sub2', s]]) {
    const page = await context.newPage();
    await page.goto(url);
    await page.evaluate(() => { window.autoSubscribe = true; });
    await page.evaluate(([tk, n]) => window.ovJoin(tk, n), [conn.token, name]);
    pages.push(page);
  }
  await pages[0].evaluate(() => window.ovPublish());
  await decoding(pages[1], p.connectionId, 'the subscriber of the new session');
  await context.close();
});
