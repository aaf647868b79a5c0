'use strict';
// The npm package `camerata`: the callback API of the original openvidu-node-client (1.x),
// each method also returning a Promise, and an embedded Camerata server. The native half
// (node-binding/) does the I/O on its own threads; nothing here blocks the JS thread.
//
// Errors: a callback is called as callback(value) on success, exactly as the original client
// documented. On failure, a callback declared with two parameters (or more, or a rest
// parameter) is called as callback(undefined, error); a callback declared with exactly one
// parameter, the seed's form `(sessionId) => ...`, is not called, and the Promise every
// method returns rejects with the error. Called without a callback, the same methods return
// a Promise that resolves with the value or rejects with the error.
// Errors are `CamerataError`s: `message` says what failed, `status` is the HTTP status when
// the server answered.

const native = require('./node-binding/binding.js');

/** What a participant may do. */
const OpenViduRole = Object.freeze({
  SUBSCRIBER: 'SUBSCRIBER',
  PUBLISHER: 'PUBLISHER',
  MODERATOR: 'MODERATOR',
  PUBLISHER_ONLY: 'PUBLISHER_ONLY',
});

/** An SDK call that failed. */
class CamerataError extends Error {
  constructor(message, status, options) {
    super(message, options);
    this.name = 'CamerataError';
    /** The HTTP status, when the server answered. */
    this.status = status;
  }
}

/** Turns a native rejection ("[404] POST ... answered 404: ...") into a CamerataError. */
function toError(e) {
  if (e instanceof CamerataError) return e;
  const text = e && e.message ? e.message : String(e);
  const m = /^\[(\d{3})\] (.*)$/s.exec(text);
  return m ? new CamerataError(m[2], Number(m[1]), { cause: e }) : new CamerataError(text, undefined, { cause: e });
}

/**
 * Hands a result to a callback and returns a Promise of it. The callback runs on a fresh
 * tick, so an exception it throws is not swallowed by the Promise machinery. A callback of
 * exactly one parameter only ever receives a value: a failure rejects the returned Promise.
 * Any other callback receives `(undefined, error)` on failure, and the Promise then resolves
 * with `undefined` (the error was handed over once).
 */
function deliver(promise, callback) {
  const settled = promise.catch((e) => { throw toError(e); });
  if (typeof callback !== 'function') return settled;
  const succeeded = (value) => { process.nextTick(callback, value); return value; };
  if (callback.length === 1) return settled.then(succeeded);
  return settled.then(succeeded, (error) => { process.nextTick(callback, undefined, error); return undefined; });
}

/** Options of a token: its data and role. Made by `new TokenOptions.Builder()`. */
const TokenOptions = native.TokenOptions;

class Session {
  /** @param {native.NativeClient} client @param {object} [properties] */
  constructor(client, properties) {
    this._client = client;
    this._properties = properties;
    /** The session id once known ('' before). */
    this.sessionId = '';
    this._creating = null;
  }

  /**
   * The session id: created on the server on first call, then kept. `callback(sessionId)`
   * when given; a Promise of it otherwise.
   */
  getSessionId(callback) {
    if (this.sessionId) {
      if (typeof callback === 'function') callback(this.sessionId);
      return Promise.resolve(this.sessionId);
    }
    if (!this._creating) {
      const body = this._properties === undefined ? undefined : JSON.stringify(this._properties);
      this._creating = this._client.createSession(body).then(
        (id) => { this.sessionId = id; return id; },
        (e) => { this._creating = null; throw e; },
      );
    }
    return deliver(this._creating, callback);
  }

  /**
   * A token for this session (created first when needed). `generateToken(callback)`,
   * `generateToken(tokenOptions, callback)`, or either form without the callback for a
   * Promise. Defaults: role PUBLISHER, empty data.
   */
  generateToken(tokenOptions, callback) {
    if (typeof tokenOptions === 'function') {
      callback = tokenOptions;
      tokenOptions = undefined;
    }
    const work = (async () => {
      let role = OpenViduRole.PUBLISHER;
      let data = '';
      if (tokenOptions !== undefined && tokenOptions !== null) {
        if (typeof tokenOptions.getRole !== 'function' || typeof tokenOptions.getData !== 'function') {
          throw new CamerataError('tokenOptions must be made by new TokenOptions.Builder().build()');
        }
        role = tokenOptions.getRole() || OpenViduRole.PUBLISHER;
        data = tokenOptions.getData() || '';
      }
      const sessionId = await this.getSessionId();
      return this._client.generateToken(sessionId, role, data);
    })();
    return deliver(work, callback);
  }
}

class OpenVidu {
  /**
   * @param {string} urlOpenViduServer `https://host:port` (a path is ignored; no scheme means https)
   * @param {string} secret the server's OPENVIDU_SECRET
   */
  constructor(urlOpenViduServer, secret) {
    this.urlOpenViduServer = urlOpenViduServer;
    try {
      this._client = new native.NativeClient(String(urlOpenViduServer), String(secret));
    } catch (e) {
      throw toError(e);
    }
  }

  /** A new Session, created on the server when its id or a token is first asked for. */
  createSession(properties) {
    return new Session(this._client, properties);
  }
}

/**
 * Starts a whole Camerata server inside this process on 127.0.0.1. Options: `port` (default:
 * a free one), `dataDir` (default: a temporary folder, removed on stop), `secret` (default:
 * generated), `databaseUrl`. Resolves `{ url, secret, port, stop() }` once it serves.
 */
function startServer(options) {
  return native.startServer(options || undefined).catch((e) => { throw toError(e); });
}

module.exports = { OpenVidu, Session, TokenOptions, OpenViduRole, CamerataError, startServer };
