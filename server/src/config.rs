//! One typed configuration, read from `camerata` flags and the environment (OpenVidu's
//! `OPENVIDU_*` names are kept), checked once at start-up into a [`Settled`] form.

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The secret used when none is given; accepted on a loopback address only.
pub const DEV_SECRET: &str = "MY_SECRET";

/// The OpenVidu version whose API Camerata speaks.
pub const OPENVIDU_VERSION: &str = "2.32.2";

/// Command-line flags and environment variables of the `camerata` binary.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "camerata",
    version,
    about = "Camerata: a self-hosted video conferencing server compatible with OpenVidu 2.x"
)]
pub struct Config {
    /// Address to listen on. A loopback address serves plain HTTP by default; any other
    /// serves HTTPS.
    #[arg(long, env = "CAMERATA_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Port to listen on.
    #[arg(long, env = "SERVER_PORT", default_value_t = 4443)]
    pub port: u16,

    /// Log lines for people (`human`) or one JSON object per line (`json`: level, target,
    /// message, and the room, participant, stream and recording ids as fields).
    #[arg(long, env = "CAMERATA_LOG_FORMAT", default_value = "human", value_parser = ["human", "json"])]
    pub log_format: String,

    /// Host name or IP that clients use to reach the server (tokens, recording URLs).
    /// Defaults to the bind address.
    #[arg(long = "domain", env = "DOMAIN_OR_PUBLIC_IP")]
    pub domain_or_public_ip: Option<String>,

    /// Public port, when a proxy or NAT maps it differently from the listen port.
    #[arg(long = "https-port", env = "HTTPS_PORT")]
    pub https_port: Option<u16>,

    /// Serve plain HTTP (behind a TLS-terminating proxy). Defaults to true on a loopback
    /// address, false elsewhere.
    #[arg(long, env = "FORCE_PLAIN_HTTP", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub force_plain_http: Option<bool>,

    /// Password of the REST API (user OPENVIDUAPP); letters, digits, '_' and '-'.
    #[arg(long, env = "OPENVIDU_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// Database: `sqlite://PATH?mode=rwc` or `postgres://USER@HOST/DB`. Defaults to a SQLite
    /// file in the data folder.
    #[arg(long, env = "CAMERATA_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Folder for the default SQLite database and the generated certificate.
    #[arg(long, env = "CAMERATA_DATA_DIR", default_value = "camerata-data")]
    pub data_dir: PathBuf,

    /// PEM certificate chain for HTTPS.
    #[arg(long, env = "CAMERATA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for HTTPS.
    #[arg(long, env = "CAMERATA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve `POST /camerata/dev/token`, which hands tokens to anyone for the demo page.
    /// Defaults to true on a loopback address, false elsewhere.
    #[arg(long, env = "CAMERATA_DEV_TOKENS", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub dev_tokens: Option<bool>,

    /// Keep the pre-2.16 paths (`/api/...`, `/config`, `/accept-certificate`).
    #[arg(long, env = "SUPPORT_DEPRECATED_API", default_value = "true", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub support_deprecated_api: bool,

    /// How long a token stays usable after it is created, in seconds.
    #[arg(long, env = "CAMERATA_TOKEN_TTL", default_value_t = 86_400)]
    pub token_ttl: u64,

    /// The one UDP port every peer connection shares (open it in the firewall); absent: a
    /// free port chosen at start and printed.
    #[arg(long, env = "CAMERATA_UDP_PORT")]
    pub udp_port: Option<u16>,

    /// UDP ports the media socket may take, `MIN-MAX`: the first free one is used, and every
    /// peer connection shares it. Not with CAMERATA_UDP_PORT.
    #[arg(long, env = "CAMERATA_UDP_PORT_RANGE")]
    pub udp_port_range: Option<String>,

    /// The IP address media candidates announce, when browsers reach the media port on
    /// another address than DOMAIN_OR_PUBLIC_IP's (a cluster node whose name points at a
    /// front that carries its signaling only); default: that name's address.
    #[arg(long, env = "CAMERATA_MEDIA_IP")]
    pub media_ip: Option<std::net::IpAddr>,

    /// Also offer ICE over TCP (a passive candidate on the media port number), for networks
    /// that block UDP.
    #[arg(long, env = "CAMERATA_ICE_TCP", default_value = "false", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub ice_tcp: bool,

    /// Seconds a participant whose WebSocket dropped is kept for a reconnect before it is
    /// removed with `networkDisconnect`.
    #[arg(long, env = "CAMERATA_RECONNECT_GRACE", default_value_t = 10)]
    pub reconnect_grace: u64,

    /// Seconds a Janus API session lives without a request (0: forever), as Janus's
    /// `session_timeout`.
    #[arg(long, env = "CAMERATA_JANUS_SESSION_TIMEOUT", default_value_t = 60)]
    pub janus_session_timeout: u64,

    /// The Janus API's shared secret (Janus's `api_secret`): every request but `info` and
    /// `ping` must carry it as `apisecret` (or a signed token). Unset: no secret, as Janus
    /// ships.
    #[arg(long, env = "CAMERATA_JANUS_API_SECRET")]
    pub janus_api_secret: Option<String>,

    /// The key of Janus's signed tokens (`token_auth_secret`): requests may carry a token
    /// `<expiry>,janus,<plugin>…:<base64 HMAC-SHA1>` made with it. Unset: no tokens.
    #[arg(long, env = "CAMERATA_JANUS_TOKEN_SECRET")]
    pub janus_token_secret: Option<String>,

    /// Packets lost in a second on one of the Janus door's peer connections (received from
    /// a publisher, or asked again by a subscriber) that make a `slowlink` event (Janus's
    /// `slowlink_threshold`); 0: none, as Janus ships.
    #[arg(long, env = "CAMERATA_JANUS_SLOWLINK_THRESHOLD", default_value_t = 0)]
    pub janus_slowlink_threshold: u32,

    /// A separate address serving `GET /metrics` without credentials (for a scraper on a
    /// private network); unset: `/metrics` is served on the main port behind the REST
    /// credentials only.
    #[arg(long, env = "CAMERATA_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// Cluster mode: this node shares its rooms, placement and event delivery with the other
    /// nodes on the same PostgreSQL database (refused with SQLite).
    #[arg(long, env = "CAMERATA_CLUSTER", default_value_t = false, action = clap::ArgAction::Set)]
    pub cluster: bool,

    /// This node's name in the cluster, unique and stable across restarts (a StatefulSet's
    /// pod name); default: the host name.
    #[arg(long, env = "CAMERATA_NODE_ID")]
    pub node_id: Option<String>,

    /// The base URL the other nodes reach this node's REST API on (node-to-node calls);
    /// default: this node's public URL.
    #[arg(long, env = "CAMERATA_CLUSTER_URL")]
    pub cluster_url: Option<String>,

    /// Subscribers a room's owner carries itself (cluster mode): a room with as many gets its
    /// next subscribers placed on the least loaded other node, which receives each of the
    /// room's streams once over a media relay; 0: a room's participants all stay on its owner.
    #[arg(long, env = "CAMERATA_CLUSTER_ROOM_SUBSCRIBERS", default_value_t = 100)]
    pub cluster_room_subscribers: usize,

    /// Seconds a node's lease lasts; it renews it every third of that, and a node whose lease
    /// ran out is declared dead by the others.
    #[arg(long, env = "CAMERATA_CLUSTER_LEASE", default_value_t = 10)]
    pub cluster_lease: u64,

    /// Seconds a stopping server (SIGTERM) takes at most to put its participants out, finish
    /// its recordings and deliver its queued events before it exits.
    #[arg(long, env = "CAMERATA_SHUTDOWN_GRACE", default_value_t = 30)]
    pub shutdown_grace: u64,

    /// REST authentication failures from one address within a minute after which that
    /// address is refused for `CAMERATA_AUTH_BLOCK_SECONDS` (with the API's wrong-credentials
    /// status); 0: no limit.
    #[arg(long, env = "CAMERATA_AUTH_FAILURE_LIMIT", default_value_t = 10)]
    pub auth_failure_limit: u32,

    /// Seconds an address that reached the authentication failure limit is refused.
    #[arg(long, env = "CAMERATA_AUTH_BLOCK_SECONDS", default_value_t = 60)]
    pub auth_block_seconds: u64,

    /// OpenTok projects the OpenTok door serves, each `API_KEY:API_SECRET` (comma-separated,
    /// or the flag repeated): their backends authenticate with `X-OPENTOK-AUTH` and their
    /// locally minted client tokens are accepted at join. Unset: no OpenTok projects.
    #[arg(
        long = "opentok-project",
        env = "CAMERATA_OPENTOK_PROJECTS",
        value_delimiter = ','
    )]
    pub opentok_projects: Vec<String>,

    /// Vonage Video applications the OpenTok door serves, each `APPLICATION_ID=PATH` where
    /// PATH is the application's RSA public key (PEM): their backends authenticate with
    /// `Authorization: Bearer` RS256 JWTs and their client tokens are accepted at join.
    #[arg(
        long = "vonage-application",
        env = "CAMERATA_VONAGE_APPLICATIONS",
        value_delimiter = ','
    )]
    pub vonage_applications: Vec<String>,

    /// Port of the Janus API over plain HTTP at `/janus`, as Janus's 8088 (it is also
    /// served on the main port); `off` for none. Unset: 8088 when that port is free.
    #[arg(long, env = "CAMERATA_JANUS_HTTP_PORT", value_parser = side_port)]
    pub janus_http_port: Option<SidePort>,

    /// Port of the Janus API over WebSocket (any path, subprotocol `janus-protocol`), as
    /// Janus's 8188; `off` for none. Unset: 8188 when that port is free.
    #[arg(long, env = "CAMERATA_JANUS_WS_PORT", value_parser = side_port)]
    pub janus_ws_port: Option<SidePort>,

    /// The server makes the offer of each subscription and the browser answers
    /// (openvidu-browser's `prepareReceiveVideoFrom` flow, announced as mediaServer
    /// "mediasoup"); off: the browser offers (mediaServer "kurento").
    #[arg(long, env = "CAMERATA_SERVER_OFFERS", default_value = "false", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub server_offers: bool,

    /// Seconds between sweeps for sessions nobody joined (0 disables the sweep).
    #[arg(
        long,
        env = "OPENVIDU_SESSIONS_GARBAGE_INTERVAL",
        default_value_t = 900
    )]
    pub sessions_garbage_interval: u64,

    /// Age in seconds after which a session nobody joined is dropped.
    #[arg(
        long,
        env = "OPENVIDU_SESSIONS_GARBAGE_THRESHOLD",
        default_value_t = 3600
    )]
    pub sessions_garbage_threshold: u64,

    /// Recording module: the recording API, INDIVIDUAL and COMPOSED recordings (composed
    /// ones need ffmpeg).
    #[arg(long, env = "OPENVIDU_RECORDING", default_value = "false", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub recording: bool,

    /// Folder for recordings.
    #[arg(
        long,
        env = "OPENVIDU_RECORDING_PATH",
        default_value = "/opt/openvidu/recordings"
    )]
    pub recording_path: String,

    /// Serve recorded files without authentication.
    #[arg(long, env = "OPENVIDU_RECORDING_PUBLIC_ACCESS", default_value = "false", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub recording_public_access: bool,

    /// Who hears recordingStarted/recordingStopped: none, moderator, publisher_moderator or all.
    #[arg(
        long,
        env = "OPENVIDU_RECORDING_NOTIFICATION",
        default_value = "publisher_moderator"
    )]
    pub recording_notification: String,

    /// Seconds a recording goes on alone after its session's last participant left. Camerata
    /// stops it when the session closes; the value is accepted and reported.
    #[arg(
        long,
        env = "OPENVIDU_RECORDING_AUTOSTOP_TIMEOUT",
        default_value_t = 120
    )]
    pub recording_autostop_timeout: u64,

    /// Call-detail records: every event, one JSON line each, in a file under
    /// OPENVIDU_CDR_PATH.
    #[arg(long, env = "OPENVIDU_CDR", default_value = "false", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub cdr: bool,

    /// Folder for call-detail records.
    #[arg(long, env = "OPENVIDU_CDR_PATH", default_value = "/opt/openvidu/cdr")]
    pub cdr_path: String,

    /// Webhook: POST each event to OPENVIDU_WEBHOOK_ENDPOINT.
    #[arg(long, env = "OPENVIDU_WEBHOOK", default_value = "false", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub webhook: bool,

    /// The URL (http or https) webhook events are posted to; required with OPENVIDU_WEBHOOK.
    #[arg(long, env = "OPENVIDU_WEBHOOK_ENDPOINT")]
    pub webhook_endpoint: Option<String>,

    /// Extra webhook request headers: a JSON array of "Name: value" strings.
    #[arg(long, env = "OPENVIDU_WEBHOOK_HEADERS", default_value = "[]")]
    pub webhook_headers: String,

    /// The events the webhook sends: a JSON array of event names (absent: all of them).
    #[arg(long, env = "OPENVIDU_WEBHOOK_EVENTS")]
    pub webhook_events: Option<String>,

    /// How long a webhook event that keeps failing is retried before it is dropped, seconds.
    #[arg(long, env = "CAMERATA_WEBHOOK_RETRY_FOR", default_value_t = 86_400)]
    pub webhook_retry_for: u64,

    /// Most video kbps received from each publisher (0 = unconstrained).
    #[arg(
        long,
        env = "OPENVIDU_STREAMS_VIDEO_MAX_RECV_BANDWIDTH",
        default_value_t = 1000
    )]
    pub video_max_recv_bandwidth: u32,
    /// Least video kbps received from each publisher.
    #[arg(
        long,
        env = "OPENVIDU_STREAMS_VIDEO_MIN_RECV_BANDWIDTH",
        default_value_t = 300
    )]
    pub video_min_recv_bandwidth: u32,
    /// Most video kbps sent to each subscriber (0 = unconstrained).
    #[arg(
        long,
        env = "OPENVIDU_STREAMS_VIDEO_MAX_SEND_BANDWIDTH",
        default_value_t = 1000
    )]
    pub video_max_send_bandwidth: u32,
    /// Least video kbps sent to each subscriber.
    #[arg(
        long,
        env = "OPENVIDU_STREAMS_VIDEO_MIN_SEND_BANDWIDTH",
        default_value_t = 300
    )]
    pub video_min_send_bandwidth: u32,

    /// Video codec forced on sessions that do not choose one: MEDIA_SERVER_PREFERRED, NONE,
    /// VP8, VP9 or H264.
    #[arg(
        long,
        env = "OPENVIDU_STREAMS_FORCED_VIDEO_CODEC",
        default_value = "MEDIA_SERVER_PREFERRED"
    )]
    pub forced_video_codec: String,

    /// Whether sessions that do not choose may transcode to honour the forced codec.
    #[arg(long, env = "OPENVIDU_STREAMS_ALLOW_TRANSCODING", default_value = "false", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub allow_transcoding: bool,

    /// ICE servers handed to connections that bring none: a JSON array of strings such as
    /// "url=turn:turn.example.org:3478,username=u,credential=p".
    #[arg(long, env = "OPENVIDU_WEBRTC_ICE_SERVERS")]
    pub webrtc_ice_servers: Option<String>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The secret has characters OpenVidu does not allow.
    #[error("OPENVIDU_SECRET must be non-empty and use only letters, digits, '_' and '-'")]
    BadSecret,
    /// The development secret on a reachable address.
    #[error(
        "refusing to serve {0} with the development secret {DEV_SECRET}: set OPENVIDU_SECRET (or --secret)"
    )]
    DevSecretOnPublicAddress(IpAddr),
    /// No public host can be derived.
    #[error("listening on {0}: set DOMAIN_OR_PUBLIC_IP (or --domain) to the host clients use")]
    NoPublicHost(IpAddr),
    /// A value is not valid.
    #[error("{name}: {message}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// How the listener serves.
#[derive(Clone, Debug)]
pub enum Tls {
    /// Plain HTTP.
    Off,
    /// HTTPS from certificate files.
    Files {
        /// PEM certificate chain.
        cert: PathBuf,
        /// PEM private key.
        key: PathBuf,
    },
    /// HTTPS with a self-signed certificate generated for the public host.
    SelfSigned,
}

/// What a node of a cluster needs to know about itself.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// Its unique, stable name.
    pub node_id: String,
    /// The base URL other nodes call its REST API on (no trailing slash).
    pub url: String,
    /// How long its lease lasts.
    pub lease: Duration,
    /// Subscribers a room's owner carries before it places more on other nodes (0: never).
    pub room_subscribers: usize,
}

/// A checked configuration, with the values derived from it.
#[derive(Clone, Debug)]
pub struct Settled {
    /// The configuration as given.
    pub config: Config,
    /// This node's cluster settings, in cluster mode.
    pub cluster: Option<ClusterSettings>,
    /// The API secret.
    pub secret: String,
    /// Whether the development secret is in use.
    pub dev_secret: bool,
    /// The host clients use.
    pub public_host: String,
    /// The port clients use.
    pub public_port: u16,
    /// How the listener serves.
    pub tls: Tls,
    /// The database URL.
    pub database_url: String,
    /// ICE servers for connections that bring none, as checked values.
    pub default_ice_servers: Vec<crate::room::IceServer>,
    /// The forced-codec default, checked.
    pub forced_video_codec: crate::room::VideoCodec,
    /// Whether the development token endpoint is served.
    pub dev_tokens: bool,
    /// The webhook, when on.
    pub webhook: Option<Webhook>,
    /// The ports the media socket may take, inclusive (`(0, 0)`: any free port).
    pub media_ports: (u16, u16),
    /// The address announced in media candidates: the public IP, the resolved public
    /// domain, or the bind address.
    pub announced_ip: std::net::IpAddr,
    /// The OpenTok projects, as (API key, API secret).
    pub opentok_projects: Vec<(String, String)>,
    /// The Vonage applications, as (application id, RSA public key in PEM).
    pub vonage_applications: Vec<(String, Vec<u8>)>,
}

/// The events a CE server sends, and the default of OPENVIDU_WEBHOOK_EVENTS (PRO-only names
/// are accepted too, and never fire here).
pub const WEBHOOK_EVENTS: [&str; 15] = [
    "sessionCreated",
    "sessionDestroyed",
    "participantJoined",
    "participantLeft",
    "webrtcConnectionCreated",
    "webrtcConnectionDestroyed",
    "recordingStatusChanged",
    "filterEventDispatched",
    "signalSent",
    "mediaNodeStatusChanged",
    "autoscaling",
    "nodeCrashed",
    "nodeRecovered",
    "broadcastStarted",
    "broadcastStopped",
];

/// Where and how webhook events are sent.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// The receiver's URL.
    pub endpoint: String,
    /// Extra request headers, name and value.
    pub headers: Vec<(String, String)>,
    /// The event names sent.
    pub events: Vec<String>,
    /// How long a failing event is retried.
    pub retry_for: std::time::Duration,
}

impl Settled {
    /// `http` or `https`.
    pub fn http_scheme(&self) -> &'static str {
        match self.tls {
            Tls::Off => "http",
            _ => "https",
        }
    }

    /// `host[:port]`, with the port left out when it is the scheme's default.
    pub fn public_authority(&self) -> String {
        let default = match self.tls {
            Tls::Off => 80,
            _ => 443,
        };
        if self.public_port == default {
            self.public_host.clone()
        } else if self.public_host.contains(':') && !self.public_host.starts_with('[') {
            format!("[{}]:{}", self.public_host, self.public_port)
        } else {
            format!("{}:{}", self.public_host, self.public_port)
        }
    }

    /// The public HTTP URL with a trailing slash, as `/config` reports it.
    pub fn public_url(&self) -> String {
        format!("{}://{}/", self.http_scheme(), self.public_authority())
    }

    /// The public WebSocket base used in tokens (no trailing slash).
    pub fn ws_url(&self) -> String {
        let scheme = match self.tls {
            Tls::Off => "ws",
            _ => "wss",
        };
        format!("{scheme}://{}", self.public_authority())
    }
}

fn secret_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Config {
    /// Parses flags and environment, exiting with usage on error (for `main`).
    pub fn from_args() -> Self {
        Self::parse()
    }

    /// A configuration from an explicit argument list (for tests and embedding); the
    /// environment is read as for the binary.
    pub fn try_from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::try_parse_from(args)
    }

    fn webhook_settings(&self) -> Result<Webhook, ConfigError> {
        let invalid = |name: &'static str, message: String| ConfigError::Invalid { name, message };
        let endpoint = self
            .webhook_endpoint
            .clone()
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| {
                invalid(
                    "OPENVIDU_WEBHOOK_ENDPOINT",
                    "required when OPENVIDU_WEBHOOK is true".into(),
                )
            })?;
        match endpoint.parse::<hyper::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
            _ => {
                return Err(invalid(
                    "OPENVIDU_WEBHOOK_ENDPOINT",
                    format!("'{endpoint}' is not an http or https URL"),
                ));
            }
        }
        let lines: Vec<String> = serde_json::from_str(&self.webhook_headers).map_err(|e| {
            invalid(
                "OPENVIDU_WEBHOOK_HEADERS",
                format!("not a JSON array of strings: {e}"),
            )
        })?;
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(": ")
                .or_else(|| line.split_once(':'))
                .ok_or_else(|| {
                    invalid(
                        "OPENVIDU_WEBHOOK_HEADERS",
                        format!("'{line}' is not \"Name: value\""),
                    )
                })?;
            let ok = hyper::header::HeaderName::from_bytes(name.trim().as_bytes()).is_ok()
                && hyper::header::HeaderValue::from_str(value.trim()).is_ok();
            if !ok {
                return Err(invalid(
                    "OPENVIDU_WEBHOOK_HEADERS",
                    format!("'{line}' is not a valid HTTP header"),
                ));
            }
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let events = match &self.webhook_events {
            None => WEBHOOK_EVENTS.iter().map(|e| (*e).to_owned()).collect(),
            Some(text) => {
                let names: Vec<String> = serde_json::from_str(text).map_err(|e| {
                    invalid(
                        "OPENVIDU_WEBHOOK_EVENTS",
                        format!("not a JSON array of event names: {e}"),
                    )
                })?;
                if let Some(unknown) = names.iter().find(|n| !WEBHOOK_EVENTS.contains(&n.as_str()))
                {
                    return Err(invalid(
                        "OPENVIDU_WEBHOOK_EVENTS",
                        format!("unknown event '{unknown}'"),
                    ));
                }
                names
            }
        };
        Ok(Webhook {
            endpoint,
            headers,
            events,
            retry_for: std::time::Duration::from_secs(self.webhook_retry_for),
        })
    }

    /// `CAMERATA_OPENTOK_PROJECTS`, checked: keys unique, neither part empty.
    fn opentok_projects(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            name: "CAMERATA_OPENTOK_PROJECTS",
            message,
        };
        let mut projects: Vec<(String, String)> = Vec::new();
        for item in self
            .opentok_projects
            .iter()
            .filter(|s| !s.trim().is_empty())
        {
            let (key, secret) = item
                .trim()
                .split_once(':')
                .filter(|(k, s)| !k.is_empty() && !s.is_empty())
                .ok_or_else(|| invalid("each project is API_KEY:API_SECRET".into()))?;
            if projects.iter().any(|(k, _)| k == key) {
                return Err(invalid(format!("project '{key}' is given twice")));
            }
            projects.push((key.to_owned(), secret.to_owned()));
        }
        Ok(projects)
    }

    /// `CAMERATA_VONAGE_APPLICATIONS`, checked: each public key file read and parsed.
    fn vonage_applications(&self) -> Result<Vec<(String, Vec<u8>)>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            name: "CAMERATA_VONAGE_APPLICATIONS",
            message,
        };
        let mut apps: Vec<(String, Vec<u8>)> = Vec::new();
        for item in self
            .vonage_applications
            .iter()
            .filter(|s| !s.trim().is_empty())
        {
            let (id, path) = item
                .trim()
                .split_once('=')
                .filter(|(i, p)| !i.is_empty() && !p.is_empty())
                .ok_or_else(|| {
                    invalid("each application is APPLICATION_ID=PUBLIC_KEY_PATH".into())
                })?;
            if apps.iter().any(|(i, _)| i == id) {
                return Err(invalid(format!("application '{id}' is given twice")));
            }
            let pem = std::fs::read(path)
                .map_err(|e| invalid(format!("application '{id}': reading {path}: {e}")))?;
            jsonwebtoken::DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                invalid(format!(
                    "application '{id}': {path} is not an RSA public key in PEM: {e}"
                ))
            })?;
            apps.push((id.to_owned(), pem));
        }
        Ok(apps)
    }

    /// Checks the configuration for a listener bound at `local`.
    pub fn settle(self, local: SocketAddr) -> Result<Settled, ConfigError> {
        if !["none", "moderator", "publisher_moderator", "all"]
            .contains(&self.recording_notification.as_str())
        {
            return Err(ConfigError::Invalid {
                name: "OPENVIDU_RECORDING_NOTIFICATION",
                message: format!(
                    "'{}' is not one of none, moderator, publisher_moderator, all",
                    self.recording_notification
                ),
            });
        }
        let webhook = if self.webhook {
            Some(self.webhook_settings()?)
        } else {
            None
        };
        let loopback = self.bind.is_loopback();
        let (secret, dev_secret) = match &self.secret {
            Some(s) if !secret_ok(s) => return Err(ConfigError::BadSecret),
            Some(s) => (s.clone(), s == DEV_SECRET),
            None => (DEV_SECRET.to_owned(), true),
        };
        if dev_secret && !loopback {
            return Err(ConfigError::DevSecretOnPublicAddress(self.bind));
        }
        let public_host = match &self.domain_or_public_ip {
            Some(d) if !d.trim().is_empty() => d.trim().to_owned(),
            _ if self.bind.is_unspecified() => return Err(ConfigError::NoPublicHost(self.bind)),
            _ => self.bind.to_string(),
        };
        let public_port = self.https_port.unwrap_or(local.port());
        let tls = match (&self.tls_cert, &self.tls_key, self.force_plain_http) {
            (_, _, Some(true)) => Tls::Off,
            (Some(cert), Some(key), _) => Tls::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            (_, _, None) if loopback => Tls::Off,
            _ => Tls::SelfSigned,
        };
        let database_url = self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("camerata.db").display()
            )
        });
        let cluster = self.cluster_settings(&database_url, &tls, &public_host, public_port)?;
        let forced_video_codec =
            <crate::room::VideoCodec as crate::spelling::WireEnum>::parse(&self.forced_video_codec)
                .ok_or_else(|| ConfigError::Invalid {
                    name: "OPENVIDU_STREAMS_FORCED_VIDEO_CODEC",
                    message: format!("unknown codec '{}'", self.forced_video_codec),
                })?;
        let default_ice_servers = match &self.webrtc_ice_servers {
            None => Vec::new(),
            Some(text) => {
                crate::ice::parse_ice_server_config(text, &secret).map_err(|message| {
                    ConfigError::Invalid {
                        name: "OPENVIDU_WEBRTC_ICE_SERVERS",
                        message,
                    }
                })?
            }
        };
        let udp_port_range = match &self.udp_port_range {
            None => None,
            Some(text) => {
                let range = text
                    .split_once('-')
                    .and_then(|(a, b)| {
                        Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?))
                    })
                    .filter(|(a, b)| *a > 0 && a <= b);
                Some(range.ok_or_else(|| ConfigError::Invalid {
                    name: "CAMERATA_UDP_PORT_RANGE",
                    message: format!("'{text}' is not MIN-MAX with 1 <= MIN <= MAX <= 65535"),
                })?)
            }
        };
        let media_ports = match (self.udp_port, udp_port_range) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "CAMERATA_UDP_PORT",
                    message: "set CAMERATA_UDP_PORT or CAMERATA_UDP_PORT_RANGE, not both".into(),
                });
            }
            (Some(port), None) => (port, port),
            (None, Some(range)) => range,
            (None, None) => (0, 0),
        };
        let announced_ip = match self.media_ip.map_or_else(|| public_host.parse(), Ok) {
            Ok(ip) => ip,
            Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(public_host.as_str(), 0))
                .ok()
                .and_then(|mut addrs| addrs.next())
                .map(|a| a.ip())
                .or_else(|| {
                    // Unresolvable here (no DNS on this host): the bind address, when it is one.
                    (!self.bind.is_unspecified()).then(|| {
                        tracing::warn!(
                            "'{public_host}' does not resolve; media candidates announce {}",
                            self.bind
                        );
                        self.bind
                    })
                })
                .ok_or_else(|| ConfigError::Invalid {
                    name: "OPENVIDU_DOMAIN_OR_PUBLIC_IP",
                    message: format!(
                        "'{public_host}' does not resolve to an address to announce for media"
                    ),
                })?,
        };
        let dev_tokens = self.dev_tokens.unwrap_or(loopback);
        if dev_tokens && !loopback {
            tracing::warn!(
                "CAMERATA_DEV_TOKENS is on for {}: anyone who can reach this server can join any room",
                self.bind
            );
        }
        let opentok_projects = self.opentok_projects()?;
        let vonage_applications = self.vonage_applications()?;
        Ok(Settled {
            cluster,
            opentok_projects,
            vonage_applications,
            dev_tokens,
            webhook,
            media_ports,
            announced_ip,
            config: self,
            secret,
            dev_secret,
            public_host,
            public_port,
            tls,
            database_url,
            default_ice_servers,
            forced_video_codec,
        })
    }

    /// The cluster settings when `CAMERATA_CLUSTER` is on: PostgreSQL only, a node name
    /// (default: the host name), the URL other nodes call, a lease of at least 3 s.
    fn cluster_settings(
        &self,
        database_url: &str,
        tls: &Tls,
        public_host: &str,
        public_port: u16,
    ) -> Result<Option<ClusterSettings>, ConfigError> {
        if !self.cluster {
            return Ok(None);
        }
        let invalid = |name, message: String| ConfigError::Invalid { name, message };
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(invalid(
                "CAMERATA_CLUSTER",
                "a cluster shares one PostgreSQL database: set CAMERATA_DATABASE_URL to a postgres:// URL (SQLite is one machine's file)".into(),
            ));
        }
        let node_id = match &self.node_id {
            Some(id) => id.trim().to_owned(),
            None => std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                .map(|h| h.trim().to_owned())
                .unwrap_or_default(),
        };
        if node_id.is_empty()
            || node_id.len() > 64
            || !node_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid(
                "CAMERATA_NODE_ID",
                format!("'{node_id}' is not a node name: 1-64 letters, digits, '-', '_' or '.'"),
            ));
        }
        if self.cluster_lease < 3 {
            return Err(invalid(
                "CAMERATA_CLUSTER_LEASE",
                format!("{} s is too short: at least 3", self.cluster_lease),
            ));
        }
        let url = match &self.cluster_url {
            Some(u) => u.trim().trim_end_matches('/').to_owned(),
            None => {
                let scheme = if matches!(tls, Tls::Off) {
                    "http"
                } else {
                    "https"
                };
                if public_host.contains(':') {
                    format!("{scheme}://[{public_host}]:{public_port}")
                } else {
                    format!("{scheme}://{public_host}:{public_port}")
                }
            }
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "CAMERATA_CLUSTER_URL",
                format!("'{url}' is not an http:// or https:// URL"),
            ));
        }
        Ok(Some(ClusterSettings {
            node_id,
            url,
            lease: Duration::from_secs(self.cluster_lease),
            room_subscribers: self.cluster_room_subscribers,
        }))
    }

    /// The lifetimes of grants and idle rooms.
    pub fn lifetimes(&self) -> crate::rooms::Lifetimes {
        crate::rooms::Lifetimes {
            grant_ttl: Duration::from_secs(self.token_ttl),
            gc_interval: Duration::from_secs(self.sessions_garbage_interval),
            gc_threshold: Duration::from_secs(self.sessions_garbage_threshold),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Config {
        let mut all = vec!["camerata"];
        all.extend_from_slice(args);
        Config::try_from_args(all).expect("valid flags")
    }

    fn local() -> SocketAddr {
        "127.0.0.1:4443".parse().expect("address")
    }

    #[test]
    fn webhook_settings_are_checked() {
        let refused = |args: &[&str], name: &str| match cfg(args).settle(local()) {
            Err(ConfigError::Invalid { name: n, message }) => {
                assert_eq!(n, name, "{message}");
                assert!(!message.is_empty());
            }
            other => panic!("{args:?} should be refused, got {other:?}"),
        };
        refused(&["--webhook", "true"], "OPENVIDU_WEBHOOK_ENDPOINT");
        refused(
            &["--webhook", "true", "--webhook-endpoint", "ftp://x/"],
            "OPENVIDU_WEBHOOK_ENDPOINT",
        );
        let base = [
            "--webhook",
            "true",
            "--webhook-endpoint",
            "http://127.0.0.1:9/h",
        ];
        let with = |extra: &[&'static str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            v
        };
        refused(
            &with(&["--webhook-events", r#"["nope"]"#]),
            "OPENVIDU_WEBHOOK_EVENTS",
        );
        refused(
            &with(&["--webhook-events", "sessionCreated"]),
            "OPENVIDU_WEBHOOK_EVENTS",
        );
        refused(
            &with(&["--webhook-headers", r#"["no colon"]"#]),
            "OPENVIDU_WEBHOOK_HEADERS",
        );
        refused(
            &with(&["--webhook-headers", "{}"]),
            "OPENVIDU_WEBHOOK_HEADERS",
        );
        let s = cfg(&with(&[
            "--webhook-headers",
            r#"["Authorization: Basic abc: def"]"#,
        ]))
        .settle(local())
        .expect("settles");
        let hook = s.webhook.expect("on");
        assert_eq!(
            hook.headers,
            [("Authorization".to_owned(), "Basic abc: def".to_owned())],
            "split on the first ': '"
        );
        assert_eq!(
            hook.events.len(),
            WEBHOOK_EVENTS.len(),
            "all events by default"
        );
        assert!(cfg(&[]).settle(local()).expect("settles").webhook.is_none());
    }

    #[test]
    fn first_run_needs_nothing() {
        let s = cfg(&[]).settle(local()).expect("defaults settle");
        assert!(s.dev_secret);
        assert_eq!(s.secret, DEV_SECRET);
        assert!(matches!(s.tls, Tls::Off));
        assert_eq!(s.public_url(), "http://127.0.0.1:4443/");
        assert_eq!(s.ws_url(), "ws://127.0.0.1:4443");
    }

    #[test]
    fn public_address_needs_a_real_secret_and_serves_tls() {
        let c = cfg(&["--bind", "192.0.2.7"]);
        assert!(matches!(
            c.settle(local()),
            Err(ConfigError::DevSecretOnPublicAddress(_))
        ));
        let c = cfg(&["--bind", "192.0.2.7", "--secret", "MY_SECRET"]);
        assert!(matches!(
            c.settle(local()),
            Err(ConfigError::DevSecretOnPublicAddress(_))
        ));
        let s = cfg(&[
            "--bind",
            "192.0.2.7",
            "--secret",
            "s3cret",
            "--https-port",
            "443",
        ])
        .settle(local())
        .expect("settles");
        assert!(matches!(s.tls, Tls::SelfSigned));
        assert_eq!(s.public_url(), "https://192.0.2.7/");
        assert_eq!(s.ws_url(), "wss://192.0.2.7");
        let c = cfg(&["--bind", "0.0.0.0", "--secret", "s3cret"]);
        assert!(matches!(
            c.settle(local()),
            Err(ConfigError::NoPublicHost(_))
        ));
    }

    #[test]
    fn bad_values_are_named() {
        assert!(matches!(
            cfg(&["--secret", "has space"]).settle(local()),
            Err(ConfigError::BadSecret)
        ));
        assert!(cfg(&["--recording", "true"]).settle(local()).is_ok());
        let err = cfg(&["--recording-notification", "everyone"])
            .settle(local())
            .expect_err("unknown audience");
        assert!(err.to_string().contains("OPENVIDU_RECORDING_NOTIFICATION"));
        let err = cfg(&["--forced-video-codec", "AV1"])
            .settle(local())
            .expect_err("unknown codec");
        assert!(
            err.to_string()
                .contains("OPENVIDU_STREAMS_FORCED_VIDEO_CODEC")
        );
        let err = cfg(&["--webrtc-ice-servers", "[\"url=ftp:x\"]"])
            .settle(local())
            .expect_err("bad ICE url");
        assert!(err.to_string().contains("OPENVIDU_WEBRTC_ICE_SERVERS"));
    }

    #[test]
    fn the_media_port_is_one_port_or_a_range() {
        let ports = |args: &[&str]| cfg(args).settle(local()).map(|s| s.media_ports);
        assert_eq!(ports(&[]).expect("settles"), (0, 0), "any free port");
        assert_eq!(
            ports(&["--udp-port", "40000"]).expect("settles"),
            (40000, 40000)
        );
        assert_eq!(
            ports(&["--udp-port-range", "40000-40010"]).expect("settles"),
            (40000, 40010)
        );
        let err = ports(&["--udp-port", "40000", "--udp-port-range", "40000-40010"])
            .expect_err("not both");
        assert!(err.to_string().contains("CAMERATA_UDP_PORT"), "{err}");
        let err = ports(&["--udp-port-range", "40010-40000"]).expect_err("backwards");
        assert!(err.to_string().contains("CAMERATA_UDP_PORT_RANGE"), "{err}");
        // The announced address is the bind address on loopback.
        let s = cfg(&[]).settle(local()).expect("settles");
        assert_eq!(s.announced_ip, std::net::IpAddr::from([127, 0, 0, 1]));
        // Unless another media address is given (a node behind a signaling front).
        let s = cfg(&["--domain", "video1.example.com", "--media-ip", "192.0.2.7"])
            .settle(local())
            .expect("settles");
        assert_eq!(s.announced_ip, std::net::IpAddr::from([192, 0, 2, 7]));
        assert_eq!(s.public_host, "video1.example.com");
    }
}

/// A listening port beside the main one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SidePort {
    /// Not served.
    Off,
    /// Served on this port (0: any free port).
    Port(u16),
}

/// Reads `off` or a port number.
fn side_port(text: &str) -> Result<SidePort, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "off" | "false" | "no" | "none" => Ok(SidePort::Off),
        other => other
            .parse::<u16>()
            .map(SidePort::Port)
            .map_err(|_| format!("'{text}' is neither a port number nor 'off'")),
    }
}
