//! Media: the only module that names webrtc-rs (its sans-IO core, the `rtc` crate). One peer
//! connection per publisher endpoint and per subscriber endpoint; the client offers and the
//! server answers, or, for a subscription, the server offers and the client answers.
//!
//! Every peer connection lives in one task, the media loop (`engine`), which owns them all,
//! the one UDP socket every peer shares and the ICE-TCP connections. A datagram is handed to
//! the peer connection it belongs to (a STUN check by the ICE username it carries, anything
//! else by its source address, claimed by such a check or by a check the server sent); RTP a publisher sends is rewritten in place (the subscriber's SSRC
//! and payload type, continuous sequence numbers) and written to each subscriber's peer
//! connection, whose encrypted output goes straight to the socket. No task hop, channel, lock
//! or log lies on that path; what it still allocates is inside `rtc` (see the crate note in
//! docs/ARCHITECTURE.md).
//!
//! Everything else reaches the loop as a `Command` through [`Media`]: publish, subscribe
//! (answering or offering), the client's answer, a trickled candidate, closing.
//! Keyframes: a PLI goes to the publisher when a subscriber's peer connection comes up (the
//! moment a keyframe becomes useful to it) and every PLI or FIR a subscriber sends is relayed, at most one per [`KEYFRAME_MIN_GAP`]
//! (a request inside the gap is sent when it ends, unless a keyframe passes first: that one
//! answers it). A publisher's peer connection runs `rtc`'s NACK generator, receiver reports
//! and transport-wide congestion feedback; a subscriber's runs no sending interceptor: the
//! loop answers its NACKs from one history per stream and writes its sender reports.
//!
//! Invariants: only the loop touches a peer connection; dropping the last [`Endpoint`] or
//! [`StreamOut`] clone frees what it held in the loop; a command never waits on the network.

mod codec;
mod engine;
mod forward;
mod net;
mod relay;
pub use relay::RelayKeys;

pub use codec::{FeedbackToApplication, NACK_HISTORY, interceptors, is_keyframe_request};
use engine::Command;
pub use forward::{cap_video_bitrate, starts_keyframe};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The shortest time between two keyframe requests sent to one publisher.
pub const KEYFRAME_MIN_GAP: Duration = Duration::from_millis(100);

/// A media operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The SDP could not be used.
    #[error("SDP failure: {0}")]
    Sdp(String),
    /// The WebRTC stack failed.
    #[error("WebRTC failure: {0}")]
    Stack(String),
    /// The stream or endpoint named is gone.
    #[error("{0}")]
    Gone(&'static str),
}

/// How peers are reached.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// The address the media sockets bind to.
    pub bind_ip: IpAddr,
    /// The address announced to browsers in candidates.
    pub announced_ip: IpAddr,
    /// The ports the one UDP socket may take, inclusive: the first free one is used. `(0, 0)`
    /// lets the system choose.
    pub ports: (u16, u16),
    /// Also offer a passive ICE-TCP candidate on the same port number.
    pub ice_tcp: bool,
}

/// The one video codec a room's peers negotiate: an SFU that does not transcode forwards
/// what it receives, so publishers and subscribers must agree on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoChoice {
    /// VP8 (the default).
    Vp8,
    /// VP9, profile 0.
    Vp9,
    /// H.264 constrained baseline, packetization mode 1.
    H264,
}

/// The server's SDP for a peer connection (an answer, or an offer for a subscription) and
/// its local candidates, to trickle after it when the SDP carries none.
#[derive(Clone, Debug)]
pub struct Description {
    /// The SDP.
    pub sdp: String,
    /// The server's candidates for this peer connection.
    pub candidates: Vec<LocalCandidate>,
    /// The peer connection's state as it changes; the sender is dropped when it closes.
    pub status: tokio::sync::watch::Receiver<PeerStatus>,
    /// In a server offer to a subscriber, the sections of the stream just offered or added.
    pub tracks: Vec<SentTrack>,
}

/// A media section that carries one kind of a stream to a subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentTrack {
    /// Its mid in the subscriber's SDP.
    pub mid: String,
    /// It carries video (else audio).
    pub video: bool,
}

/// A stream's voice activity, as last measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Speech {
    /// The publisher is talking.
    pub talking: bool,
    /// The average level of the last window, in dBov (0 loudest, 127 silence).
    pub average: f32,
}

/// What a door may watch of one peer connection (each flag turns true once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStatus {
    /// ICE and DTLS are up: media can flow.
    pub connected: bool,
    /// It failed (ICE or DTLS).
    pub failed: bool,
    /// The server receives audio on it (a publisher's).
    pub audio: bool,
    /// The server receives video on it (a publisher's).
    pub video: bool,
    /// Streams it carried (a subscriber's) that ended while it went on carrying others:
    /// their sections are dead until the door prunes them.
    pub ended: u32,
    /// Report intervals (a second each) in which packets were lost on it.
    pub lossy: u32,
    /// Packets lost in the latest of those intervals: on their way to the server from a
    /// publisher (`uplink`), or to a subscriber, as its NACKs count them.
    pub lost: u32,
    /// The latest loss was on the way to the server.
    pub uplink: bool,
}

/// One local ICE candidate, as the browser's `RTCIceCandidate` takes it.
#[derive(Clone, Debug)]
pub struct LocalCandidate {
    /// The candidate attribute, starting with `candidate:`.
    pub candidate: String,
    /// The media section it belongs to (the first of the bundle).
    pub sdp_mid: String,
    /// That section's index.
    pub sdp_mline_index: u16,
}

/// Counts kept by the media loop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Live peer connections.
    pub peers: usize,
    /// Published streams with a fan-out.
    pub streams: usize,
    /// Remote addresses known to belong to a peer connection.
    pub addresses: usize,
    /// Open ICE-TCP connections.
    pub tcp_connections: usize,
    /// Datagrams dropped because no peer connection claimed them.
    pub unclaimed_datagrams: u64,
    /// Packets sent again because a subscriber's NACK asked for them.
    pub retransmitted: u64,
    /// RTCP sender reports sent to subscribers.
    pub sender_reports: u64,
    /// Packet and feedback totals since start.
    pub counts: MediaCounts,
    /// Peer connections by state and transport: (`connected`/`failed`/`connecting`,
    /// `udp`/`tcp`, how many).
    pub peers_by_state: Vec<(&'static str, &'static str, usize)>,
}

/// Totals the media loop counts as plain integers of its own (no atomic, no lock per
/// packet), handed out by [`Media::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediaCounts {
    /// RTP packets received from publishers (of a stream they publish).
    pub packets_received: u64,
    /// Their bytes (header and payload).
    pub bytes_received: u64,
    /// RTP packets sent to subscribers.
    pub packets_forwarded: u64,
    /// Their bytes (as received; each subscriber's header differs by a few bytes at most).
    pub bytes_forwarded: u64,
    /// Packets subscribers asked again for (NACKed sequence numbers).
    pub nacks_received: u64,
    /// Keyframe requests (PLI, FIR) from subscribers.
    pub keyframe_requests_received: u64,
    /// Keyframe requests (PLI) sent to publishers.
    pub keyframe_requests_sent: u64,
}

/// The media loop's histograms (Prometheus histograms: lock-free, observed once per event,
/// never per packet); the metrics endpoint reads them.
#[derive(Clone)]
pub struct MediaHistograms {
    /// Seconds from a keyframe request sent to a publisher to its keyframe arriving.
    pub keyframe_latency: prometheus::Histogram,
    /// Round-trip time subscribers' receiver reports give, seconds.
    pub receiver_rtt: prometheus::Histogram,
    /// Fraction of packets lost that subscribers' receiver reports give.
    pub receiver_loss: prometheus::Histogram,
}

impl std::fmt::Debug for MediaHistograms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaHistograms")
    }
}

impl Default for MediaHistograms {
    fn default() -> Self {
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            prometheus::Histogram::with_opts(
                prometheus::HistogramOpts::new(name, help).buckets(buckets),
            )
            .expect("a valid histogram")
        };
        Self {
            keyframe_latency: histogram(
                "camerata_keyframe_request_latency_seconds",
                "Seconds from a keyframe request sent to a publisher to its keyframe arriving",
                vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
            ),
            receiver_rtt: histogram(
                "camerata_receiver_rtt_seconds",
                "Round-trip time from subscribers' RTCP receiver reports",
                vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0],
            ),
            receiver_loss: histogram(
                "camerata_receiver_loss_fraction",
                "Fraction of packets lost from subscribers' RTCP receiver reports",
                vec![0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
            ),
        }
    }
}

/// Starts peer connections and reaches the media loop (cheap to clone). The loop ends when
/// the last clone, endpoint and stream are dropped.
#[derive(Clone, Debug)]
pub struct Media {
    commands: mpsc::UnboundedSender<Command>,
    next_stream: Arc<AtomicU64>,
    udp: SocketAddr,
    tcp: Option<SocketAddr>,
    histograms: MediaHistograms,
}

/// One peer connection of a publisher or subscriber (cheap to clone; closed by
/// [`Endpoint::close`] or when the last clone is dropped).
#[derive(Clone, Debug)]
pub struct Endpoint(Peer);

/// Where an endpoint's peer connection is.
#[derive(Clone, Debug)]
enum Peer {
    /// In this node's media loop.
    Here(Arc<Handle<PeerKey>>),
    /// In another node's (a subscriber a cluster's edge node serves).
    Elsewhere(Arc<dyn RemoteEndpoint>),
}

/// A subscriber's peer connection that another node's media loop has (cluster mode): what
/// the call layer may do with it from here. Dropping the last clone closes it there.
pub trait RemoteEndpoint: Send + Sync + std::fmt::Debug {
    /// Adds a candidate the browser trickled.
    fn add_candidate(
        &self,
        candidate: String,
        sdp_mid: Option<String>,
        sdp_mline_index: Option<u16>,
    ) -> futures_util::future::BoxFuture<'static, Result<(), MediaError>>;
    /// Gives the peer connection the client's answer to its offer.
    fn accept_answer(
        &self,
        answer: String,
    ) -> futures_util::future::BoxFuture<'static, Result<(), MediaError>>;
}

/// The fan-out of one published stream (cheap to clone; it ends when the last clone is
/// dropped).
#[derive(Clone, Debug)]
pub struct StreamOut(Arc<Handle<StreamKey>>);

/// A copy of one published stream's packets for a recorder; dropping it stops the copy. It
/// does not keep the stream alive: when the stream ends, `packets` ends.
#[derive(Debug)]
pub struct Tap {
    guard: TapGuard,
    packets: mpsc::Receiver<TapPacket>,
}

/// Keeps a relay of a stream to another node going; dropping it stops the relay.
#[derive(Debug)]
pub struct RelayGuard(Handle<u64>);

impl RelayGuard {
    /// The relay's id.
    pub fn relay(&self) -> u64 {
        self.0.key
    }
}

/// Keeps a [`Tap`]'s copy going; dropping it stops the copy (and ends its packets).
#[derive(Debug)]
pub struct TapGuard(#[allow(dead_code)] Handle<TapKey>);

impl Tap {
    /// The guard and the stream's packets, as forwarded (continuous numbering across
    /// publisher reconnects), apart: the packets can go to a writer thread.
    pub fn split(self) -> (TapGuard, mpsc::Receiver<TapPacket>) {
        (self.guard, self.packets)
    }
}

/// One packet copied to a recorder.
#[derive(Debug)]
pub struct TapPacket {
    /// Video (else audio).
    pub video: bool,
    /// The RTP packet (its payload shared with the forwarded copies).
    pub packet: rtc::rtp::Packet,
    /// When it arrived.
    pub at: std::time::Instant,
}

/// Packets queued to one recorder before it loses some: about 4 s of a 1 Mbps stream.
pub const TAP_CAPACITY: usize = 1024;

/// Names a peer connection in the media loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PeerKey(pub(crate) u64);

/// Names a published stream's fan-out in the media loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct StreamKey(pub(crate) u64);

/// Names a recorder's copy of a stream in the media loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TapKey(pub(crate) u64);

/// Something in the media loop, and what to tell the loop when the last clone goes.
#[derive(Debug)]
struct Handle<K: Copy> {
    key: K,
    commands: mpsc::UnboundedSender<Command>,
    on_drop: fn(K) -> Command,
}

impl<K: Copy> Drop for Handle<K> {
    fn drop(&mut self) {
        let _ = self.commands.send((self.on_drop)(self.key));
    }
}

impl StreamOut {
    /// A number naming this stream in this node's media loop.
    pub fn id(&self) -> u64 {
        self.0.key.0
    }
}

impl Endpoint {
    fn new(key: PeerKey, commands: &mpsc::UnboundedSender<Command>) -> Self {
        Self(Peer::Here(Arc::new(Handle {
            key,
            commands: commands.clone(),
            on_drop: Command::ClosePeer,
        })))
    }

    /// An endpoint whose peer connection another node has.
    pub fn elsewhere(remote: Arc<dyn RemoteEndpoint>) -> Self {
        Self(Peer::Elsewhere(remote))
    }

    /// The local handle; what a subscriber on another node cannot do fails with why.
    fn here(&self) -> Result<&Handle<PeerKey>, MediaError> {
        match &self.0 {
            Peer::Here(h) => Ok(h),
            Peer::Elsewhere(_) => Err(MediaError::Stack(
                "not available for a subscriber another cluster node serves".into(),
            )),
        }
    }

    /// Adds a candidate the browser trickled; an empty one (end of candidates) is ignored.
    pub async fn add_candidate(
        &self,
        candidate: String,
        sdp_mid: Option<String>,
        sdp_mline_index: Option<u16>,
    ) -> Result<(), MediaError> {
        if candidate.is_empty() {
            return Ok(());
        }
        if let Peer::Elsewhere(remote) = &self.0 {
            return remote
                .add_candidate(candidate, sdp_mid, sdp_mline_index)
                .await;
        }
        let h = self.here()?;
        let (reply, answer) = oneshot::channel();
        let init = rtc::peer_connection::transport::RTCIceCandidateInit {
            candidate,
            sdp_mid,
            sdp_mline_index,
            ..Default::default()
        };
        h.commands
            .send(Command::Candidate(h.key, init, reply))
            .map_err(|_| MediaError::Gone("the media loop has stopped"))?;
        answer
            .await
            .map_err(|_| MediaError::Gone("the media loop has stopped"))?
    }

    /// Stops (`on` false) or resumes sending a subscriber its audio, its video or both
    /// (`video` `None`), of `only` one stream or of all; after a pause it sees one
    /// numbering, and video resumes with a keyframe request.
    pub fn set_sending(
        &self,
        only: Option<&StreamOut>,
        video: Option<bool>,
        on: bool,
    ) -> Result<(), MediaError> {
        let h = self.here()?;
        h.commands
            .send(Command::Sending {
                peer: h.key,
                stream: only.map(|s| s.0.key),
                video,
                on,
            })
            .map_err(|_| MediaError::Gone("the media loop has stopped"))
    }

    /// Whether `other` is a clone of this endpoint (one peer connection may carry several
    /// subscriptions).
    pub fn same(&self, other: &Endpoint) -> bool {
        match (&self.0, &other.0) {
            (Peer::Here(a), Peer::Here(b)) => Arc::ptr_eq(a, b),
            (Peer::Elsewhere(a), Peer::Elsewhere(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Adds `stream` (its audio and, `video_track`, its video) to this subscriber's peer
    /// connection: the new offer, whose answer goes to [`Endpoint::accept_answer`].
    pub async fn extend(
        &self,
        stream: &StreamOut,
        audio: bool,
        video_track: bool,
        video: VideoChoice,
    ) -> Result<Description, MediaError> {
        let h = self.here()?;
        let (reply, answer) = oneshot::channel();
        h.commands
            .send(Command::Extend {
                peer: h.key,
                stream: stream.0.key,
                audio,
                video_track,
                video,
                reply,
            })
            .map_err(|_| MediaError::Gone("the media loop has stopped"))?;
        answer
            .await
            .map_err(|_| MediaError::Gone("the media loop has stopped"))?
    }

    /// Moves this subscriber's section `mid` to `stream` (a track of the same kind), without
    /// renegotiating: the subscriber sees one numbering and gets a keyframe.
    pub async fn switch(&self, mid: &str, stream: &StreamOut) -> Result<(), MediaError> {
        let h = self.here()?;
        let (reply, answer) = oneshot::channel();
        h.commands
            .send(Command::Switch {
                peer: h.key,
                mid: mid.to_owned(),
                stream: stream.0.key,
                reply,
            })
            .map_err(|_| MediaError::Gone("the media loop has stopped"))?;
        answer
            .await
            .map_err(|_| MediaError::Gone("the media loop has stopped"))?
            .map(|_| ())
    }

    /// Takes `stream` (`None`: every stream no longer published) off this subscriber's
    /// peer connection: the new offer, its sections inactive.
    pub async fn shrink(&self, stream: Option<&StreamOut>) -> Result<Description, MediaError> {
        let h = self.here()?;
        let (reply, answer) = oneshot::channel();
        h.commands
            .send(Command::Shrink {
                peer: h.key,
                stream: stream.map(|s| s.0.key),
                reply,
            })
            .map_err(|_| MediaError::Gone("the media loop has stopped"))?;
        answer
            .await
            .map_err(|_| MediaError::Gone("the media loop has stopped"))?
    }

    /// Gives a peer connection the server offered (`Media::offer`) the client's answer.
    pub async fn accept_answer(&self, answer: String) -> Result<(), MediaError> {
        if let Peer::Elsewhere(remote) = &self.0 {
            return remote.accept_answer(answer).await;
        }
        let h = self.here()?;
        let (reply, done) = oneshot::channel();
        h.commands
            .send(Command::Answer(h.key, answer, reply))
            .map_err(|_| MediaError::Gone("the media loop has stopped"))?;
        done.await
            .map_err(|_| MediaError::Gone("the media loop has stopped"))?
    }

    /// Closes the peer connection now, whatever other clones exist.
    pub fn close(self) {
        if let Peer::Here(h) = &self.0 {
            let _ = h.commands.send(Command::ClosePeer(h.key));
        }
    }
}

impl Media {
    /// Binds the media sockets and starts the media loop. Must run inside a tokio runtime.
    pub fn start(config: MediaConfig) -> std::io::Result<Self> {
        let (udp, tcp) = net::bind(config.bind_ip, config.ports, config.ice_tcp)?;
        let bound = udp.local_addr()?;
        let udp_addr = SocketAddr::new(config.announced_ip, bound.port());
        let tcp_addr = tcp.as_ref().map(|_| udp_addr);
        // Unbounded on purpose: endpoints and streams close from `Drop`, which cannot wait
        // for space in a queue, and every other sender awaits its reply, so at most one command per
        // caller (plus the closes) is ever queued; the loop serves commands first.
        let (commands, receiver) = mpsc::unbounded_channel();
        let histograms = MediaHistograms::default();
        engine::spawn(udp, tcp, udp_addr, receiver, histograms.clone())?;
        Ok(Self {
            histograms,
            commands,
            next_stream: Arc::new(AtomicU64::new(1)),
            udp: udp_addr,
            tcp: tcp_addr,
        })
    }

    /// The announced address of the UDP socket every peer shares.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp
    }

    /// The announced ICE-TCP address, when ICE-TCP is on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, MediaError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .map_err(|_| MediaError::Gone("the media loop has stopped"))?;
        answer
            .await
            .map_err(|_| MediaError::Gone("the media loop has stopped"))
    }

    /// Answers a publisher's offer: its endpoint, the stream's fan-out and the answer (with
    /// the server's candidates in it when `candidates_in_sdp`).
    pub async fn publish(
        &self,
        offer: String,
        video: VideoChoice,
        candidates_in_sdp: bool,
    ) -> Result<(Endpoint, StreamOut, Description), MediaError> {
        let out = StreamOut(Arc::new(Handle {
            key: StreamKey(self.next_stream.fetch_add(1, Ordering::Relaxed)),
            commands: self.commands.clone(),
            on_drop: Command::DropStream,
        }));
        let (endpoint, answer) = self
            .republish(&out, offer, video, candidates_in_sdp)
            .await?;
        Ok((endpoint, out, answer))
    }

    /// Answers a publisher's new offer for a stream that may have subscribers (a stream
    /// reconnect): the new peer connection feeds the same fan-out, so subscribers keep their
    /// own peer connections and see one continuous stream.
    pub async fn republish(
        &self,
        out: &StreamOut,
        offer: String,
        video: VideoChoice,
        candidates_in_sdp: bool,
    ) -> Result<(Endpoint, Description), MediaError> {
        let stream = out.0.key;
        let (peer, answer) = self
            .ask(|reply| Command::Publish {
                stream,
                offer,
                video,
                candidates_in_sdp,
                reply,
            })
            .await??;
        Ok((Endpoint::new(peer, &self.commands), answer))
    }

    /// Sends `stream` once to another node's media socket `to` over relay `relay` (this node
    /// owns the stream); dropping the guard stops it. Asks the publisher for a keyframe.
    pub async fn relay_out(
        &self,
        stream: &StreamOut,
        relay: u64,
        to: SocketAddr,
        keys: RelayKeys,
    ) -> Result<RelayGuard, MediaError> {
        let found = self
            .ask(|reply| Command::RelayOut {
                stream: stream.0.key,
                relay,
                to,
                keys,
                reply,
            })
            .await?;
        let guard = RelayGuard(Handle {
            key: relay,
            commands: self.commands.clone(),
            on_drop: Command::DropRelay,
        });
        if found {
            Ok(guard)
        } else {
            Err(MediaError::Gone("the stream is no longer published"))
        }
    }

    /// A stream another node (at media socket `from`) relays here over relay `relay`: its
    /// fan-out, which subscribers here subscribe to as to a local stream. It ends when the
    /// last clone is dropped.
    pub fn relay_in(
        &self,
        relay: u64,
        from: SocketAddr,
        keys: RelayKeys,
        video: VideoChoice,
    ) -> StreamOut {
        let key = StreamKey(self.next_stream.fetch_add(1, Ordering::Relaxed));
        let _ = self.commands.send(Command::RelayIn {
            stream: key,
            relay,
            from,
            keys,
            video,
        });
        StreamOut(Arc::new(Handle {
            key,
            commands: self.commands.clone(),
            on_drop: Command::DropStream,
        }))
    }

    /// Starts copying `stream`'s packets to a recorder; asks its publisher for a keyframe.
    pub async fn record(&self, stream: &StreamOut) -> Result<Tap, MediaError> {
        let id = TapKey(self.next_stream.fetch_add(1, Ordering::Relaxed));
        let (tx, packets) = mpsc::channel(TAP_CAPACITY);
        let found = self
            .ask(|reply| Command::Tap {
                stream: stream.0.key,
                id,
                packets: tx,
                reply,
            })
            .await?;
        let handle = Handle {
            key: id,
            commands: self.commands.clone(),
            on_drop: Command::DropTap,
        };
        if !found {
            return Err(MediaError::Gone("the stream is no longer published"));
        }
        Ok(Tap {
            guard: TapGuard(handle),
            packets,
        })
    }

    /// Offers a subscriber `stream`: a peer connection sending one track per kind asked for
    /// (audio first), with the server's candidates in the SDP when `candidates_in_sdp`, else
    /// only in the returned list (to trickle). The subscription carries media once the
    /// client's answer is given to [`Endpoint::accept_answer`].
    pub async fn offer(
        &self,
        stream: &StreamOut,
        audio: bool,
        video_track: bool,
        video: VideoChoice,
        candidates_in_sdp: bool,
    ) -> Result<(Endpoint, Description), MediaError> {
        let key = stream.0.key;
        let (peer, offer) = self
            .ask(|reply| Command::Offer {
                stream: key,
                audio,
                video_track,
                video,
                candidates_in_sdp,
                reply,
            })
            .await??;
        Ok((Endpoint::new(peer, &self.commands), offer))
    }

    /// Answers a subscriber's offer for `stream`.
    pub async fn subscribe(
        &self,
        stream: &StreamOut,
        offer: String,
        video: VideoChoice,
        candidates_in_sdp: bool,
    ) -> Result<(Endpoint, Description), MediaError> {
        let key = stream.0.key;
        let (peer, answer) = self
            .ask(|reply| Command::Subscribe {
                stream: key,
                offer,
                video,
                candidates_in_sdp,
                reply,
            })
            .await??;
        Ok((Endpoint::new(peer, &self.commands), answer))
    }

    /// Caps the video `stream`'s publisher sends at `bps` (REMB, repeated every report
    /// interval), or lifts the cap (`None`).
    pub fn cap_bitrate(&self, stream: &StreamOut, bps: Option<u32>) -> Result<(), MediaError> {
        self.commands
            .send(Command::Cap {
                stream: stream.0.key,
                bps,
            })
            .map_err(|_| MediaError::Gone("the media loop has stopped"))
    }

    /// Asks `stream`'s publisher for a keyframe (no more often than `KEYFRAME_MIN_GAP`).
    pub fn request_keyframe(&self, stream: &StreamOut) -> Result<(), MediaError> {
        self.commands
            .send(Command::Keyframe(stream.0.key))
            .map_err(|_| MediaError::Gone("the media loop has stopped"))
    }

    /// Measures `stream`'s voice activity from its publisher's audio levels: the average
    /// of every `every` packets, talking while under `threshold` dBov. The returned watch
    /// changes when the publisher starts or stops talking.
    pub async fn watch_speech(
        &self,
        stream: &StreamOut,
        every: u32,
        threshold: u8,
    ) -> Result<tokio::sync::watch::Receiver<Speech>, MediaError> {
        let key = stream.0.key;
        self.ask(|reply| Command::Speech {
            stream: key,
            every,
            threshold,
            reply,
        })
        .await?
        .ok_or(MediaError::Gone("the stream is no longer published"))
    }

    /// Stops (`muted`) or resumes forwarding `stream`'s video (`video`) or audio to its
    /// subscribers and recorders; the publisher keeps sending.
    pub fn mute(&self, stream: &StreamOut, video: bool, muted: bool) -> Result<(), MediaError> {
        self.commands
            .send(Command::Mute {
                stream: stream.0.key,
                video,
                muted,
            })
            .map_err(|_| MediaError::Gone("the media loop has stopped"))
    }

    /// The loop's histograms, for the metrics.
    pub fn histograms(&self) -> &MediaHistograms {
        &self.histograms
    }

    /// The loop's counts, after every command sent before this one took effect.
    pub async fn stats(&self) -> Result<MediaStats, MediaError> {
        self.ask(Command::Stats).await
    }
}
