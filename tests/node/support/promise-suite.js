'use strict';
// One suite of the openvidu-node-client 2.32 promise API, run against a Camerata server with
// whichever implementation it is given: the real `openvidu-node-client` or
// `camerata/openvidu-node-client`. It asserts what each call must return and records a
// normalised transcript of everything observable, so two runs can be compared.
const assert = require('node:assert/strict');
const { http } = require('./server');

const TOKEN_RE = /^ws:\/\/127\.0\.0\.1:\d+\?sessionId=[A-Za-z0-9_-]+&token=tok_[A-Za-z0-9_.-]+$/;

/**
 * Replaces what differs between two runs (ids, tokens, times) with placeholders. A key whose
 * value is `undefined` counts as absent, as it does in JSON.
 */
function normalise(value, tag) {
  if (Array.isArray(value)) return value.map((v) => normalise(v, tag));
  if (value && typeof value === 'object') {
    const out = {};
    for (const k of Object.keys(value).sort()) {
      const v = value[k];
      if (k.startsWith('_') || k === 'ov' || v === undefined) continue;
      out[k] = (k === 'createdAt' || k === 'activeAt') && typeof v === 'number' ? '<ms>' : normalise(v, tag);
    }
    return out;
  }
  if (typeof value === 'string') {
    return value
      .split(tag).join('<tag>')
      .replace(/tok_[A-Za-z0-9_.-]+/g, 'tok_<jwt>')
      .replace(/ses_[A-Za-z0-9]{10}/g, 'ses_<id>')
      .replace(/con_[A-Za-z0-9]{10}/g, 'con_<id>');
  }
  return value;
}

/** Runs every step with `lib`; returns the transcript. */
async function runSuite(lib, server, tag) {
  const transcript = [];
  const record = (label, value) => transcript.push([label, normalise(value, tag)]);
  const { OpenVidu, OpenViduRole, MediaMode, RecordingMode, RecordingLayout, VideoCodec, ConnectionType } = lib;
  const ov = new OpenVidu(server.url, server.secret);
  ov.enableProdMode();
  const errorOf = async (promise) => {
    try {
      await promise;
    } catch (e) {
      assert.ok(e instanceof Error);
      return e.message;
    }
    assert.fail('expected a rejection');
  };

  // createSession with defaults
  const s = await ov.createSession();
  assert.match(s.sessionId, /^ses_[A-Z][0-9A-Za-z]{9}$/);
  assert.equal(typeof s.createdAt, 'number');
  assert.equal(s.properties.mediaMode, MediaMode.ROUTED);
  assert.equal(s.properties.recordingMode, RecordingMode.MANUAL);
  assert.equal(s.properties.customSessionId, '');
  assert.equal(s.properties.forcedVideoCodec, VideoCodec.MEDIA_SERVER_PREFERRED);
  assert.equal(s.properties.defaultRecordingProperties.resolution, '1280x720');
  assert.deepEqual(s.connections, []);
  assert.deepEqual(s.activeConnections, []);
  assert.equal(s.recording, false);
  assert.ok(ov.activeSessions.includes(s));
  record('createSession()', s);

  // createSession with every property, then again with the same custom id (409 -> fetch)
  const custom = `${tag}-room`;
  const full = await ov.createSession({
    customSessionId: custom,
    mediaMode: MediaMode.ROUTED,
    recordingMode: RecordingMode.ALWAYS,
    forcedVideoCodec: VideoCodec.H264,
    allowTranscoding: true,
    mediaNode: { id: 'media_node_1' },
    defaultRecordingProperties: {
      name: 'rec', outputMode: 'COMPOSED', recordingLayout: RecordingLayout.PICTURE_IN_PICTURE,
      resolution: '640x480', frameRate: 30, hasAudio: true, hasVideo: true, shmSize: 536870912,
    },
  });
  assert.equal(full.sessionId, custom);
  assert.equal(full.properties.recordingMode, RecordingMode.ALWAYS);
  assert.equal(full.properties.forcedVideoCodec, VideoCodec.H264);
  assert.equal(full.properties.allowTranscoding, true);
  assert.equal(full.properties.defaultRecordingProperties.recordingLayout, 'PICTURE_IN_PICTURE');
  record('createSession(all)', full);
  const again = await ov.createSession({ customSessionId: custom });
  assert.equal(again.sessionId, custom);
  assert.equal(again.createdAt, full.createdAt);
  assert.equal(again.properties.recordingMode, RecordingMode.ALWAYS);
  record('createSession(taken id)', again);

  // createConnection with defaults and with every WEBRTC property
  const c = await s.createConnection();
  assert.match(c.connectionId, /^con_[A-Z][0-9A-Za-z]{9}$/);
  assert.equal(c.status, 'pending');
  assert.match(c.token, TOKEN_RE);
  assert.equal(c.connectionProperties.type, ConnectionType.WEBRTC);
  assert.equal(c.connectionProperties.role, OpenViduRole.PUBLISHER);
  assert.equal(c.connectionProperties.data, '');
  assert.equal(c.connectionProperties.record, true);
  assert.deepEqual(c.connectionProperties.customIceServers, []);
  assert.deepEqual(c.publishers, []);
  record('createConnection()', c);
  const rich = await s.createConnection({
    type: ConnectionType.WEBRTC,
    data: JSON.stringify({ user: 'ana' }),
    record: false,
    role: OpenViduRole.MODERATOR,
    kurentoOptions: { videoMaxRecvBandwidth: 900, allowedFilters: ['GStreamerFilter'] },
    customIceServers: [{ url: 'turn:turn.example.org:3478', username: 'u', credential: 'p' }],
  });
  assert.equal(rich.connectionProperties.role, OpenViduRole.MODERATOR);
  assert.equal(rich.connectionProperties.record, false);
  assert.equal(rich.serverData, JSON.stringify({ user: 'ana' }));
  assert.equal(rich.connectionProperties.kurentoOptions.videoMaxRecvBandwidth, 900);
  record('createConnection(all)', rich);
  const po = await s.createConnection({ role: 'PUBLISHER_ONLY' });
  assert.equal(po.connectionProperties.role, 'PUBLISHER_ONLY');
  assert.equal(s.connections.length, 3, 'createConnection caches a copy');
  assert.notEqual(s.connections[0], c, 'the cached object is not the returned one');
  // The original compares serialised sessions, and createSession and fetch order the
  // properties differently: the first fetch reports a change, the next one none.
  assert.equal(await s.fetch(), true, 'first fetch after createSession');
  assert.equal(await s.fetch(), false, 'nothing changed since');
  assert.equal(s.connections.length, 3);
  assert.deepEqual(s.activeConnections, []);
  record('session after fetch', s);

  // generateToken (deprecated)
  const t1 = await s.generateToken();
  assert.match(t1, TOKEN_RE);
  const t2 = await s.generateToken({ role: OpenViduRole.SUBSCRIBER, data: 'bob' });
  assert.match(t2, TOKEN_RE);
  assert.equal(await s.fetch(), true, 'the tokens appear as pending connections');
  const byToken = Object.fromEntries(s.connections.map((x) => [x.token, x]));
  assert.equal(byToken[t2].connectionProperties.role, OpenViduRole.SUBSCRIBER);
  assert.equal(byToken[t2].serverData, 'bob');
  assert.equal(byToken[t1].connectionProperties.role, OpenViduRole.PUBLISHER);
  record('tokens as connections', s.connections.map((x) => x.connectionProperties));

  // updateConnection
  const updated = await s.updateConnection(c.connectionId, { role: OpenViduRole.SUBSCRIBER, record: false });
  assert.equal(updated.connectionProperties.role, OpenViduRole.SUBSCRIBER);
  assert.equal(updated.connectionProperties.record, false);
  record('updateConnection', updated);

  // forceDisconnect of a pending connection, forceUnpublish in a session nobody joined
  await s.forceDisconnect(c);
  assert.ok(!s.connections.some((x) => x.connectionId === c.connectionId));
  await s.fetch();
  assert.equal(s.connections.length, 4);
  record('forceDisconnect(again)', await errorOf(s.forceDisconnect(c.connectionId)));
  record('forceUnpublish', await errorOf(s.forceUnpublish('str_CAM_AAAA_con_X')));

  // OpenVidu.fetch and Session.close
  const other = await ov.createSession();
  await other.createConnection();
  await ov.fetch();
  assert.ok(ov.activeSessions.some((x) => x.sessionId === other.sessionId));
  const cached = ov.activeSessions.find((x) => x.sessionId === other.sessionId);
  assert.equal(cached.connections.length, 1);
  await full.close();
  assert.ok(!ov.activeSessions.includes(full), 'close drops the closed object');
  record('fetch after close', await errorOf(full.fetch()));
  record('createConnection after close', await errorOf(full.createConnection()));
  record('close twice', await errorOf(full.close()));
  const res = await http(server, 'DELETE', `/openvidu/api/sessions/${other.sessionId}`);
  assert.equal(res.status, 204);
  assert.equal(await ov.fetch(), true);
  assert.ok(!ov.activeSessions.some((x) => x.sessionId === other.sessionId));

  // errors, as the real client reports them
  const bad = new OpenVidu(server.url, 'WRONG_SECRET');
  record('bad secret', await errorOf(bad.createSession()));
  record('bad secret fetch', await errorOf(bad.fetch()));
  record('bad custom id', await errorOf(ov.createSession({ customSessionId: 'bad id!' })));
  record('bad media mode', await errorOf(ov.createSession({ mediaMode: 'SIDEWAYS' })));
  record('long data', await errorOf(s.createConnection({ data: 'x'.repeat(1001) })));
  record('bad role', await errorOf(s.createConnection({ role: 'KING' })));
  record('long token data', await errorOf(s.generateToken({ data: 'y'.repeat(1001) })));
  record('startRecording', await errorOf(ov.startRecording(s.sessionId)));
  record('listRecordings', await errorOf(ov.listRecordings()));
  record('getRecording', await errorOf(ov.getRecording('x')));
  const gone = new OpenVidu('http://127.0.0.1:9', server.secret);
  record('unreachable', await errorOf(gone.createSession()));
  let urlError = '';
  try { new OpenVidu('not a url', 'x'); } catch (e) { urlError = e.message; }
  record('bad url', urlError);
  await s.close();
  return transcript;
}

module.exports = { runSuite, normalise };
