'use strict';
// The differential test of the Janus door: one script of Janus API requests, sent as raw HTTP
// (with the long poll), as raw WebSocket frames and through janode 1.8.0, is run against
// Janus 1.1.2 from Debian and against Camerata; the two transcripts, normalised (random ids
// named by first appearance, SDP bodies and build details left out), must be identical.
// The deliberate differences are listed in the README ("Janus API: differences") and the
// script avoids none of them silently: each is asserted below as what it is.
//
// Run inside a network namespace with loopback and a veth end named by JANUS_IFACE (Janus
// gathers candidates on it), as tests/run-all.sh does; both servers bind 127.0.0.1 only.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const util = require('node:util');
const WebSocket = require('ws');
const { startServer, freePort } = require('../node/support/server');

const IFACE = process.env.JANUS_IFACE || 'lt0';
const OFFER = fs.readFileSync(path.join(__dirname, 'chromium-offer.sdp'), 'utf8')
  .split(/\r?\n/).filter((l) => l).join('\r\n') + '\r\n';

/** Janus 1.1.2 with only the VideoRoom plugin and the HTTP and WebSocket transports. */
async function startJanus() {
  const lib = ['/usr/lib/x86_64-linux-gnu/janus', '/usr/lib/janus'].find((p) => fs.existsSync(`${p}/plugins`));
  assert.ok(lib, 'Janus is installed (apt install janus)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'janus-diff-'));
  const others = (folder, keep) => fs.readdirSync(`${lib}/${folder}`)
    .filter((n) => n.endsWith('.so') && !keep.includes(n)).join(',');
  const [httpPort, wsPort] = [await freePort(), await freePort()];
  fs.writeFileSync(`${dir}/janus.jcfg`, `general: {
  configs_folder = "${dir}"
  plugins_folder = "${lib}/plugins"
  transports_folder = "${lib}/transports"
  events_folder = "${lib}/events"
  loggers_folder = "${lib}/loggers"
  debug_level = 2
}
nat: { ice_enforce_list = "${IFACE}" ignore_mdns = true }
plugins: { disable = "${others('plugins', ['libjanus_videoroom.so'])}" }
transports: { disable = "${others('transports', ['libjanus_http.so', 'libjanus_websockets.so'])}" }
loggers: { disable = "${others('loggers', [])}" }
events: { broadcast = false }
`);
  fs.writeFileSync(`${dir}/janus.transport.http.jcfg`, `general: { json = "compact" base_path = "/janus" http = true port = ${httpPort} ip = "127.0.0.1" https = false }
admin: { admin_http = false }
cors: { }
`);
  fs.writeFileSync(`${dir}/janus.transport.websockets.jcfg`, `general: { json = "compact" ws = true ws_port = ${wsPort} ws_ip = "127.0.0.1" wss = false }
admin: { admin_ws = false }
`);
  fs.writeFileSync(`${dir}/janus.plugin.videoroom.jcfg`, 'general: {\n}\n');
  const log = fs.openSync(`${dir}/janus.log`, 'w');
  const child = spawn('janus', ['-F', dir, '-C', `${dir}/janus.jcfg`], { stdio: ['ignore', log, log] });
  const http = `http://127.0.0.1:${httpPort}/janus`;
  for (let i = 0; ; i += 1) {
    try {
      if ((await fetch(`${http}/info`)).ok) break;
    } catch { /* not up yet */ }
    if (i > 100 || child.exitCode !== null) {
      throw new Error(`Janus did not start: ${fs.readFileSync(`${dir}/janus.log`, 'utf8').slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    http,
    ws: `ws://127.0.0.1:${wsPort}/`,
    stop: () => new Promise((resolve) => {
      child.once('exit', () => { fs.rmSync(dir, { recursive: true, force: true }); resolve(); });
      process.kill(child.pid, 'SIGTERM');
    }),
  };
}

async function startCamerata() {
  const server = await startServer();
  return { http: `${server.url}/janus`, ws: `ws://127.0.0.1:${server.port}/janus`, stop: () => server.stop() };
}

/**
 * A transcript: what each step sent and got back. Ids the servers choose (sessions, handles,
 * private ids) are named in the order they first appear; SDP bodies are reduced to what
 * they say about media sections.
 */
class Transcript {
  constructor() { this.steps = []; this.names = new Map(); }

  /** Names a server-chosen id. */
  id(value, kind) {
    if (typeof value === 'number' && !this.names.has(value)) this.names.set(value, `<${kind}${this.names.size + 1}>`);
    return value;
  }

  add(step, value) { this.steps.push([step, value]); return value; }

  /** The transcript with ids named, SDPs summarised and object keys sorted. */
  normal() {
    const walk = (v, key) => {
      if (typeof v === 'number' && this.names.has(v)) return this.names.get(v);
      if (typeof v === 'string' && key === 'sdp') {
        return v.split(/\r?\n/).filter((l) => l.startsWith('m=')).map((l) => l.split(' ')[0]).join(',');
      }
      if (typeof v === 'string' && /\d{6,}/.test(v)) {
        // An id inside a text ("No such session 4815162342").
        return v.replace(/\d{6,}/g, (d) => this.names.get(Number(d)) || d);
      }
      if (Array.isArray(v)) return v.map((x) => walk(x));
      if (v && typeof v === 'object') {
        return Object.fromEntries(Object.keys(v).sort().map((k) => [k, walk(v[k], k)]));
      }
      return v;
    };
    // Notifications to different handles may interleave differently: the events a step
    // collected are compared as a set (each handle's own stay in order: one per step).
    return this.steps.map(([step, value]) => {
      const v = walk(value);
      return [step, step.endsWith(': events') ? v.map((e) => JSON.stringify(e)).sort() : v];
    });
  }
}

/** The Janus API over plain HTTP, with a long poll that keeps what it is not asked for. */
class HttpClient {
  constructor(base, t) { this.base = base; this.t = t; this.events = []; this.n = 0; }

  async raw(method, url, body) {
    const res = await fetch(url, { method, body });
    const text = await res.text();
    try { return JSON.parse(text); } catch { return { status: res.status, text }; }
  }

  post(pathname, body) { return this.raw('POST', this.base + pathname, typeof body === 'string' ? body : JSON.stringify(body)); }

  tx() { this.n += 1; return `tx${this.n}`; }

  /** The event with `transaction` on session `sid`, from the long poll. */
  async event(sid, transaction) {
    for (const deadline = Date.now() + 20000; Date.now() < deadline;) {
      const i = this.events.findIndex((e) => e.transaction === transaction);
      if (i >= 0) return this.events.splice(i, 1)[0];
      const got = await this.raw('GET', `${this.base}/${sid}?maxev=10`);
      this.events.push(...(Array.isArray(got) ? got : [got]).filter((e) => e.janus !== 'keepalive'));
    }
    throw new Error(`no event for ${transaction}`);
  }

  /** A VideoRoom message on handle `hid`: the reply, and for an ack the event that follows. */
  async message(sid, hid, body, jsep) {
    const transaction = this.tx();
    const reply = await this.post(`/${sid}/${hid}`, { janus: 'message', transaction, body, ...(jsep ? { jsep } : {}) });
    if (reply.janus !== 'ack') return [reply];
    return [reply, await this.event(sid, transaction)];
  }
}

/** The Janus API over one WebSocket: replies by transaction, events kept in arrival order. */
class WsClient {
  constructor(url) { this.url = url; this.waiting = new Map(); this.events = []; this.n = 0; }

  open() {
    this.ws = new WebSocket(this.url, 'janus-protocol');
    this.ws.on('message', (data) => {
      const m = JSON.parse(String(data));
      const w = m.transaction && this.waiting.get(m.transaction);
      // The ack is not the reply of an asynchronous request: its event is.
      if (w && !(m.janus === 'ack' && w.untilEvent)) {
        this.waiting.delete(m.transaction);
        w.resolve(m);
      } else if (m.janus !== 'ack') {
        this.events.push(m);
      }
    });
    return new Promise((resolve, reject) => { this.ws.once('open', resolve); this.ws.once('error', reject); });
  }

  send(body, untilEvent = false) {
    this.n += 1;
    const transaction = `ws${this.n}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${JSON.stringify(body)}`)), 20000);
      this.waiting.set(transaction, { untilEvent, resolve: (m) => { clearTimeout(timer); resolve(m); } });
      this.ws.send(JSON.stringify({ ...body, transaction }));
    });
  }

  /** Events that arrived, after a pause long enough for both servers' notifications. */
  async settle() {
    await new Promise((r) => setTimeout(r, 400));
    return this.events.splice(0);
  }

  close() { this.ws.close(); }
}

/** The raw HTTP script: the core API, its errors, and the VideoRoom requests with theirs. */
async function httpScript(base) {
  const t = new Transcript();
  const c = new HttpClient(base, t);
  const info = await c.raw('GET', `${base}/info`);
  t.add('info', {
    janus: info.janus, transaction: info.transaction.length, version: info.version,
    version_string: info.version_string, plugins: Object.keys(info.plugins),
  });
  const created = t.add('create', await c.post('', { janus: 'create', transaction: 'c1' }));
  const sid = t.id(created.data.id, 'session');
  t.add('ping', await c.post('', { janus: 'ping', transaction: 'p' }));
  t.add('bad json', await c.post('', '{"janus": '));
  t.add('not an object', await c.post('', '[1]'));
  t.add('no transaction', await c.post('', { janus: 'create' }));
  t.add('unknown verb', await c.post(`/${sid}`, { janus: 'fly', transaction: 'f' }));
  t.add('message on a session', await c.post(`/${sid}`, { janus: 'message', transaction: 'm' }));
  t.add('no such session', await c.post('/123', { janus: 'keepalive', transaction: 'k' }));
  t.add('keepalive', await c.post(`/${sid}`, { janus: 'keepalive', transaction: 'k' }));
  t.add('attach echotest', await c.post(`/${sid}`, { janus: 'attach', transaction: 'a0', plugin: 'janus.plugin.echotest' }));
  const attached = t.add('attach', await c.post(`/${sid}`, { janus: 'attach', transaction: 'a1', plugin: 'janus.plugin.videoroom' }));
  const h = t.id(attached.data.id, 'handle');
  t.add('no such handle', await c.post(`/${sid}/77`, { janus: 'detach', transaction: 'd' }));
  t.add('message without body', await c.post(`/${sid}/${h}`, { janus: 'message', transaction: 'm' }));
  t.add('jsep of no type', await c.post(`/${sid}/${h}`, { janus: 'message', transaction: 'm', body: {}, jsep: { type: 'pranswer', sdp: 'v=0' } }));
  t.add('trickle without candidate', await c.post(`/${sid}/${h}`, { janus: 'trickle', transaction: 'tr' }));
  t.add('trickle completed', await c.post(`/${sid}/${h}`, { janus: 'trickle', transaction: 'tr', candidate: { completed: true } }));

  const vr = async (name, body, jsep) => t.add(name, await c.message(sid, h, body, jsep));
  await vr('no request', {});
  await vr('unknown request', { request: 'fly' });
  await vr('create', { request: 'create', room: 4242, description: 'diff', secret: 'adm', pin: '12', publishers: 2, bitrate: 1000, fir_freq: 10 });
  await vr('create again', { request: 'create', room: 4242 });
  await vr('create a string room', { request: 'create', room: 'abc' });
  await vr('create with a bad codec', { request: 'create', room: 4243, videocodec: 'theora' });
  await vr('exists', { request: 'exists', room: 4242 });
  await vr('exists not', { request: 'exists', room: 4244 });
  const listed = await c.message(sid, h, { request: 'list' });
  listed[0].plugindata.data.list = listed[0].plugindata.data.list.filter((r) => r.room === 4242);
  t.add('list', listed);
  await vr('edit without secret', { request: 'edit', room: 4242, new_description: 'x' });
  await vr('edit with a wrong secret', { request: 'edit', room: 4242, secret: 'no', new_description: 'x' });
  await vr('edit', { request: 'edit', room: 4242, secret: 'adm', new_description: 'renamed', new_publishers: 3 });
  await vr('allowed add', { request: 'allowed', room: 4242, secret: 'adm', action: 'add', allowed: ['tk'] });
  await vr('allowed remove', { request: 'allowed', room: 4242, secret: 'adm', action: 'remove', allowed: ['tk'] });
  await vr('allowed disable', { request: 'allowed', room: 4242, secret: 'adm', action: 'disable' });
  await vr('allowed bad action', { request: 'allowed', room: 4242, secret: 'adm', action: 'fly' });
  await vr('listparticipants', { request: 'listparticipants', room: 4242 });
  await vr('listforwarders', { request: 'listforwarders', room: 4242, secret: 'adm' });
  await vr('kick nobody', { request: 'kick', room: 4242, secret: 'adm', id: 9 });
  await vr('configure before join', { request: 'configure' });
  await vr('join no room', { request: 'join', room: 999, ptype: 'publisher' });
  await vr('join without pin', { request: 'join', room: 4242, ptype: 'publisher' });
  await vr('join with a wrong pin', { request: 'join', room: 4242, ptype: 'publisher', pin: '0' });
  const joined = await c.message(sid, h, { request: 'join', room: 4242, ptype: 'publisher', pin: '12', id: 11, display: 'ann' });
  t.id(joined[1].plugindata.data.private_id, 'private');
  t.add('join', joined);
  await vr('join again', { request: 'join', room: 4242, ptype: 'publisher', pin: '12' });
  await vr('unpublish unpublished', { request: 'unpublish' });
  const sub = t.id((await c.post(`/${sid}`, { janus: 'attach', transaction: 'a2', plugin: 'janus.plugin.videoroom' })).data.id, 'handle');
  t.add('subscriber without feed', await c.message(sid, sub, { request: 'join', room: 4242, ptype: 'subscriber', pin: '12' }));
  t.add('subscriber to no feed', await c.message(sid, sub, { request: 'join', room: 4242, ptype: 'subscriber', pin: '12', streams: [{ feed: 99 }] }));
  await vr('publish', { request: 'publish', audio: true, video: true }, { type: 'offer', sdp: OFFER });
  await vr('unpublish', { request: 'unpublish' });
  await vr('leave', { request: 'leave' });
  await vr('destroy with a wrong secret', { request: 'destroy', room: 4242, secret: 'no' });
  await vr('destroy', { request: 'destroy', room: 4242, secret: 'adm' });
  t.add('detach', await c.post(`/${sid}/${h}`, { janus: 'detach', transaction: 'd' }));
  t.add('destroy', await c.post(`/${sid}`, { janus: 'destroy', transaction: 'x' }));
  t.add('destroyed session', await c.post(`/${sid}`, { janus: 'keepalive', transaction: 'k' }));
  return t.normal();
}

/** The WebSocket script: three handles in one room, and what each hears of the others. */
async function wsScript(url) {
  const t = new Transcript();
  const c = new WsClient(url);
  await c.open();
  try {
    const sid = t.id(t.add('create', await c.send({ janus: 'create' })).data.id, 'session');
    const attach = async () => t.id((await c.send({ janus: 'attach', session_id: sid, plugin: 'janus.plugin.videoroom' })).data.id, 'handle');
    const [h1, h2, h3] = [await attach(), await attach(), await attach()];
    const msg = (h, body, async) => c.send({ janus: 'message', session_id: sid, handle_id: h, body }, async);
    const step = async (name, h, body, async = true) => {
      t.add(name, await msg(h, body, async));
      t.add(`${name}: events`, await c.settle());
    };
    await step('create', h3, { request: 'create', room: 5151, secret: 's', notify_joining: true }, false);
    const ann = await msg(h1, { request: 'join', room: 5151, ptype: 'publisher', id: 1, display: 'ann' }, true);
    t.id(ann.plugindata.data.private_id, 'private');
    t.add('ann joins', ann);
    t.add('ann joins: events', await c.settle());
    const bob = await msg(h2, { request: 'join', room: 5151, ptype: 'publisher', id: 2, display: 'bob' }, true);
    t.id(bob.plugindata.data.private_id, 'private');
    t.add('bob joins', bob);
    t.add('bob joins: events', await c.settle());
    await step('an id taken', h3, { request: 'join', room: 5151, ptype: 'publisher', id: 1 });
    await step('listparticipants', h3, { request: 'listparticipants', room: 5151 }, false);
    await step('kick bob', h3, { request: 'kick', room: 5151, secret: 's', id: 2 }, false);
    await step('bob configures', h2, { request: 'configure' });
    await step('ann leaves', h1, { request: 'leave' });
    await step('ann again', h1, { request: 'configure' });
    await step('destroy', h3, { request: 'destroy', room: 5151, secret: 's' }, false);
    t.add('detach', await c.send({ janus: 'detach', session_id: sid, handle_id: h1 }));
    t.add('detach: events', await c.settle());
    t.add('destroy session', await c.send({ janus: 'destroy', session_id: sid }));
  } finally {
    c.close();
  }
  return t.normal();
}

/** The janode script: what a Node backend does with janode's VideoRoom plugin. */
async function janodeScript(url) {
  const { default: Janode } = await import('janode');
  const { default: VideoRoomPlugin } = await import('janode/plugins/videoroom');
  const t = new Transcript();
  const connection = await Janode.connect({ address: { url }, max_retries: 1 });
  const outcome = async (name, p) => {
    try {
      t.add(name, await p);
    } catch (e) {
      t.add(name, { rejected: String(e.message || e) });
    }
  };
  try {
    const session = await connection.create();
    const handle = await session.attach(VideoRoomPlugin);
    await outcome('create', handle.create({ room: 6161, description: 'janode', max_publishers: 2, secret: 's' }));
    await outcome('create again', handle.create({ room: 6161 }));
    await outcome('exists', handle.exists({ room: 6161 }));
    const list = await handle.list();
    t.add('list', list.list.filter((r) => r.room === 6161));
    const pub = await session.attach(VideoRoomPlugin);
    const joined = await pub.joinPublisher({ room: 6161, feed: 21, display: 'cat' });
    t.id(joined.private_id, 'private');
    t.add('joinPublisher', joined);
    await outcome('joinPublisher again', pub.joinPublisher({ room: 6161 }));
    await outcome('listParticipants', handle.listParticipants({ room: 6161 }));
    await outcome('kick nobody', handle.kick({ room: 6161, feed: 99, secret: 's' }));
    await outcome('leave', pub.leave());
    await outcome('destroy wrong secret', handle.destroy({ room: 6161, secret: 'x' }));
    await outcome('destroy', handle.destroy({ room: 6161, secret: 's' }));
    await outcome('exists after', handle.exists({ room: 6161 }));
    await session.destroy();
  } finally {
    await connection.close().catch(() => {});
  }
  return t.normal();
}

/**
 * The deliberate differences (README, "Janus API: differences"), by script and step: why, and
 * what Camerata answers instead. Each must still differ, and Camerata must answer as stated.
 */
const DIFFERENCES = {
  HTTP: {
    'bad json': {
      why: 'the JSON parser\'s own words after "JSON error: on line N:" (jansson vs serde_json)',
      camerata: (v) => v.error.code === 454 && v.error.reason.startsWith('JSON error: on line 1: '),
    },
    unpublish: {
      why: 'a publisher counts as published once its offer is answered (as on OpenVidu), not once its peer connection is up; the script\'s offer never connects, so Janus still has nothing to unpublish',
      camerata: (v) => v[1].plugindata.data.unpublished === 'ok',
    },
  },
};

/** Compares two transcripts step by step, naming the steps that differ. */
function same(camerata, janus, what) {
  if (process.env.JANUS_DIFF_DUMP) {
    // For investigating a difference: both transcripts, one step per line.
    for (const [who, t] of [['camerata', camerata], ['janus', janus]]) {
      fs.writeFileSync(path.join(process.env.JANUS_DIFF_DUMP, `${what}-${who}.txt`),
        t.map((s) => JSON.stringify(s)).join('\n') + '\n');
    }
  }
  const deliberate = DIFFERENCES[what] || {};
  const differing = janus.filter((step, i) => !util.isDeepStrictEqual(step, camerata[i]))
    .map((step) => step[0]);
  for (const [step, d] of Object.entries(deliberate)) {
    assert.ok(differing.includes(step), `${what}: "${step}" no longer differs: take it off the list`);
    const mine = camerata.find((s) => s[0] === step);
    assert.ok(mine && d.camerata(mine[1]), `${what}: "${step}": ${d.why}; Camerata said ${JSON.stringify(mine)}`);
  }
  assert.deepEqual(differing.filter((s) => !deliberate[s]), [],
    `${what}: steps that differ (JANUS_DIFF_DUMP=<folder> writes both)`);
  assert.equal(camerata.length, janus.length, `${what}: as many steps`);
}

test('raw HTTP, raw WebSocket and janode get the same answers from Camerata as from Janus 1.1.2', async () => {
  const janus = await startJanus();
  let camerata;
  try {
    camerata = await startCamerata();
    same(await httpScript(camerata.http), await httpScript(janus.http), 'HTTP');
    same(await wsScript(camerata.ws), await wsScript(janus.ws), 'WebSocket');
    same(await janodeScript(camerata.ws), await janodeScript(janus.ws), 'janode');
  } finally {
    if (camerata) await camerata.stop();
    await janus.stop();
  }
});
