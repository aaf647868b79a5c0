'use strict';
// The OpenTok door with the real server SDKs pointed at Camerata (only the URL changed):
// opentok@2.23.2 (both its OpenTok and its Vonage mode) and @vonage/video. The create-session
// examples of the SDKs' documentation, the tokens they mint locally joining through the
// OpenVidu signaling (roles, data, expiry, forged, foreign), and every call of theirs that
// maps to a Camerata feature, with the values they return and the errors they raise.
const test = require('node:test');
const assert = require('node:assert/strict');
const OpenTok = require('opentok');
const { Video } = require('@vonage/video');
const { http } = require('./support/server');
const { PROJECT, OTHER, APP_ID, openTokServer, rpcJoin, cb, atTime } = require('./support/opentok');

/** The key an OpenTok session id carries (`1~<key>~…`). */
function keyOf(sessionId) {
  return Buffer.from(sessionId.slice(2).replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString().split('~')[1];
}

test('opentok@2.23.2: documented sessions, locally minted tokens at join, signals, moderation, archives', async () => {
  const { server } = await openTokServer(['--recording', 'true']);
  // A base URL ending in a slash, as many configurations have it (`//v2/...` on the wire).
  const ot = new OpenTok(PROJECT.key, PROJECT.secret, { apiUrl: `${server.url}/` });
  const joined = [];
  try {
    // The create-session examples of the SDK's README, and the archive and e2ee options.
    const examples = [
      [undefined, 'RELAYED', 'MANUAL'],
      [{ mediaMode: 'routed' }, 'ROUTED', 'MANUAL'],
      [{ location: '12.34.56.78' }, 'RELAYED', 'MANUAL'],
      [{ mediaMode: 'routed', archiveMode: 'always' }, 'ROUTED', 'ALWAYS'],
      [{ mediaMode: 'routed', archiveMode: 'always', archiveName: 'nightly-show', archiveResolution: '1280x720' }, 'ROUTED', 'ALWAYS'],
      [{ mediaMode: 'routed', e2ee: true }, 'ROUTED', 'MANUAL'],
    ];
    const ids = [];
    for (const [options, mediaMode, recordingMode] of examples) {
      const session = await cb((done) => (options ? ot.createSession(options, done) : ot.createSession(done)));
      assert.match(session.sessionId, /^1_[A-Za-z0-9_-]+$/);
      assert.equal(keyOf(session.sessionId), PROJECT.key);
      const ov = await http(server, 'GET', `/openvidu/api/sessions/${session.sessionId}`);
      assert.equal(ov.status, 200, 'an ordinary room for the OpenVidu REST API');
      assert.equal(ov.json.mediaMode, mediaMode, JSON.stringify(options));
      assert.equal(ov.json.recordingMode, recordingMode, JSON.stringify(options));
      ids.push(session.sessionId);
    }
    const named = await http(server, 'GET', `/openvidu/api/sessions/${ids[4]}`);
    assert.equal(named.json.defaultRecordingProperties.name, 'nightly:show');
    assert.equal(named.json.defaultRecordingProperties.resolution, '1280x720');
    // The SDK's own checks still raise before any request.
    await assert.rejects(cb((d) => ot.createSession({ mediaMode: 'relayed', archiveMode: 'always' }, d)), /routed/i);
    await assert.rejects(cb((d) => ot.createSession({ location: 'not-an-ip' }, d)), /IPv4|location/i);
    const bad = new OpenTok(PROJECT.key, 'not-the-secret', { apiUrl: server.url });
    await assert.rejects(cb((d) => bad.createSession({}, d)), /Invalid API key or secret/);

    const [relayed, sid] = ids;
    const other = (await cb((d) => ot.createSession({ mediaMode: 'routed' }, d))).sessionId;

    // Tokens of every role, in the JWT form (the default) and the T1 form, join with the role.
    const ann = await rpcJoin(server, sid, ot.generateToken(sid, {
      role: 'publisher', data: 'name=ann', initialLayoutClassList: ['focus', 'full'],
    }));
    joined.push(ann);
    assert.equal(ann.joined.result.role, 'PUBLISHER', JSON.stringify(ann.joined));
    assert.equal(ann.joined.result.metadata, '{}%/%name=ann', 'client data %/% the token data');
    const roles = [
      ['moderator', true, 'MODERATOR'],
      ['subscriber', false, 'SUBSCRIBER'],
      ['publisheronly', true, 'PUBLISHER_ONLY'],
      ['publisher', true, 'PUBLISHER'],
    ];
    const members = {};
    for (const [role, t1, expected] of roles) {
      const c = await rpcJoin(server, sid, ot.generateToken(sid, { role, data: role }, t1));
      joined.push(c);
      assert.equal(c.joined.result && c.joined.result.role, expected, `${role}: ${JSON.stringify(c.joined)}`);
      members[role] = c;
    }
    // A subscriber's publish is refused by the role (before any SDP is read).
    const publish = await members.subscriber.call('publishVideo', { sdpOffer: 'v=0', doLoopback: false });
    assert.equal(publish.error.code, 401, JSON.stringify(publish));
    // The REST API sees the five connections with their data.
    const ov = await http(server, 'GET', `/openvidu/api/sessions/${sid}`);
    assert.deepEqual(ov.json.connections.content.map((c) => c.serverData).sort(),
      ['moderator', 'name=ann', 'publisher', 'publisheronly', 'subscriber']);

    // Refused tokens, each with its own error: expired (minted by the SDK three days ago, in
    // both forms), forged (another secret), for another session.
    const threeDaysAgo = -3 * 86400 * 1000;
    for (const t1 of [false, true]) {
      const old = atTime(threeDaysAgo, () => ot.generateToken(sid, {}, t1));
      const r = await rpcJoin(server, sid, old);
      joined.push(r);
      assert.equal(r.joined.error.code, 401);
      assert.match(r.joined.error.message, /has expired/, `T1 ${t1}`);
    }
    const forged = new OpenTok(PROJECT.key, 'someone-else', { apiUrl: server.url }).generateToken(sid);
    const f = await rpcJoin(server, sid, forged);
    joined.push(f);
    assert.match(f.joined.error.message, /is not valid/);
    const foreign = await rpcJoin(server, sid, ot.generateToken(other));
    joined.push(foreign);
    assert.match(foreign.joined.error.message, /is for another session/);
    // Another project's SDK cannot mint a token for this project's session at all.
    const otherProject = new OpenTok(OTHER.key, OTHER.secret, { apiUrl: server.url });
    assert.throws(() => otherProject.generateToken(sid), /belong/);

    // Signals: to everyone, and to one connection.
    await cb((d) => ot.signal(sid, null, { type: 'chat', data: 'hello all' }, d));
    for (const c of [ann, members.moderator]) {
      const s = await c.note('sendMessage', (p) => p.data === 'hello all');
      assert.equal(s.type, 'signal:chat');
    }
    await cb((d) => ot.signal(sid, ann.joined.result.id, { type: 'dm', data: 'just ann' }, d));
    await ann.note('sendMessage', (p) => p.data === 'just ann');
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!members.moderator.notes.some((n) => n.params && n.params.data === 'just ann'));
    await assert.rejects(cb((d) => ot.signal(sid, 'no-such-connection', { type: 't', data: 'x' }, d)));

    // Streams: nobody publishes yet; unknown ids are refused.
    assert.deepEqual(await cb((d) => ot.listStreams(sid, d)), []);
    await assert.rejects(cb((d) => ot.getStream(sid, 'str_CAM_Abcd_x', d)));
    await assert.rejects(cb((d) => ot.forceMuteStream(sid, 'str_CAM_Abcd_x', d)));
    await cb((d) => ot.forceMuteAll(sid, {}, d));
    await cb((d) => ot.disableForceMute(sid, d));

    // Force disconnect: the client is told, the REST API no longer lists it, twice is 404.
    const target = members.publisher.joined.result.id;
    await cb((d) => ot.forceDisconnect(sid, target, d));
    await members.publisher.note('participantEvicted');
    const after = await http(server, 'GET', `/openvidu/api/sessions/${sid}`);
    assert.ok(!after.json.connections.content.some((c) => c.connectionId === target));
    await assert.rejects(cb((d) => ot.forceDisconnect(sid, target, d)));

    // Archives: the errors of each call (the browser suite records a real one).
    assert.deepEqual(await cb((d) => ot.listArchives({ sessionId: sid }, d)), []);
    await assert.rejects(cb((d) => ot.startArchive(relayed, {}, d)), /relayed/);
    await assert.rejects(cb((d) => ot.startArchive(other, {}, d)), /no client/);
    await assert.rejects(cb((d) => ot.startArchive(sid, { hasAudio: false, hasVideo: false }, d)), /audio or video/);
    await assert.rejects(cb((d) => ot.getArchive('no-such-archive', d)), /not found/i);
    await assert.rejects(cb((d) => ot.stopArchive('no-such-archive', d)), /not found/i);
    await assert.rejects(cb((d) => ot.deleteArchive('no-such-archive', d)));
    await assert.rejects(cb((d) => ot.setArchiveLayout('no-such-archive', 'pip', null, null, d)));

    // What Camerata does not have says so.
    await assert.rejects(cb((d) => ot.startBroadcast(sid, { outputs: { hls: {} } }, d)), /not supported by Camerata/);
    await assert.rejects(cb((d) => ot.dial(sid, ot.generateToken(sid), 'sip:a@example.com', {}, d)), /not supported by Camerata|SIP/);
    await assert.rejects(cb((d) => ot.websocketConnect(sid, ot.generateToken(sid), 'ws://127.0.0.1:9/x', {}, d)), /not supported by Camerata|audio/i);
  } finally {
    for (const c of joined) await c.close().catch(() => {});
    await server.stop();
  }
});

test('@vonage/video and opentok in Vonage mode: application JWTs, client tokens and calls', async () => {
  const { server, vonagePrivateKey } = await openTokServer(['--recording', 'true']);
  const vonage = new Video({ applicationId: APP_ID, privateKey: vonagePrivateKey }, { videoHost: server.url });
  const joined = [];
  try {
    // Vonage's create-session examples: no options (routed), and archived always.
    const plain = await vonage.createSession();
    assert.equal(keyOf(plain.sessionId), APP_ID);
    const ov = await http(server, 'GET', `/openvidu/api/sessions/${plain.sessionId}`);
    assert.equal(ov.json.mediaMode, 'ROUTED', 'Vonage sessions are routed by default');
    const always = await vonage.createSession({ archiveMode: 'always', location: '10.1.2.3' });
    assert.equal((await http(server, 'GET', `/openvidu/api/sessions/${always.sessionId}`)).json.recordingMode, 'ALWAYS');

    // Its client tokens (RS256) join with their role and data.
    const sid = plain.sessionId;
    const mod = await rpcJoin(server, sid, vonage.generateClientToken(sid, { role: 'moderator', data: 'vonage mod' }));
    joined.push(mod);
    assert.equal(mod.joined.result.role, 'MODERATOR', JSON.stringify(mod.joined));
    assert.equal(mod.joined.result.metadata, '{}%/%vonage mod');
    const sub = await rpcJoin(server, sid, vonage.generateClientToken(sid, { role: 'subscriber' }));
    joined.push(sub);
    assert.equal(sub.joined.result.role, 'SUBSCRIBER');
    const elsewhere = await rpcJoin(server, sid, vonage.generateClientToken(always.sessionId));
    joined.push(elsewhere);
    assert.match(elsewhere.joined.error.message, /is for another session/);

    await vonage.sendSignal({ type: 'news', data: 'from vonage' }, sid);
    assert.equal((await mod.note('sendMessage', (p) => p.data === 'from vonage')).type, 'signal:news');
    await vonage.sendSignal({ type: 'dm', data: 'only sub' }, sid, sub.joined.result.id);
    await sub.note('sendMessage', (p) => p.data === 'only sub');
    const streams = await vonage.getStreamInfo(sid);
    assert.deepEqual(streams, { count: 0, items: [] });
    await assert.rejects(vonage.muteStream(sid, 'str_CAM_Abcd_x'), (e) => e.response.status === 404);
    await vonage.forceMuteAll(sid, []);
    await vonage.disableForceMute(sid);
    assert.equal((await vonage.searchArchives({ sessionId: sid })).count, 0);
    await assert.rejects(vonage.getArchive('nope'), (e) => e.response.status === 404);
    await assert.rejects(vonage.startBroadcast(sid, { outputs: { hls: {} } }), (e) => e.response.status === 501);
    await vonage.disconnectClient(sid, sub.joined.result.id);
    await sub.note('participantEvicted');

    // Another key pair than the application's: 403, nothing created.
    const { privateKey } = require('node:crypto').generateKeyPairSync('rsa', { modulusLength: 2048 });
    const stranger = new Video({
      applicationId: APP_ID, privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    }, { videoHost: server.url });
    const before = (await http(server, 'GET', '/openvidu/api/sessions')).json.numberOfElements;
    await assert.rejects(stranger.createSession(), (e) => e.response.status === 403);
    assert.equal((await http(server, 'GET', '/openvidu/api/sessions')).json.numberOfElements, before);

    // The opentok SDK in Vonage mode (an application id and its private key).
    const otv = new OpenTok(APP_ID, vonagePrivateKey, { apiUrl: server.url });
    const s = await cb((d) => otv.createSession({ mediaMode: 'routed' }, d));
    const c = await rpcJoin(server, s.sessionId, otv.generateToken(s.sessionId, { role: 'publisheronly' }));
    joined.push(c);
    assert.equal(c.joined.result.role, 'PUBLISHER_ONLY', JSON.stringify(c.joined));
    assert.deepEqual(await cb((d) => otv.listStreams(s.sessionId, d)), []);
  } finally {
    for (const c of joined) await c.close().catch(() => {});
    await server.stop();
  }
});
