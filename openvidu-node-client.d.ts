// Types of `camerata/openvidu-node-client`: the promise API of openvidu-node-client 2.32.

export declare const OpenViduRole: {
  readonly SUBSCRIBER: 'SUBSCRIBER'
  readonly PUBLISHER: 'PUBLISHER'
  readonly MODERATOR: 'MODERATOR'
}
export type OpenViduRole = (typeof OpenViduRole)[keyof typeof OpenViduRole]
export declare const MediaMode: { readonly RELAYED: 'RELAYED'; readonly ROUTED: 'ROUTED' }
export type MediaMode = (typeof MediaMode)[keyof typeof MediaMode]
export declare const RecordingMode: { readonly ALWAYS: 'ALWAYS'; readonly MANUAL: 'MANUAL' }
export type RecordingMode = (typeof RecordingMode)[keyof typeof RecordingMode]
export declare const ConnectionType: { readonly WEBRTC: 'WEBRTC'; readonly IPCAM: 'IPCAM' }
export type ConnectionType = (typeof ConnectionType)[keyof typeof ConnectionType]
export declare const VideoCodec: {
  readonly MEDIA_SERVER_PREFERRED: 'MEDIA_SERVER_PREFERRED'
  readonly NONE: 'NONE'
  readonly VP8: 'VP8'
  readonly VP9: 'VP9'
  readonly H264: 'H264'
}
export type VideoCodec = (typeof VideoCodec)[keyof typeof VideoCodec]
export declare const RecordingLayout: {
  readonly BEST_FIT: 'BEST_FIT'
  readonly PICTURE_IN_PICTURE: 'PICTURE_IN_PICTURE'
  readonly VERTICAL_PRESENTATION: 'VERTICAL_PRESENTATION'
  readonly HORIZONTAL_PRESENTATION: 'HORIZONTAL_PRESENTATION'
  readonly CUSTOM: 'CUSTOM'
}
export type RecordingLayout = (typeof RecordingLayout)[keyof typeof RecordingLayout]

export interface RecordingProperties {
  name?: string
  hasAudio?: boolean
  hasVideo?: boolean
  outputMode?: 'COMPOSED' | 'COMPOSED_QUICK_START' | 'INDIVIDUAL'
  recordingLayout?: RecordingLayout
  resolution?: string
  frameRate?: number
  shmSize?: number
  customLayout?: string
  ignoreFailedStreams?: boolean
  mediaNode?: { id: string } | string
}

export interface SessionProperties {
  mediaMode?: MediaMode
  recordingMode?: RecordingMode
  defaultRecordingProperties?: RecordingProperties
  customSessionId?: string
  mediaNode?: { id: string } | string
  forcedVideoCodec?: VideoCodec
  allowTranscoding?: boolean
}

export interface KurentoOptions {
  videoMaxRecvBandwidth?: number
  videoMinRecvBandwidth?: number
  videoMaxSendBandwidth?: number
  videoMinSendBandwidth?: number
  allowedFilters?: string[]
}

export interface IceServerProperties {
  url: string
  staticAuthSecret?: string
  username?: string
  credential?: string
}

export interface ConnectionProperties {
  type?: ConnectionType
  data?: string
  record?: boolean
  role?: OpenViduRole | string
  kurentoOptions?: KurentoOptions
  rtspUri?: string
  adaptativeBitrate?: boolean
  onlyPlayWithSubscribers?: boolean
  networkCache?: number
  customIceServers?: IceServerProperties[]
}

export interface TokenOptions {
  role?: OpenViduRole | string
  data?: string
  kurentoOptions?: KurentoOptions
}

export declare class Publisher {
  streamId: string
  createdAt: number
  hasAudio: boolean
  hasVideo: boolean
  audioActive: boolean
  videoActive: boolean
  frameRate: number
  typeOfVideo: string
  videoDimensions: string
}

export declare class Connection {
  connectionId: string
  status: 'pending' | 'active'
  createdAt: number
  activeAt: number | null
  location: string | null
  ip: string | null
  platform: string | null
  clientData: string | null
  token: string
  connectionProperties: ConnectionProperties
  publishers: Publisher[]
  subscribers: string[]
  role: string
  serverData: string
}

export declare class Recording {
  id: string
  sessionId: string
  createdAt: number
  size: number
  duration: number
  url: string | null
  status: 'starting' | 'started' | 'stopped' | 'ready' | 'failed'
  properties: RecordingProperties
}
export declare namespace Recording {
  const Status: {
    readonly starting: 'starting'
    readonly started: 'started'
    readonly stopped: 'stopped'
    readonly ready: 'ready'
    readonly failed: 'failed'
  }
  const OutputMode: {
    readonly COMPOSED: 'COMPOSED'
    readonly COMPOSED_QUICK_START: 'COMPOSED_QUICK_START'
    readonly INDIVIDUAL: 'INDIVIDUAL'
  }
  const DefaultRecordingPropertiesValues: Required<
    Pick<RecordingProperties, 'hasAudio' | 'hasVideo' | 'outputMode' | 'recordingLayout' | 'resolution' | 'frameRate' | 'shmSize' | 'ignoreFailedStreams'>
  >
}

export declare class Session {
  sessionId: string
  createdAt: number
  properties: SessionProperties
  connections: Connection[]
  activeConnections: Connection[]
  recording: boolean
  broadcasting: boolean
  createConnection(connectionProperties?: ConnectionProperties): Promise<Connection>
  /** @deprecated use createConnection */
  generateToken(tokenOptions?: TokenOptions): Promise<string>
  close(): Promise<void>
  fetch(): Promise<boolean>
  forceDisconnect(connection: string | Connection): Promise<void>
  forceUnpublish(publisher: string | Publisher): Promise<void>
  updateConnection(connectionId: string, connectionProperties: ConnectionProperties): Promise<Connection | undefined>
}

export declare class OpenVidu {
  constructor(hostname: string, secret: string)
  host: string
  activeSessions: Session[]
  createSession(properties?: SessionProperties): Promise<Session>
  startRecording(sessionId: string, name?: string): Promise<Recording>
  startRecording(sessionId: string, properties: RecordingProperties): Promise<Recording>
  stopRecording(recordingId: string): Promise<Recording>
  getRecording(recordingId: string): Promise<Recording>
  listRecordings(): Promise<Recording[]>
  deleteRecording(recordingId: string): Promise<void>
  startBroadcast(sessionId: string, broadcastUrl: string, properties?: RecordingProperties): Promise<void>
  stopBroadcast(sessionId: string): Promise<void>
  fetch(): Promise<boolean>
  enableProdMode(): void
}
