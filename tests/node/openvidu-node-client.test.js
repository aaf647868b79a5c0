'use strict';
// The real openvidu-node-client 2.32.2 against the built `camerata` binary: every call of its
// API that needs no media or recording, with the values it must return, and its errors.
const test = require('node:test');
const assert = require('node:assert/strict');
const {
  OpenVidu, OpenViduRole, MediaMode, RecordingMode, RecordingLayout, VideoCodec, ConnectionType,
} = require('openvidu-node-client');
const { startServer, http } = require('./support/server');

const TOKEN_RE = /^ws:\/\/127\.0\.0\.1:\d+\?sessionId=[A-Za-z0-9_-]+&token=tok_[A-Za-z0-9_.-]+$/;

let server;
let ov;

test.before(async () => {
  server = await startServer();
  ov = new OpenVidu(server.url, server.secret);
  ov.enableProdMode();
});

test.after(async () => {
  await server.stop();
});

test('createSession with defaults', async () => {
  const s = await ov.createSession();
  assert.match(s.sessionId, /^ses_[A-Z][0-9A-Za-z]{9}$/);
  assert.equal(typeof s.createdAt, 'number');
  assert.equal(s.properties.mediaMode, MediaMode.ROUTED);
  assert.equal(s.properties.recordingMode, RecordingMode.MANUAL);
  assert.equal(s.properties.customSessionId, '');
  assert.equal(s.properties.forcedVideoCodec, VideoCodec.MEDIA_SERVER_PREFERRED);
  assert.equal(s.properties.allowTranscoding, false);
  assert.equal(s.properties.defaultRecordingProperties.resolution, '1280x720');
  assert.deepEqual(s.connections, []);
  assert.deepEqual(s.activeConnections, []);
  assert.equal(s.recording, false);
  assert.equal(s.broadcasting, false);
  assert.ok(ov.activeSessions.includes(s));
});

test('createSession with every property, and again with the same custom id', async () => {
  const props = {
    customSessionId: 'node-room-1',
    mediaMode: MediaMode.ROUTED,
    recordingMode: RecordingMode.ALWAYS,
    forcedVideoCodec: VideoCodec.H264,
    allowTranscoding: true,
    mediaNode: { id: 'media_node_1' },
    defaultRecordingProperties: {
      name: 'rec', outputMode: 'COMPOSED', recordingLayout: RecordingLayout.PICTURE_IN_PICTURE,
      resolution: '640x480', frameRate: 30, hasAudio: true, hasVideo: true, shmSize: 536870912,
    },
  };
  const s = await ov.createSession(props);
  assert.equal(s.sessionId, 'node-room-1');
  assert.equal(s.properties.recordingMode, RecordingMode.ALWAYS);
  assert.equal(s.properties.forcedVideoCodec, VideoCodec.H264);
  assert.equal(s.properties.allowTranscoding, true);
  assert.equal(s.properties.defaultRecordingProperties.resolution, '640x480');
  assert.equal(s.properties.defaultRecordingProperties.recordingLayout, 'PICTURE_IN_PICTURE');
  // The server answers 409; the client turns it into a fetch of the existing session.
  const again = await ov.createSession({ customSessionId: 'node-room-1' });
  assert.equal(again.sessionId, 'node-room-1');
  assert.equal(again.createdAt, s.createdAt);
  assert.equal(again.properties.recordingMode, RecordingMode.ALWAYS);
});

test('createConnection with defaults and with every WEBRTC property', async () => {
  const s = await ov.createSession();
  const c = await s.createConnection();
  assert.match(c.connectionId, /^con_[A-Z][0-9A-Za-z]{9}$/);
  assert.equal(c.status, 'pending');
  assert.match(c.token, TOKEN_RE);
  assert.ok(c.token.includes(`sessionId=${s.sessionId}&`));
  assert.equal(c.connectionProperties.type, ConnectionType.WEBRTC);
  assert.equal(c.connectionProperties.role, OpenViduRole.PUBLISHER);
  assert.equal(c.connectionProperties.data, '');
  assert.equal(c.connectionProperties.record, true);
  assert.deepEqual(c.connectionProperties.customIceServers, []);
  assert.equal(c.activeAt, null);
  assert.deepEqual(c.publishers, []);
  assert.deepEqual(c.subscribers, []);

  const full = await s.createConnection({
    type: ConnectionType.WEBRTC,
    data: JSON.stringify({ user: 'ana' }),
    record: false,
    role: OpenViduRole.MODERATOR,
    kurentoOptions: { videoMaxRecvBandwidth: 900, allowedFilters: ['GStreamerFilter'] },
    customIceServers: [{ url: 'turn:turn.example.org:3478', username: 'u', credential: 'p' }],
  });
  assert.equal(full.connectionProperties.role, OpenViduRole.MODERATOR);
  assert.equal(full.connectionProperties.record, false);
  assert.equal(full.serverData, JSON.stringify({ user: 'ana' }));
  assert.equal(full.connectionProperties.kurentoOptions.videoMaxRecvBandwidth, 900);
  assert.deepEqual(full.connectionProperties.kurentoOptions.allowedFilters, ['GStreamerFilter']);
  assert.deepEqual(full.connectionProperties.customIceServers,
    [{ url: 'turn:turn.example.org:3478', username: 'u', credential: 'p' }]);
  // PUBLISHER_ONLY is accepted as a role string.
  const po = await s.createConnection({ role: 'PUBLISHER_ONLY' });
  assert.equal(po.connectionProperties.role, 'PUBLISHER_ONLY');
  // The session lists its pending connections after a fetch.
  const changed = await s.fetch();
  assert.equal(changed, true);
  assert.equal(s.connections.length, 3);
  assert.deepEqual(s.activeConnections, []);
  assert.equal(await s.fetch(), false, 'nothing changed since the last fetch');
});

test('generateToken (deprecated) gives a token the session then lists', async () => {
  const s = await ov.createSession();
  const t1 = await s.generateToken();
  assert.match(t1, TOKEN_RE);
  const t2 = await s.generateToken({ role: OpenViduRole.SUBSCRIBER, data: 'bob' });
  assert.match(t2, TOKEN_RE);
  assert.notEqual(t1, t2);
  await s.fetch();
  const byToken = Object.fromEntries(s.connections.map((c) => [c.token, c]));
  assert.equal(byToken[t2].connectionProperties.role, OpenViduRole.SUBSCRIBER);
  assert.equal(byToken[t2].serverData, 'bob');
  assert.equal(byToken[t1].connectionProperties.role, OpenViduRole.PUBLISHER);
});

test('updateConnection changes role and record', async () => {
  const s = await ov.createSession();
  const c = await s.createConnection({ role: OpenViduRole.PUBLISHER });
  const updated = await s.updateConnection(c.connectionId, { role: OpenViduRole.SUBSCRIBER, record: false });
  assert.equal(updated.connectionProperties.role, OpenViduRole.SUBSCRIBER);
  assert.equal(updated.connectionProperties.record, false);
  await s.fetch();
  assert.equal(s.connections[0].connectionProperties.role, OpenViduRole.SUBSCRIBER);
});

test('forceDisconnect of a pending connection invalidates it', async () => {
  const s = await ov.createSession();
  const c = await s.createConnection();
  await s.createConnection();
  await s.forceDisconnect(c);
  await s.fetch();
  assert.equal(s.connections.length, 1);
  assert.ok(!s.connections.some((x) => x.connectionId === c.connectionId));
  await assert.rejects(s.forceDisconnect(c.connectionId), { message: '404' });
});

test('forceUnpublish of a stream in a session nobody joined is 404', async () => {
  const s = await ov.createSession();
  await assert.rejects(s.forceUnpublish('str_CAM_AAAA_con_X'), { message: '404' });
});

test('OpenVidu.fetch tracks the server, and close removes the session', async () => {
  const a = await ov.createSession();
  const b = await ov.createSession();
  await b.createConnection();
  await ov.fetch();
  const ids = ov.activeSessions.map((s) => s.sessionId);
  assert.ok(ids.includes(a.sessionId) && ids.includes(b.sessionId));
  const cached = ov.activeSessions.find((s) => s.sessionId === b.sessionId);
  assert.equal(cached.connections.length, 1);
  await a.close();
  assert.ok(!ov.activeSessions.some((s) => s.sessionId === a.sessionId));
  await assert.rejects(a.fetch(), { message: '404' });
  await assert.rejects(a.createConnection(), { message: '404' });
  await assert.rejects(a.close(), { message: '404' });
  // Deleted behind the client's back: fetch notices and drops it.
  const res = await http(server, 'DELETE', `/openvidu/api/sessions/${b.sessionId}`);
  assert.equal(res.status, 204);
  assert.equal(await ov.fetch(), true);
  assert.ok(!ov.activeSessions.some((s) => s.sessionId === b.sessionId));
});

test('errors reach the caller as the real client reports them', async () => {
  const bad = new OpenVidu(server.url, 'WRONG_SECRET');
  await assert.rejects(bad.createSession(), { message: '401' });
  await assert.rejects(bad.fetch(), { message: '401' });
  await assert.rejects(ov.createSession({ customSessionId: 'bad id!' }), { message: '400' });
  await assert.rejects(ov.createSession({ mediaMode: 'SIDEWAYS' }), { message: '400' });
  const s = await ov.createSession();
  await assert.rejects(s.createConnection({ data: 'x'.repeat(1001) }), { message: '400' });
  await assert.rejects(s.createConnection({ role: 'KING' }), { message: '400' });
  await assert.rejects(s.generateToken({ data: 'y'.repeat(1001) }), { message: '400' });
  // Recording is off in this release: the API answers as a server with recording disabled.
  await assert.rejects(ov.startRecording(s.sessionId), { message: '501' });
  await assert.rejects(ov.listRecordings(), { message: '501' });
  await assert.rejects(ov.getRecording('x'), { message: '501' });
  // An unreachable server: the client's own network error.
  const gone = new OpenVidu('http://127.0.0.1:9', server.secret);
  await assert.rejects(gone.createSession(), (e) => e instanceof Error);
});
