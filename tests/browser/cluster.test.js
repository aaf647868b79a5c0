'use strict';
// Three Camerata nodes sharing one PostgreSQL, in this loopback-only namespace, with the
// unmodified openvidu-browser in headless Chromium, each node public behind the front an
// operator puts before a cluster (HAProxy: a node's address reaches the others while it is
// down): sessions created through node 1 land on every node; browsers joining with those
// tokens reach the node of their room and see each other's media; a REST call on node 3 puts
// out a browser of node 2; SIGKILL of node 2: its browser's connection drops, the survivor
// that takes its rooms sends `nodeCrashed`, browsers holding its pending tokens meet on a
// survivor, and a new session lands on a survivor. A room larger than a node: subscribers on
// the other nodes get the publisher over the relay, and those of a node that dies reconnect
// through their client's own reconnect and see the publisher again.
const test = require('node:test');
const assert = require('node:assert/strict');
const { OpenVidu, OpenViduRole } = require('openvidu-node-client');
const { launch, staticServer, waitFor, receiver } = require('./support');
const { startServer, tempDir, freePort } = require('../node/support/server');
const { startPostgres } = require('../node/support/postgres');
const { startFront } = require('../node/support/front');
const { demoServer, createRoom, joinDemo, flowing, listener } = require('./janus-support');
const { http: rest } = require('../node/support/server');

/** Resolves once `page` decodes more and more frames from `id` (`from`: only while its media
 * comes from those ports). */
async function decoding(page, id, who, from = null) {
  let first;
  for (const deadline = Date.now() + 25000; ; await page.waitForTimeout(250)) {
    const s = (await page.evaluate(() => window.ovStats()))[id];
    if (from && s && !(s.ports && s.ports.length && s.ports.every((p) => from.includes(p)))) {
      first = undefined;
    } else if (s && s.frames > 0) {
      if (!first) first = s.frames;
      else if (s.frames > first) return s;
    }
    if (Date.now() > deadline) throw new Error(`${who}: no frames decoded from ${id}: ${JSON.stringify(s)}`);
  }
}

/** Three cluster nodes on a PostgreSQL of this namespace, with a webhook receiver, public on
 * the front's ports (`front`: what their tokens name); each node's media port is
 * `udpBase + i`; `extra` flags for every node. Stopped by the test. */
async function cluster(t, name, udpBase, extra = []) {
  const pg = await startPostgres();
  t.after(() => pg.stop());
  const databaseUrl = pg.createDatabase(name);
  const hook = await receiver();
  t.after(() => hook.close());
  const nodes = [];
  t.after(async () => { for (const n of nodes) await n.stop('SIGKILL'); });
  for (const i of [1, 2, 3]) {
    // The node listens on `port`; its public address is its port on the front; the other
    // nodes call it on its own.
    const [port, front] = [await freePort(), await freePort()];
    const node = await startServer({ dir: tempDir(), databaseUrl, port, args: ['--cluster', 'true', '--node-id', `node${i}`,
      '--https-port', String(front), '--cluster-url', `http://127.0.0.1:${port}`,
      '--cluster-lease', '3', '--udp-port', String(udpBase + i), '--webhook', 'true', '--webhook-endpoint', hook.url,
      ...extra] });
    nodes.push(Object.assign(node, { front, name: `node${i}` }));
  }
  const front = await startFront(nodes);
  t.after(() => front.stop());
  /** The node that owns each room, as the database says. */
  const owners = () => Object.fromEntries(pg.query(name, 'SELECT id, owner FROM rooms'));
  return { nodes, hook, owners };
}

/** Headless Chromium and the test site, closed when the test ends. */
async function browsers(t) {
  const site = await staticServer();
  t.after(() => site.close());
  const { browser, cleanup } = await launch();
  t.after(cleanup);
  const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
  return { context, url: `http://127.0.0.1:${site.address().port}/` };
}

/** A page of the test site joined with `token` as `name`, subscribing to every stream. */
async function joinPage(context, url, token, name) {
  const page = await context.newPage();
  await page.goto(url);
  await page.evaluate(() => { window.autoSubscribe = true; });
  await page.evaluate(([tk, n]) => window.ovJoin(tk, n), [token, name]);
  return page;
}

test('three nodes: browsers meet in rooms spread over the cluster, and survive a node', async (t) => {
  // One recording folder for the three nodes (a shared volume in a real cluster).
  const recordings = tempDir();
  const { nodes, hook } = await cluster(t, 'cluster', 42000, ['--recording', 'true', '--recording-path', recordings]);
  const { context, url } = await browsers(t);

  const ov = new OpenVidu(nodes[0].url, nodes[0].secret);
  ov.enableProdMode();
  const rooms = [];
  for (let i = 0; i < 3; i += 1) {
    const session = await ov.createSession();
    const pub = await session.createConnection({ role: OpenViduRole.PUBLISHER });
    const sub = await session.createConnection({ role: OpenViduRole.SUBSCRIBER });
    const port = Number(new URL(pub.token.replace(/^ws/, 'http')).port);
    rooms.push({ session, pub, sub, node: nodes.findIndex((n) => n.front === port) });
  }
  assert.deepEqual(rooms.map((r) => r.node).sort(), [0, 1, 2], 'one session on each node');

  // In every room a publisher and a subscriber, each on the node of its room.
  for (const room of rooms) {
    room.pages = {};
    for (const [name, conn] of [['pub', room.pub], ['sub', room.sub]]) {
      const page = await joinPage(context, url, conn.token, name);
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

  // Node 2's room is being recorded (started through node 1) when node 2 is killed with its
  // publisher in the call.
  const recording = await ov.startRecording(on2.session.sessionId, { outputMode: 'INDIVIDUAL', name: 'crash' });
  // Two tokens of node 2's room not used yet: they name node 2's public address.
  const pending = [await on2.session.createConnection({ role: OpenViduRole.PUBLISHER }),
    await on2.session.createConnection({ role: OpenViduRole.SUBSCRIBER })];
  await new Promise((r) => setTimeout(r, 2500));
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
  // The survivor finished the recording from the files node 2 left in the shared folder.
  const finished = await (async () => {
    for (const deadline = Date.now() + 30000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
      const r = await ov.getRecording(recording.id).catch(() => null);
      if (r && ['ready', 'failed'].includes(r.status)) return r;
    }
    throw new Error('the crashed node\'s recording was not settled');
  })();
  assert.equal(finished.status, 'ready', JSON.stringify(finished));
  assert.ok(finished.size > 0 && finished.duration > 0, JSON.stringify(finished));
  const stopped = hook.bodies.map((b) => b.body).find((b) => b.event === 'recordingStatusChanged'
    && b.id === recording.id && b.status === 'ready');
  assert.ok(stopped, 'recordingStatusChanged ready delivered');
  assert.equal(stopped.reason, 'nodeCrashed');
  // The other rooms go on.
  for (const room of rooms.filter((r) => r !== on2)) {
    await decoding(room.pages.sub, room.pub.connectionId, `subscriber on node ${room.node + 1} after the crash`);
  }
  // Browsers holding node 2's pending tokens, unchanged, land on a survivor through node 2's
  // public address and meet in its room, which a survivor took over.
  const late = [];
  for (const [name, conn] of [['pub-late', pending[0]], ['sub-late', pending[1]]]) {
    late.push(await joinPage(context, url, conn.token, name));
  }
  await late[0].evaluate(() => window.ovPublish());
  await decoding(late[1], pending[0].connectionId, 'a pending token of the dead node, used after it died');
  await on2.session.fetch();
  assert.deepEqual(on2.session.activeConnections.map((c) => c.connectionId).sort(),
    pending.map((c) => c.connectionId).sort(), 'node 2\'s room lives on a survivor with its late browsers');
  // A new session lands on a survivor; browsers meet there.
  const again = await ov.createSession();
  const p = await again.createConnection({ role: OpenViduRole.PUBLISHER });
  const s = await again.createConnection({ role: OpenViduRole.SUBSCRIBER });
  const port = Number(new URL(p.token.replace(/^ws/, 'http')).port);
  assert.ok([nodes[0].front, nodes[2].front].includes(port), `the new session is on a survivor (${port})`);
  const pages = [];
  for (const [name, conn] of [['pub2', p], ['sub2', s]]) {
    const page = await joinPage(context, url, conn.token, name);
    pages.push(page);
  }
  await pages[0].evaluate(() => window.ovPublish());
  await decoding(pages[1], p.connectionId, 'the subscriber of the new session');
  await context.close();
});

const portOf = (token) => Number(new URL(token.replace(/^ws/, 'http')).port);

/** A webinar on a cluster whose owners carry one subscriber each: a publisher on the owner
 * and three subscribers, the first on the owner and the next two on the other nodes, each
 * decoding the publisher with its media from its own node's port. */
async function startWebinar(t, name, udpBase, extra = []) {
  const { nodes, hook } = await cluster(t, name, udpBase, ['--cluster-room-subscribers', '1', ...extra]);
  const { context, url } = await browsers(t);

  const ov = new OpenVidu(nodes[0].url, nodes[0].secret);
  ov.enableProdMode();
  const webinar = await ov.createSession({ customSessionId: name });
  const pub = await webinar.createConnection({ role: OpenViduRole.PUBLISHER });
  const owner = portOf(pub.token);
  const subs = [];
  for (let i = 0; i < 3; i += 1) subs.push(await webinar.createConnection({ role: OpenViduRole.SUBSCRIBER }));
  const ports = subs.map((s) => portOf(s.token));
  assert.equal(ports[0], owner, 'the first subscriber stays on the owner');
  assert.deepEqual(ports.slice(1).sort(), nodes.map((n) => n.front).filter((p) => p !== owner).sort(),
    'the next subscribers are on the two other nodes');

  const pages = [];
  for (const [name, conn] of [['pub', pub], ['s1', subs[0]], ['s2', subs[1]], ['s3', subs[2]]]) {
    const page = await joinPage(context, url, conn.token, name);
    pages.push(page);
  }
  await pages[0].evaluate(() => window.ovPublish());
  for (const [i, page] of pages.slice(1).entries()) {
    const s = await decoding(page, pub.connectionId, `subscriber ${i + 1} on port ${ports[i]}`);
    // Its media comes from the media port of the node its token named: the edges fan out
    // the stream they get over the relay.
    const node = nodes.findIndex((n) => n.front === ports[i]);
    assert.deepEqual([...new Set(s.ports)], [udpBase + 1 + node], `subscriber ${i + 1}'s media from node ${node + 1}`);
  }
  return { nodes, hook, context, url, webinar, pub, subs, ports, pages };
}

test('a room larger than a node: subscribers on the other nodes get the publisher over the relay', async (t) => {
  const { nodes, hook, context, url, webinar, pub, subs, ports, pages } = await startWebinar(t, 'webinar', 42100);
  // One room: everyone is in the owner's view, with their subscriptions; webhooks from it.
  await webinar.fetch();
  assert.equal(webinar.activeConnections.length, 4);
  for (const s of subs) {
    const c = webinar.activeConnections.find((x) => x.connectionId === s.connectionId);
    assert.equal(c.subscribers.length, 1, `${s.connectionId} subscribes`);
  }
  const joined = hook.bodies.map((b) => b.body).filter((b) => b.event === 'participantJoined' && b.sessionId === webinar.sessionId);
  assert.equal(joined.length, 4);
  // A signal reaches a subscriber on another node; a REST call on a third node puts one out.
  await pages[2].evaluate(() => { window.events = window.events.filter((e) => e.type !== 'signal'); });
  const edgeNode = nodes.find((n) => n.front === ports[1]);
  const signal = await fetch(`${edgeNode.url}/openvidu/api/signal`, {
    method: 'POST',
    headers: { authorization: 'Basic ' + Buffer.from(`OPENVIDUAPP:${edgeNode.secret}`).toString('base64'), 'content-type': 'application/json' },
    body: JSON.stringify({ session: webinar.sessionId, type: 'hello', data: 'to all' }),
  });
  assert.equal(signal.status, 200);
  await waitFor(pages[2], () => window.events.some((e) => e.type === 'signal' && e.data === 'to all'), null,
    'the subscriber on another node gets the signal');
  const other = new OpenVidu(nodes.find((n) => n.front === ports[2]).url, nodes[0].secret);
  other.enableProdMode();
  await other.fetch();
  await other.activeSessions.find((s) => s.sessionId === webinar.sessionId).forceDisconnect(subs[2].connectionId);
  await waitFor(pages[3], () => window.events.some((e) => e.type === 'sessionDisconnected'
    && e.reason === 'forceDisconnectByServer'), null, 'the subscriber on the third node is put out');
  // The others still decode.
  await decoding(pages[2], pub.connectionId, 'the subscriber on the second node, after');
  // SIGKILL of the second subscriber's node: the owner's publisher and its own subscriber go
  // on; the subscriber of the dead node reconnects through its client's own reconnect (its
  // node's address now reaches a survivor) and sees the publisher again, its media from a
  // live node; a new subscriber is placed on a live node and sees the publisher.
  const edge = nodes.findIndex((n) => n.front === ports[1]);
  await nodes[edge].stop('SIGKILL');
  await decoding(pages[1], pub.connectionId, 'the subscriber on the owner, after the edge died');
  await waitFor(pages[2], () => window.events.some((e) => e.type === 'reconnected'), null,
    'the subscriber of the dead node reconnects');
  const live = nodes.map((n, i) => 42101 + i).filter((_, i) => i !== edge);
  await decoding(pages[2], pub.connectionId, 'the subscriber of the dead node, reconnected', live);
  await new Promise((r) => setTimeout(r, 3500)); // the dead node's lease runs out
  const late = await webinar.createConnection({ role: OpenViduRole.SUBSCRIBER });
  assert.notEqual(portOf(late.token), nodes[edge].front, 'not placed on the dead node');
  const page = await joinPage(context, url, late.token, 'late');
  await decoding(page, pub.connectionId, 'a subscriber that came after the edge died');
  await context.close();
});

test('a room larger than a node, the server offering: the edges make the subscribers\' offers', async (t) => {
  // openvidu-browser in its mediasoup mode: each subscription is the server's offer, made by
  // the node that serves the subscriber's media; every subscriber decodes from its node.
  const { context } = await startWebinar(t, 'offers', 42300, ['--server-offers', 'true']);
  await context.close();
});

test('the Janus door in a cluster: demo pages on two nodes meet in a room a third node owns', async (t) => {
  const { nodes, owners } = await cluster(t, 'janus', 42200);
  const { context } = await browsers(t);
  const janus = (n) => `${n.url}/janus`;
  // Rooms created through node 1's Janus API spread over the nodes by load.
  const rooms = [5151, 5152, 5153];
  for (const room of rooms) await createRoom(room, {}, janus(nodes[0]));
  const owner = owners();
  assert.deepEqual(rooms.map((r) => owner[r]).sort(), ['node1', 'node2', 'node3'], JSON.stringify(owner));
  const room = rooms.find((r) => owner[r] === 'node2');
  // Every node's Janus API answers for every room: a participant joins it through each.
  for (const n of nodes) {
    const ear = await listener(room, 90 + nodes.indexOf(n), janus(n));
    await ear.until((d) => d.videoroom === 'joined' && d.room === room, `joined through ${n.name}`);
    await ear.close();
  }
  // Demo pages talking to node 1 and to node 3 join node 2's room and receive each other.
  const sites = [];
  for (const n of [nodes[0], nodes[2]]) {
    const site = await demoServer(janus(n));
    t.after(() => site.close());
    sites.push(`http://127.0.0.1:${site.address().port}/videoroomtest.html?room=${room}`);
  }
  const ann = await joinDemo(context, sites[0], 'ann');
  const bob = await joinDemo(context, sites[1], 'bob');
  assert.equal((await flowing(ann, 'ann, through node 1')).display, 'bob');
  assert.equal((await flowing(bob, 'bob, through node 3')).display, 'ann');
  // One room, node 2's: the OpenVidu REST API of node 3 sees both publishers in it.
  const session = await rest(nodes[2], 'GET', `/openvidu/api/sessions/${room}`);
  assert.equal(session.status, 200, session.text);
  assert.deepEqual(session.json.connections.content.filter((c) => c.publishers.length)
    .map((c) => c.clientData).sort(), ['ann', 'bob']);
  // SIGKILL of node 2: a participant that joined through node 1 is told its room's node died.
  const ear = await listener(room, 99, janus(nodes[0]));
  await ear.until((d) => d.videoroom === 'joined', 'the last participant joined');
  await nodes[1].stop('SIGKILL');
  await ear.until((d) => d.leaving === 'ok' && d.reason === 'nodeCrashed', 'the room\'s node died');
  await ear.close();
  await context.close();
});
