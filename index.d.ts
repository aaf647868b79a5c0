// Types of the npm package `camerata`: the callback API of the original
// openvidu-node-client (1.x), each method also returning a Promise, and an embedded server.
// The promise API of openvidu-node-client 2.32 is the entry point `camerata/openvidu-node-client`.

/** What a participant may do. */
export declare const OpenViduRole: {
  /** Receives streams, never publishes. */
  readonly SUBSCRIBER: 'SUBSCRIBER'
  /** Publishes and receives. */
  readonly PUBLISHER: 'PUBLISHER'
  /** Publishes, receives, and may force others out or unpublish them. */
  readonly MODERATOR: 'MODERATOR'
  /** Publishes, never receives. */
  readonly PUBLISHER_ONLY: 'PUBLISHER_ONLY'
}
/** One of the `OpenViduRole` values. */
export type OpenViduRole = (typeof OpenViduRole)[keyof typeof OpenViduRole]

/** An SDK call that failed. */
export declare class CamerataError extends Error {
  /** The HTTP status, when the server answered. */
  readonly status: number | undefined
}

/**
 * The seed's callback, declared with one parameter: called with the value when the call
 * succeeds, and not called on failure; the failure rejects the Promise the call returns.
 */
export type ValueCallback<T> = (value: T) => void

/** A callback of two parameters: called with the value, or with `undefined` and the error. */
export type Callback<T> = (value: T | undefined, error: CamerataError | undefined) => void

/** Options of a token, made by `new TokenOptions.Builder()...build()`. */
export declare class TokenOptions {
  private constructor()
  /** The data attached to the connection (server data); '' by default. */
  getData(): string
  /** The role of the connection; PUBLISHER by default. */
  getRole(): string
}

export declare namespace TokenOptions {
  /** Builds `TokenOptions`. */
  class Builder {
    constructor()
    /** Sets the data (at most 1000 characters). */
    data(data: string): this
    /** Sets the role. */
    role(role: OpenViduRole | string): this
    /** The options; throws when the data is longer than 1000 characters or the role unknown. */
    build(): TokenOptions
  }
}

/** OpenVidu session properties sent when the session is created on the server. */
export interface SessionProperties {
  mediaMode?: 'ROUTED' | 'RELAYED'
  recordingMode?: 'ALWAYS' | 'MANUAL'
  customSessionId?: string
  forcedVideoCodec?: 'MEDIA_SERVER_PREFERRED' | 'NONE' | 'VP8' | 'VP9' | 'H264'
  allowTranscoding?: boolean
  defaultRecordingProperties?: Record<string, unknown>
  mediaNode?: { id: string }
}

/** A session, created on the server when its id or a token is first asked for. */
export declare class Session {
  private constructor()
  /** The session id once known, '' before. */
  readonly sessionId: string
  /** Calls back with the session id (at once when already known), or with `undefined` and
   * the error; the returned Promise never rejects (it resolves with the id, or `undefined`
   * after a failure). */
  getSessionId(callback: Callback<string>): Promise<string | undefined>
  /**
   * The seed's form: calls back with the session id (at once when already known). The
   * returned Promise rejects with the error when the call fails.
   */
  getSessionId(callback: ValueCallback<string>): Promise<string>
  /** The session id. */
  getSessionId(): Promise<string>
  /** Calls back with a new token (role PUBLISHER, empty data), or with `undefined` and the
   * error. */
  generateToken(callback: Callback<string>): Promise<string | undefined>
  /** The seed's form: calls back with a new token; a failure rejects the returned Promise. */
  generateToken(callback: ValueCallback<string>): Promise<string>
  /** Calls back with a new token with these options, or with `undefined` and the error. */
  generateToken(tokenOptions: TokenOptions, callback: Callback<string>): Promise<string | undefined>
  /** The seed's form: calls back with a new token with these options; a failure rejects the
   * returned Promise. */
  generateToken(tokenOptions: TokenOptions, callback: ValueCallback<string>): Promise<string>
  /** A new token. */
  generateToken(tokenOptions?: TokenOptions): Promise<string>
}

/** The entry point of the callback API. */
export declare class OpenVidu {
  /**
   * @param urlOpenViduServer `http(s)://host:port`; a path is ignored, no scheme means https
   * @param secret the server's OPENVIDU_SECRET
   */
  constructor(urlOpenViduServer: string, secret: string)
  readonly urlOpenViduServer: string
  /** A new Session (no call is made until its id or a token is asked for). */
  createSession(properties?: SessionProperties): Session
}

/** Options of an embedded server. */
export interface ServerOptions {
  /** Port on 127.0.0.1; 0 or absent picks a free one. */
  port?: number
  /** Folder for the SQLite database; absent makes a temporary one, removed on stop. */
  dataDir?: string
  /** API secret; absent generates one. */
  secret?: string
  /** A database URL instead of the SQLite file (e.g. `postgres://...`). */
  databaseUrl?: string
}

/** A Camerata server running inside this process. */
export interface EmbeddedServer {
  /** `http://127.0.0.1:PORT` */
  readonly url: string
  /** The API secret. */
  readonly secret: string
  /** The port. */
  readonly port: number
  /** Stops the server; resolves when every task has ended. */
  stop(): Promise<void>
}

/** Starts a whole Camerata server inside this process on 127.0.0.1. */
export declare function startServer(options?: ServerOptions): Promise<EmbeddedServer>
