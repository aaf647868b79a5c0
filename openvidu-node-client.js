'use strict';
// `camerata/openvidu-node-client`: the promise API of openvidu-node-client 2.32, as a drop-in.
// Code written for that package runs by changing only its import. Same classes, methods,
// properties and errors: a call that gets an unexpected HTTP status rejects with
// `Error(String(status))`, a call that gets no answer rejects with `Error('[object Object]')`
// (what the original reports), with the real reason in `error.cause`.
//
// Written from the documented behaviour of the original, not from its code. Two deliberate
// differences, both bugs upstream: `RecordingLayout.HORIZONTAL_PRESENTATION` is
// 'HORIZONTAL_PRESENTATION' (the original maps it to 'VERTICAL_PRESENTATION'), and
// `Session.close()` of a session missing from `activeSessions` leaves the others alone (the
// original removes the last one).

const native = require('./node-binding/binding.js');

const OpenViduRole = Object.freeze({ SUBSCRIBER: 'SUBSCRIBER', PUBLISHER: 'PUBLISHER', MODERATOR: 'MODERATOR' });
const MediaMode = Object.freeze({ RELAYED: 'RELAYED', ROUTED: 'ROUTED' });
const RecordingMode = Object.freeze({ ALWAYS: 'ALWAYS', MANUAL: 'MANUAL' });
const ConnectionType = Object.freeze({ WEBRTC: 'WEBRTC', IPCAM: 'IPCAM' });
const VideoCodec = Object.freeze({
  MEDIA_SERVER_PREFERRED: 'MEDIA_SERVER_PREFERRED', NONE: 'NONE', VP8: 'VP8', VP9: 'VP9', H264: 'H264',
});
const RecordingLayout = Object.freeze({
  BEST_FIT: 'BEST_FIT',
  PICTURE_IN_PICTURE: 'PICTURE_IN_PICTURE',
  VERTICAL_PRESENTATION: 'VERTICAL_PRESENTATION',
  HORIZONTAL_PRESENTATION: 'HORIZONTAL_PRESENTATION',
  CUSTOM: 'CUSTOM',
});

const API = '/openvidu/api';

function statusError(status) {
  return new Error(String(status));
}

function noAnswer(e) {
  return new Error('[object Object]', { cause: e });
}

/** One call through the native client: resolves `{status, json}`, rejects when no answer. */
async function call(ov, method, path, body) {
  let reply;
  try {
    reply = await ov._client.request(method, path, body === undefined ? undefined : JSON.stringify(body));
  } catch (e) {
    throw noAnswer(e);
  }
  let json = null;
  if (reply.body) {
    try { json = JSON.parse(reply.body); } catch { json = null; }
  }
  return { status: reply.status, json };
}

async function expect(ov, method, path, body, wanted) {
  const r = await call(ov, method, path, body);
  if (r.status !== wanted) throw statusError(r.status);
  return r.json;
}

// ---------------------------------------------------------------------------------------
// Data classes

class Publisher {
  constructor(json) {
    const m = json.mediaOptions;
    this.streamId = json.streamId;
    this.createdAt = json.createdAt;
    this.hasAudio = m.hasAudio;
    this.hasVideo = m.hasVideo;
    this.audioActive = m.audioActive;
    this.videoActive = m.videoActive;
    this.frameRate = m.frameRate;
    this.typeOfVideo = m.typeOfVideo;
    this.videoDimensions = m.videoDimensions;
  }

  equalTo(other) {
    return ['streamId', 'createdAt', 'hasAudio', 'hasVideo', 'audioActive', 'videoActive', 'frameRate',
      'typeOfVideo', 'videoDimensions'].every((k) => this[k] === other[k]);
  }
}

class Connection {
  constructor(json) {
    this.publishers = [];
    this.subscribers = [];
    this.resetWithJson(json);
  }

  resetWithJson(json) {
    this.connectionId = json.connectionId;
    this.status = json.status;
    this.createdAt = json.createdAt;
    this.activeAt = json.activeAt;
    this.location = json.location;
    this.ip = json.ip;
    this.platform = json.platform;
    this.clientData = json.clientData;
    this.token = json.token;
    this.connectionProperties = {
      type: json.type,
      data: json.serverData,
      record: json.record,
      role: json.role,
      kurentoOptions: json.kurentoOptions,
      rtspUri: json.rtspUri,
      adaptativeBitrate: json.adaptativeBitrate,
      onlyPlayWithSubscribers: json.onlyPlayWithSubscribers,
      networkCache: json.networkCache,
      customIceServers: json.customIceServers != null ? json.customIceServers : [],
    };
    this.role = json.role;
    this.serverData = json.serverData;
    this.publishers = (json.publishers || []).map((p) => new Publisher(p));
    this.subscribers = (json.subscribers || []).map((s) => s.streamId);
    return this;
  }

  equalTo(other) {
    return this.connectionId === other.connectionId
      && this.status === other.status
      && this.createdAt === other.createdAt
      && this.activeAt === other.activeAt
      && this.token === other.token
      && this.clientData === other.clientData
      && JSON.stringify(this.connectionProperties) === JSON.stringify(other.connectionProperties)
      && this.publishers.length === other.publishers.length
      && this.publishers.every((p, i) => p.equalTo(other.publishers[i]))
      && JSON.stringify(this.subscribers) === JSON.stringify(other.subscribers);
  }
}

class Recording {
  constructor(json) {
    this.id = json.id;
    this.sessionId = json.sessionId;
    this.createdAt = json.createdAt;
    this.size = json.size;
    this.duration = json.duration;
    this.url = json.url;
    this.status = json.status;
    this.properties = {
      name: json.name != null ? json.name : this.id,
      hasAudio: json.hasAudio,
      hasVideo: json.hasVideo,
      outputMode: json.outputMode,
      mediaNode: json.mediaNode,
    };
    const composed = json.outputMode === 'COMPOSED' || json.outputMode === 'COMPOSED_QUICK_START';
    if (composed && json.hasVideo) {
      this.properties.recordingLayout = json.recordingLayout;
      this.properties.resolution = json.resolution;
      this.properties.frameRate = json.frameRate;
      this.properties.shmSize = Recording.DefaultRecordingPropertiesValues.shmSize;
      if (json.recordingLayout === RecordingLayout.CUSTOM) this.properties.customLayout = json.customLayout;
    }
    if (json.outputMode === 'INDIVIDUAL') {
      this.properties.ignoreFailedStreams = Recording.DefaultRecordingPropertiesValues.ignoreFailedStreams;
    }
  }
}
Recording.Status = Object.freeze({
  starting: 'starting', started: 'started', stopped: 'stopped', ready: 'ready', failed: 'failed',
});
Recording.OutputMode = Object.freeze({
  COMPOSED: 'COMPOSED', COMPOSED_QUICK_START: 'COMPOSED_QUICK_START', INDIVIDUAL: 'INDIVIDUAL',
});
Recording.DefaultRecordingPropertiesValues = Object.freeze({
  hasAudio: true, hasVideo: true, outputMode: 'COMPOSED', recordingLayout: 'BEST_FIT',
  resolution: '1280x720', frameRate: 25, shmSize: 536870912, ignoreFailedStreams: false,
});

// ---------------------------------------------------------------------------------------
// Session

function sanitizedSessionProperties(p) {
  const d = Recording.DefaultRecordingPropertiesValues;
  const out = {
    mediaMode: p.mediaMode != null ? p.mediaMode : MediaMode.ROUTED,
    recordingMode: p.recordingMode != null ? p.recordingMode : RecordingMode.MANUAL,
    customSessionId: p.customSessionId != null ? p.customSessionId : '',
  };
  const r = p.defaultRecordingProperties || {};
  out.defaultRecordingProperties = {
    name: r.name != null ? r.name : '',
    hasAudio: r.hasAudio != null ? r.hasAudio : d.hasAudio,
    hasVideo: r.hasVideo != null ? r.hasVideo : d.hasVideo,
    outputMode: r.outputMode != null ? r.outputMode : d.outputMode,
    recordingLayout: r.recordingLayout != null ? r.recordingLayout : d.recordingLayout,
    resolution: r.resolution != null ? r.resolution : d.resolution,
    frameRate: r.frameRate != null ? r.frameRate : d.frameRate,
    shmSize: r.shmSize != null ? r.shmSize : d.shmSize,
  };
  for (const k of ['customLayout', 'ignoreFailedStreams']) {
    if (r[k] !== undefined) out.defaultRecordingProperties[k] = r[k];
  }
  const node = (m) => (typeof m === 'string' ? { id: m } : m);
  if (r.mediaNode !== undefined) out.defaultRecordingProperties.mediaNode = node(r.mediaNode);
  if (p.mediaNode !== undefined) out.mediaNode = node(p.mediaNode);
  if (p.forcedVideoCodec !== undefined) out.forcedVideoCodec = p.forcedVideoCodec;
  if (p.allowTranscoding !== undefined) out.allowTranscoding = p.allowTranscoding;
  return out;
}

class Session {
  constructor(ov, propertiesOrJson) {
    this.ov = ov;
    this.connections = [];
    this.activeConnections = [];
    this.recording = false;
    this.broadcasting = false;
    const given = propertiesOrJson || {};
    if (given.sessionId) {
      this.resetWithJson(given);
    } else {
      this.properties = sanitizedSessionProperties(given);
    }
  }

  /** @hidden */
  getSessionId() {
    return this.sessionId;
  }

  /** @hidden creates the session on the server (OpenVidu.createSession calls it). */
  async getSessionHttp() {
    if (this.sessionId) return this.sessionId;
    const r = await call(this.ov, 'POST', `${API}/sessions`, this.properties);
    if (r.status === 200) {
      this.sessionId = r.json.id;
      this.createdAt = r.json.createdAt;
      this.properties = createdProperties(r.json);
      return this.sessionId;
    }
    if (r.status === 409) {
      // The custom id is taken: that session is the one meant.
      this.sessionId = this.properties.customSessionId;
      await this.fetch();
      return this.sessionId;
    }
    throw statusError(r.status);
  }

  async createConnection(connectionProperties) {
    const p = connectionProperties;
    let body;
    if (p == null) {
      body = { type: null, data: null, record: null, role: null, kurentoOptions: null, rtspUri: null,
        adaptativeBitrate: null, onlyPlayWithSubscribers: null, networkCache: null, customIceServers: null };
    } else {
      body = {
        type: p.type || null,
        data: p.data || null,
        record: p.record,
        role: p.role || null,
        kurentoOptions: p.kurentoOptions || null,
        rtspUri: p.rtspUri || null,
        adaptativeBitrate: p.adaptativeBitrate,
        onlyPlayWithSubscribers: p.onlyPlayWithSubscribers,
        networkCache: p.networkCache != null ? p.networkCache : null,
        customIceServers: p.customIceServers,
      };
      for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
    }
    const json = await expect(this.ov, 'POST', `${API}/sessions/${this.sessionId}/connection`, body, 200);
    this.connections.push(new Connection(json));
    this.updateActiveConnectionsArray();
    return new Connection(json);
  }

  /** @deprecated use createConnection */
  async generateToken(tokenOptions) {
    const o = tokenOptions || {};
    const body = {
      session: this.sessionId,
      role: o.role != null ? o.role : null,
      data: o.data != null ? o.data : null,
      kurentoOptions: o.kurentoOptions != null ? o.kurentoOptions : null,
    };
    const json = await expect(this.ov, 'POST', `${API}/tokens`, body, 200);
    return json.token;
  }

  async close() {
    await expect(this.ov, 'DELETE', `${API}/sessions/${this.sessionId}`, undefined, 204);
    const i = this.ov.activeSessions.indexOf(this);
    const j = i >= 0 ? i : this.ov.activeSessions.findIndex((s) => s.sessionId === this.sessionId);
    if (j >= 0) this.ov.activeSessions.splice(j, 1);
  }

  async fetch() {
    const before = this.snapshot();
    const json = await expect(this.ov, 'GET', `${API}/sessions/${this.sessionId}?pendingConnections=true`,
      undefined, 200);
    this.resetWithJson(json);
    return before !== this.snapshot();
  }

  async forceDisconnect(connection) {
    const id = typeof connection === 'string' ? connection : connection.connectionId;
    await expect(this.ov, 'DELETE', `${API}/sessions/${this.sessionId}/connection/${id}`, undefined, 204);
    const i = this.connections.findIndex((c) => c.connectionId === id);
    if (i >= 0) {
      const [gone] = this.connections.splice(i, 1);
      const streams = new Set(gone.publishers.map((p) => p.streamId));
      for (const c of this.connections) c.subscribers = c.subscribers.filter((s) => !streams.has(s));
    }
    this.updateActiveConnectionsArray();
  }

  async forceUnpublish(publisher) {
    const streamId = typeof publisher === 'string' ? publisher : publisher.streamId;
    await expect(this.ov, 'DELETE', `${API}/sessions/${this.sessionId}/stream/${streamId}`, undefined, 204);
    for (const c of this.connections) {
      c.publishers = c.publishers.filter((p) => p.streamId !== streamId);
      c.subscribers = c.subscribers.filter((s) => s !== streamId);
    }
    this.updateActiveConnectionsArray();
  }

  async updateConnection(connectionId, connectionProperties) {
    const json = await expect(this.ov, 'PATCH', `${API}/sessions/${this.sessionId}/connection/${connectionId}`,
      connectionProperties, 200);
    const cached = this.connections.find((c) => c.connectionId === connectionId);
    if (cached) {
      // Only the properties change, as in the original; the top-level `role` copy keeps
      // its old value until the next fetch.
      if (connectionProperties.role !== undefined) cached.connectionProperties.role = connectionProperties.role;
      if (connectionProperties.record !== undefined) cached.connectionProperties.record = connectionProperties.record;
      this.updateActiveConnectionsArray();
      return cached;
    }
    const fresh = new Connection(json);
    this.connections.push(fresh);
    this.updateActiveConnectionsArray();
    return fresh;
  }

  /** @hidden */
  resetWithJson(json) {
    this.sessionId = json.sessionId;
    this.createdAt = json.createdAt;
    this.recording = json.recording;
    this.broadcasting = json.broadcasting;
    this.properties = fetchedProperties(json);
    const fresh = json.connections.content.map((c) => new Connection(c));
    // Keep the cached objects of connections still there, updated in place.
    this.connections = fresh.map((f) => {
      const old = this.connections.find((c) => c.connectionId === f.connectionId);
      return old ? old.resetWithJson(json.connections.content.find((c) => c.connectionId === f.connectionId)) : f;
    });
    this.updateActiveConnectionsArray();
    return this;
  }

  /** @hidden */
  updateActiveConnectionsArray() {
    this.activeConnections = this.connections.filter((c) => c.status === 'active');
  }

  /** @hidden what fetch compares to tell whether anything changed (key order included). */
  snapshot() {
    return JSON.stringify(this, (k, v) => (k === 'ov' ? undefined : v));
  }
}

// The session properties as createSession and fetch leave them. The key order differs
// between the two, as in the original client, whose change detection compares serialised
// sessions: a first fetch after createSession reports a change. Only createSession keeps mediaNode.
function createdProperties(json) {
  const p = {
    mediaMode: json.mediaMode,
    recordingMode: json.recordingMode,
    customSessionId: json.customSessionId,
    forcedVideoCodec: json.forcedVideoCodec,
    allowTranscoding: json.allowTranscoding,
    defaultRecordingProperties: json.defaultRecordingProperties,
  };
  if (json.mediaNode !== undefined) p.mediaNode = json.mediaNode;
  return p;
}

function fetchedProperties(json) {
  const p = {
    customSessionId: json.customSessionId,
    mediaMode: json.mediaMode,
    recordingMode: json.recordingMode,
    defaultRecordingProperties: json.defaultRecordingProperties,
  };
  p.forcedVideoCodec = json.forcedVideoCodec;
  p.allowTranscoding = json.allowTranscoding;
  return p;
}

// ---------------------------------------------------------------------------------------
// OpenVidu

class OpenVidu {
  /**
   * @param {string} hostname the server URL; only `protocol//host` is used
   * @param {string} secret the server's OPENVIDU_SECRET
   */
  constructor(hostname, secret) {
    let url;
    try {
      url = new URL(hostname);
    } catch (e) {
      throw new Error('URL format incorrect: ' + e);
    }
    this.hostname = hostname;
    this.activeSessions = [];
    this.host = url.protocol + '//' + url.host;
    this.basicAuth = 'Basic ' + Buffer.from('OPENVIDUAPP:' + secret).toString('base64');
    Object.defineProperty(this, '_client', { value: new native.NativeClient(this.host, String(secret)) });
    Object.defineProperty(this, '_prod', { value: { on: false } });
  }

  async createSession(properties) {
    const session = new Session(this, properties);
    await session.getSessionHttp();
    this.activeSessions.push(session);
    return session;
  }

  async startRecording(sessionId, param2) {
    let body;
    if (param2 === undefined) {
      body = { session: sessionId, name: '' };
    } else if (typeof param2 === 'string') {
      body = { session: sessionId, name: param2 };
    } else {
      const p = param2;
      body = { session: sessionId, name: p.name, outputMode: p.outputMode, recordingLayout: p.recordingLayout,
        customLayout: p.customLayout, ignoreFailedStreams: p.ignoreFailedStreams, resolution: p.resolution,
        frameRate: p.frameRate, hasAudio: p.hasAudio, hasVideo: p.hasVideo, shmSize: p.shmSize,
        mediaNode: typeof p.mediaNode === 'string' ? { id: p.mediaNode } : p.mediaNode };
      for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
    }
    const json = await expect(this, 'POST', `${API}/recordings/start`, body, 200);
    const s = this.activeSessions.find((x) => x.sessionId === sessionId);
    if (s) s.recording = true;
    return new Recording(json);
  }

  async stopRecording(recordingId) {
    const json = await expect(this, 'POST', `${API}/recordings/stop/${recordingId}`, undefined, 200);
    const r = new Recording(json);
    const s = this.activeSessions.find((x) => x.sessionId === r.sessionId);
    if (s) s.recording = false;
    return r;
  }

  async getRecording(recordingId) {
    return new Recording(await expect(this, 'GET', `${API}/recordings/${recordingId}`, undefined, 200));
  }

  async listRecordings() {
    const json = await expect(this, 'GET', `${API}/recordings`, undefined, 200);
    return json.items.map((r) => new Recording(r)).sort((a, b) => b.createdAt - a.createdAt);
  }

  async deleteRecording(recordingId) {
    await expect(this, 'DELETE', `${API}/recordings/${recordingId}`, undefined, 204);
  }

  async startBroadcast(sessionId, broadcastUrl, properties) {
    const p = properties || {};
    const body = { session: sessionId, broadcastUrl, recordingLayout: p.recordingLayout,
      customLayout: p.customLayout, resolution: p.resolution, frameRate: p.frameRate, hasAudio: p.hasAudio,
      shmSize: p.shmSize, mediaNode: typeof p.mediaNode === 'string' ? { id: p.mediaNode } : p.mediaNode };
    for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
    await expect(this, 'POST', `${API}/broadcast/start`, body, 200);
    const s = this.activeSessions.find((x) => x.sessionId === sessionId);
    if (s) s.broadcasting = true;
  }

  async stopBroadcast(sessionId) {
    await expect(this, 'POST', `${API}/broadcast/stop`, { session: sessionId }, 200);
    const s = this.activeSessions.find((x) => x.sessionId === sessionId);
    if (s) s.broadcasting = false;
  }

  async fetch() {
    const json = await expect(this, 'GET', `${API}/sessions?pendingConnections=true`, undefined, 200);
    return this.mergeSessions(json.content);
  }

  /** @hidden */
  async fetchWebRtc() {
    const json = await expect(this, 'GET', `${API}/sessions?pendingConnections=true&webRtcStats=true`,
      undefined, 200);
    const changes = this.mergeSessions(json.content);
    return { changes, sessionChanges: {} };
  }

  /** @hidden */
  mergeSessions(content) {
    let changed = false;
    const seen = new Set();
    for (const sj of content) {
      seen.add(sj.sessionId);
      const cached = this.activeSessions.find((s) => s.sessionId === sj.sessionId);
      if (cached) {
        const before = cached.snapshot();
        cached.resetWithJson(sj);
        changed = changed || before !== cached.snapshot();
      } else {
        this.activeSessions.push(new Session(this, sj));
        changed = true;
      }
    }
    const kept = this.activeSessions.filter((s) => seen.has(s.sessionId));
    changed = changed || kept.length !== this.activeSessions.length;
    this.activeSessions = kept;
    return changed;
  }

  /** Quiets the client's logging (it logs nothing but errors anyway). */
  enableProdMode() {
    this._prod.on = true;
  }
}

module.exports = {
  OpenVidu, Session, Connection, Publisher, Recording,
  OpenViduRole, MediaMode, RecordingMode, RecordingLayout, ConnectionType, VideoCodec,
};
