//! The media loop: one task owning every peer connection (`rtc` sans-IO cores), the shared
//! UDP socket and the ICE-TCP connections. It reacts to four things: a command, datagrams, a
//! TCP frame, and the earliest timer any peer connection asked for.
//!
//! Per forwarded packet it does: one `recv_from`, a hash lookup of the source address, the
//! publisher's `handle_read`, then for each subscriber an in-place header rewrite of a clone
//! that shares the payload, `write_rtp` and one `send_to` per datagram the peer connection
//! emits. Timers are kept per peer connection and refreshed for all of them every
//! `REFRESH`, so a deadline a write moved earlier is never late by more than that.

use super::codec::{as_nack, engine as media_engine, is_keyframe_request, server_interceptors};
use super::forward::{Continuity, History, RtpClock, starts_keyframe, stun_local_ufrag};
use super::net::{self, TcpEvent};
use super::relay::{self, Kind, MAX_DATAGRAM, Opener, RelayKeys, Sealer};
use super::{
    Description, KEYFRAME_MIN_GAP, LocalCandidate, MediaError, MediaStats, PeerKey, PeerStatus,
    Speech, StreamKey, TapKey, VideoChoice,
};
use bytes::{Bytes, BytesMut};
use rtc::media_stream::{MediaStreamTrack, MediaStreamTrackId};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::marshal::MarshalSize;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// The longest a peer connection's timer may be served late after a write moved it earlier.
const REFRESH: Duration = Duration::from_millis(100);

/// Timers due within this much of now are served in the same wake-up.
const SLACK: Duration = Duration::from_millis(2);

/// Remote addresses one peer connection may claim (ICE checks from several interfaces).
const MAX_ADDRESSES: usize = 8;

/// Datagrams read per wake-up before other work gets a turn.
const BATCH: usize = 64;

/// Audio is output 0 of a stream, video output 1.
const AUDIO: usize = 0;
const VIDEO: usize = 1;

/// The RTP clock rate of each output: Opus, and every video codec a room may use.
const CLOCK_RATES: [u32; 2] = [48_000, 90_000];

/// Time between the sender reports each subscriber gets per stream (what webrtc-rs's sender
/// report interceptor and browsers use).
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// What the rest of the server asks of the loop.
pub(crate) enum Command {
    /// A publisher's offer for `stream` (a new stream, or a new peer connection feeding it).
    Publish {
        stream: StreamKey,
        offer: String,
        video: VideoChoice,
        candidates_in_sdp: bool,
        reply: oneshot::Sender<Result<(PeerKey, Description), MediaError>>,
    },
    /// A subscriber's offer for `stream`.
    Subscribe {
        stream: StreamKey,
        offer: String,
        video: VideoChoice,
        candidates_in_sdp: bool,
        reply: oneshot::Sender<Result<(PeerKey, Description), MediaError>>,
    },
    /// Offer a subscriber `stream`: one sending track per kind asked for.
    Offer {
        stream: StreamKey,
        audio: bool,
        video_track: bool,
        video: VideoChoice,
        candidates_in_sdp: bool,
        reply: oneshot::Sender<Result<(PeerKey, Description), MediaError>>,
    },
    /// The client's answer to a peer connection the server offered.
    Answer(PeerKey, String, oneshot::Sender<Result<(), MediaError>>),
    /// A candidate the browser trickled for a peer connection.
    Candidate(
        PeerKey,
        RTCIceCandidateInit,
        oneshot::Sender<Result<(), MediaError>>,
    ),
    /// Ask `stream`'s publisher for a keyframe (within the least gap between requests).
    Keyframe(StreamKey),
    /// Cap the video `stream`'s publisher sends (REMB), or lift the cap.
    Cap { stream: StreamKey, bps: Option<u32> },
    /// Measure the voice activity of `stream` (see `Levels`); `None` when it is gone.
    Speech {
        stream: StreamKey,
        every: u32,
        threshold: u8,
        reply: oneshot::Sender<Option<watch::Receiver<Speech>>>,
    },
    /// Stop or resume writing to one subscriber's peer connection, for one stream or all,
    /// its audio, its video or both (`None`).
    Sending {
        peer: PeerKey,
        stream: Option<StreamKey>,
        video: Option<bool>,
        on: bool,
    },
    /// Add sending tracks for `stream` to a subscriber's peer connection; a new offer.
    Extend {
        peer: PeerKey,
        stream: StreamKey,
        audio: bool,
        video_track: bool,
        video: VideoChoice,
        reply: oneshot::Sender<Result<Description, MediaError>>,
    },
    /// Move a subscriber's section to another stream of the same kind.
    Switch {
        peer: PeerKey,
        mid: String,
        stream: StreamKey,
        reply: oneshot::Sender<Result<StreamKey, MediaError>>,
    },
    /// Take a stream's tracks (`None`: those of ended streams) off a subscriber's peer
    /// connection; a new offer.
    Shrink {
        peer: PeerKey,
        stream: Option<StreamKey>,
        reply: oneshot::Sender<Result<Description, MediaError>>,
    },
    /// Stop (`muted`) or resume forwarding one kind of `stream` (moderation).
    Mute {
        stream: StreamKey,
        video: bool,
        muted: bool,
    },
    /// Close a peer connection (idempotent).
    ClosePeer(PeerKey),
    /// Forget a stream's fan-out (idempotent).
    DropStream(StreamKey),
    /// Report the loop's counts.
    Stats(oneshot::Sender<MediaStats>),
    /// Copy `stream`'s packets to a recorder; replies false when the stream is gone.
    Tap {
        stream: StreamKey,
        id: TapKey,
        packets: mpsc::Sender<super::TapPacket>,
        reply: oneshot::Sender<bool>,
    },
    /// Stop copying packets to a recorder (idempotent).
    DropTap(TapKey),
    /// Send `stream` to another node's media socket `to` over relay `relay` (the owner's
    /// side); replies false when the stream is gone. Asks its publisher for a keyframe.
    RelayOut {
        stream: StreamKey,
        relay: u64,
        to: SocketAddr,
        keys: RelayKeys,
        reply: oneshot::Sender<bool>,
    },
    /// Receive a stream over relay `relay` from the owner's media socket `from` as `stream`,
    /// whose subscribers then subscribe as to a local one (the edge's side).
    RelayIn {
        stream: StreamKey,
        relay: u64,
        from: SocketAddr,
        keys: RelayKeys,
        video: VideoChoice,
    },
    /// Stop sending on relay `relay` (idempotent).
    DropRelay(u64),
}

/// ICE-TCP events queued to the loop. Senders: the connection tasks (accepts, frames,
/// closes). Receiver: the loop. When full, a connection's reader waits (TCP then slows that
/// peer down, as a congested path would), never the loop.
const TCP_EVENTS: usize = 1024;

/// Time between the server's connectivity checks: browsers pace theirs at 50 ms, and
/// `rtc`'s 200 ms default made a connection wait a whole interval for the server's check.
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// How long after ICE connects the server sends its first DTLS flight: at once, a client
/// that has not seen its own ICE connect yet may drop it (webrtc-rs does; Chromium keeps an
/// early ClientHello), and the retransmission comes a second later.
const DTLS_START: Duration = Duration::from_millis(10);

/// Checks per candidate pair before it fails: the same 1.4 s as `rtc`'s default of 7 at
/// 200 ms, so a lossy path is given as long.
const ICE_CHECKS_PER_PAIR: u16 = 28;

/// One peer connection and what the loop knows about it.
struct Peer {
    pc: RTCPeerConnection,
    ufrag: Vec<u8>,
    stream: StreamKey,
    /// Remote addresses claimed by this peer connection (`true`: TCP).
    addresses: Vec<(SocketAddr, bool)>,
    deadline: Option<Instant>,
    /// A publisher's incoming tracks: id, output index, receiver.
    sources: Vec<(MediaStreamTrackId, usize, RTCRtpReceiverId)>,
    /// A subscriber's outgoing tracks, of one stream or several.
    sinks: Vec<Sink>,
    /// A subscriber's outgoing tracks that wait for the client's answer to the server's
    /// offer before they join the fan-out.
    unanswered: Vec<Sink>,
    /// The server made an offer the client has not answered yet.
    awaiting_answer: bool,
    /// When to serve the peer connection's timers early: its first DTLS flight.
    kick: Option<Instant>,
    /// What doors may watch of it; changed only when its state changes, never per packet.
    status: watch::Sender<PeerStatus>,
    /// A publisher's negotiated id of the audio-level header extension (RFC 6464).
    audio_level: Option<u8>,
    /// Packets a subscriber asked again for (NACKs) since the last report.
    nacked: u32,
}

/// A subscriber's sending track, as negotiated.
#[derive(Clone)]
struct Sink {
    /// The stream it carries.
    stream: StreamKey,
    track: MediaStreamTrackId,
    /// `AUDIO` or `VIDEO`: which of the stream's fan-outs it takes.
    index: usize,
    sender: RTCRtpSenderId,
    ssrc: u32,
}

/// One subscriber of one kind of a stream.
struct Output {
    peer: PeerKey,
    sender: RTCRtpSenderId,
    ssrc: u32,
    payload_type: u8,
    /// Packets and payload octets sent (wrapping, as RTCP counts them).
    packets: u32,
    octets: u32,
    /// The subscriber asked for this kind to stop: nothing is written to it.
    paused: Paused,
    /// Sequence numbers of the stream this subscriber was never sent (its pauses), taken
    /// off each packet's so that it sees one numbering without gaps.
    skipped: u16,
    /// The stream's sequence number last written to it.
    last_seq: Option<u16>,
    /// The first of its own sequence numbers after the latest resume: NACKs for earlier
    /// ones are not answered (their offset was another).
    resumed_at: Option<u16>,
}

/// Whether a subscriber's output is paused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Paused {
    /// Written to.
    #[default]
    No,
    /// Not written to.
    Yes,
    /// Written to again from the next packet, which sets the new offset.
    Resuming,
}

impl Output {
    /// Writes a forwarded packet to this subscriber: a clone sharing the payload, with the
    /// subscriber's SSRC and payload type; counted for its sender reports once accepted.
    fn write(
        &mut self,
        pc: &mut RTCPeerConnection,
        packet: &rtc::rtp::Packet,
        now: Instant,
    ) -> bool {
        let mut copy = packet.clone();
        copy.header.ssrc = self.ssrc;
        copy.header.payload_type = self.payload_type;
        copy.header.sequence_number = packet.header.sequence_number.wrapping_sub(self.skipped);
        let octets = copy.payload.len() as u32;
        let written = pc
            .rtp_sender(self.sender)
            .is_some_and(|mut sender| sender.write_rtp(now, copy).is_ok());
        if written {
            self.packets = self.packets.wrapping_add(1);
            self.octets = self.octets.wrapping_add(octets);
        }
        written
    }
}

/// One kind (audio or video) of a published stream.
#[derive(Default)]
struct Fanout {
    outputs: Vec<Output>,
    continuity: Continuity,
    /// The publisher's receiver for this kind and the SSRC it receives.
    source: Option<(RTCRtpReceiverId, u32)>,
    /// Packets forwarded lately, for NACKs (video only: audio negotiates no NACK).
    history: History,
    /// The forwarded RTP clock against ours, for sender reports.
    clock: RtpClock,
    last_keyframe_request: Option<Instant>,
    /// A request inside the gap is waiting since then; a keyframe that passes meanwhile
    /// answers it (whoever asked is connected and gets that keyframe), else it goes out
    /// when the gap ends.
    keyframe_wanted: Option<Instant>,
    /// When a keyframe was last asked of the publisher and has not come yet (its latency
    /// goes to the metrics).
    keyframe_asked_at: Option<Instant>,
    /// A moderator stopped this kind: its packets are dropped, not forwarded.
    muted: bool,
    /// The publisher's last sequence number received, and the packets missing before it
    /// since the last report (a gap counts once; a late packet is not taken back).
    last_in: Option<u16>,
    lost_in: u32,
}

#[derive(Default)]
struct Stream {
    publisher: Option<PeerKey>,
    fanouts: [Fanout; 2],
    /// The video codec the stream's peers negotiated (for spotting keyframes).
    video: Option<VideoChoice>,
    /// Recorders copying the stream: their id and queue. A recorder that falls behind loses
    /// packets (its writer resumes video at the next keyframe); forwarding never waits.
    taps: Vec<(TapKey, mpsc::Sender<super::TapPacket>)>,
    /// Voice activity, measured once a door asks.
    speech: Option<Levels>,
    /// The most video bits per second its publisher should send, told by REMB every report
    /// interval; `None`: no cap beyond the answer's.
    cap_bps: Option<u32>,
    /// Other nodes this stream is relayed to: relay id, their media socket, the sealer.
    relays: Vec<(u64, SocketAddr, Sealer)>,
    /// The relay this stream comes from, when another node receives its publisher.
    relay_in: Option<u64>,
}

/// A stream this loop receives from another node (see `Command::RelayIn`).
struct RelayIn {
    stream: StreamKey,
    /// The owner's media socket: relay datagrams come from there, feedback goes there.
    owner: SocketAddr,
    opener: Opener,
    sealer: Sealer,
}

/// The kinds asked for, audio first.
fn kinds(audio: bool, video: bool) -> Vec<RtpCodecKind> {
    [(audio, RtpCodecKind::Audio), (video, RtpCodecKind::Video)]
        .into_iter()
        .filter_map(|(on, kind)| on.then_some(kind))
        .collect()
}

impl Peer {
    /// The streams a subscriber's peer connection carries, each once.
    fn sink_streams(&self) -> Vec<StreamKey> {
        let mut streams: Vec<StreamKey> = self.sinks.iter().map(|s| s.stream).collect();
        streams.sort_unstable();
        streams.dedup();
        streams
    }
}

/// The id the answer `sdp` gives the audio-level header extension in its audio section.
fn audio_level_extension(sdp: &str) -> Option<u8> {
    let mut audio = false;
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            audio = m.starts_with("audio");
        } else if audio
            && let Some(map) = line.strip_prefix("a=extmap:")
            && map.trim_end().ends_with(super::codec::AUDIO_LEVEL_URI)
        {
            let id = map.split([' ', '/']).next()?;
            return id.parse().ok();
        }
    }
    None
}

/// Voice activity of a stream's audio from the levels its publisher puts in each packet:
/// averaged over `every` packets, talking while the average is under `threshold` dBov
/// (0 is loudest, 127 silence). Integer sums per packet; the watch changes only when the
/// state does.
struct Levels {
    every: u32,
    threshold: u8,
    sum: u64,
    count: u32,
    state: watch::Sender<Speech>,
}

impl Levels {
    /// One packet's level.
    fn add(&mut self, level: u8) {
        self.sum += u64::from(level & 0x7f);
        self.count += 1;
        if self.count < self.every {
            return;
        }
        #[allow(clippy::cast_precision_loss)] // at most 127 * u32::MAX / count
        let average = self.sum as f32 / self.count as f32;
        let talking = average < f32::from(self.threshold);
        self.state.send_if_modified(|s| {
            let changed = s.talking != talking;
            if changed {
                *s = Speech { talking, average };
            }
            changed
        });
        self.sum = 0;
        self.count = 0;
    }
}

/// The sending half: the UDP socket and the ICE-TCP connections.
struct Net {
    /// The shared UDP socket; `None` in the loop's unit tests, which read `sent` instead.
    udp: Option<std::net::UdpSocket>,
    tcp: HashMap<SocketAddr, mpsc::Sender<Bytes>>,
    /// What the loop sent with no socket (its unit tests feed it to their peers).
    sent: Vec<(SocketAddr, BytesMut)>,
}

impl Net {
    /// Sends one datagram of the loop's own (a relay's) on the UDP socket.
    fn send_raw(&mut self, to: SocketAddr, datagram: &[u8]) {
        match &self.udp {
            Some(udp) => {
                let _ = udp.send_to(datagram, to);
            }
            None => self.sent.push((to, BytesMut::from(datagram))),
        }
    }

    /// Sends everything `pc` has to send.
    fn flush(&mut self, pc: &mut RTCPeerConnection) {
        self.flush_checks(pc, |_| {});
    }

    /// Sends everything `pc` has to send, telling `checked` where a STUN check went (the
    /// answer will come back from there).
    fn flush_checks(&mut self, pc: &mut RTCPeerConnection, mut checked: impl FnMut(SocketAddr)) {
        while let Some(out) = pc.poll_write() {
            match out.transport.transport_protocol {
                TransportProtocol::UDP => {
                    if is_binding_request(&out.message) {
                        checked(out.transport.peer_addr);
                    }
                    match &self.udp {
                        // A full socket buffer loses the datagram, as the network would.
                        Some(udp) => {
                            let _ = udp.send_to(&out.message, out.transport.peer_addr);
                        }
                        None => self.sent.push((out.transport.peer_addr, out.message)),
                    }
                }
                _ => {
                    if let Some(conn) = self.tcp.get(&out.transport.peer_addr) {
                        let _ = conn.try_send(out.message.freeze());
                    }
                }
            }
        }
    }
}

struct Engine {
    net: Net,
    /// The DTLS certificate every peer connection presents (made once: as Janus does, one
    /// identity per server run instead of a key generation per peer connection).
    certificate: rtc::peer_connection::certificate::RTCCertificate,
    local_udp: SocketAddr,
    local_tcp: Option<SocketAddr>,
    peers: HashMap<PeerKey, Peer>,
    by_address: HashMap<(SocketAddr, bool), PeerKey>,
    by_ufrag: HashMap<Vec<u8>, PeerKey>,
    streams: HashMap<StreamKey, Stream>,
    next_peer: u64,
    next_wake: Instant,
    next_refresh: Instant,
    unclaimed: u64,
    /// Wall-clock time against the monotonic clock, taken once (NTP time of sender reports).
    wall: rtc::shared::time::SystemInstant,
    next_reports: Instant,
    retransmitted: u64,
    sender_reports: u64,
    /// Totals for the metrics: plain integers of this task, read by `Command::Stats`.
    counts: super::MediaCounts,
    /// Latencies and receiver reports for the metrics (lock-free; observed per event, not
    /// per packet).
    histograms: super::MediaHistograms,
    /// Relays this loop sends streams on: relay id → the stream, the edge's media socket,
    /// and the opener of the feedback it sends back.
    relays_out: HashMap<u64, (StreamKey, SocketAddr, Opener)>,
    /// Streams this loop receives over relays, by relay id.
    relays_in: HashMap<u64, RelayIn>,
    /// Where relay datagrams are sealed and opened (one buffer: nothing allocated per packet).
    relay_buf: Box<[u8; MAX_DATAGRAM]>,
}

/// Starts the loop on the bound sockets; `local` is the announced UDP address (ICE-TCP, when
/// on, is announced on the same address).
pub(super) fn spawn(
    udp: std::net::UdpSocket,
    tcp: Option<std::net::TcpListener>,
    local: SocketAddr,
    commands: mpsc::UnboundedReceiver<Command>,
    histograms: super::MediaHistograms,
) -> std::io::Result<()> {
    let send = udp.try_clone()?;
    let recv = tokio::net::UdpSocket::from_std(udp)?;
    let (tcp_tx, tcp_rx) = mpsc::channel(TCP_EVENTS);
    let local_tcp = match tcp {
        Some(listener) => {
            tokio::spawn(net::accept(
                tokio::net::TcpListener::from_std(listener)?,
                tcp_tx,
            ));
            Some(local)
        }
        None => None,
    };
    let net = Net {
        udp: Some(send),
        tcp: HashMap::new(),
        sent: Vec::new(),
    };
    let mut engine = Engine::new(net, local, local_tcp, Instant::now())?;
    engine.histograms = histograms;
    tokio::spawn(engine.run(recv, tcp_rx, commands));
    Ok(())
}

/// Whether a datagram is a STUN binding request.
fn is_binding_request(datagram: &[u8]) -> bool {
    datagram.len() >= 20
        && datagram[0] == 0
        && datagram[1] == 1
        && datagram[4..8] == [0x21, 0x12, 0xa4, 0x42]
}

/// The payload type `sender` negotiated (its first codec).
fn negotiated_payload_type(pc: &mut RTCPeerConnection, sender: RTCRtpSenderId) -> Option<u8> {
    pc.rtp_sender(sender).and_then(|mut s| {
        s.get_parameters()
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)
    })
}

/// The output index of a kind.
fn output_of(kind: RtpCodecKind) -> usize {
    if kind == RtpCodecKind::Audio {
        AUDIO
    } else {
        VIDEO
    }
}

fn sdp_error(e: impl std::fmt::Display) -> MediaError {
    MediaError::Sdp(e.to_string())
}

fn stack(e: impl std::fmt::Display) -> MediaError {
    MediaError::Stack(e.to_string())
}

/// Random characters allowed in ICE credentials.
fn ice_chars(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

impl Engine {
    /// A loop with no peer connection yet, sending through `net`; `local_udp` is the
    /// announced address of the UDP socket, `local_tcp` that of ICE-TCP when on.
    fn new(
        net: Net,
        local_udp: SocketAddr,
        local_tcp: Option<SocketAddr>,
        now: Instant,
    ) -> std::io::Result<Self> {
        let certificate = {
            let provider = rtc::crypto::default_provider().map_err(std::io::Error::other)?;
            rtc::peer_connection::certificate::RTCCertificate::generate(
                provider.crypto(),
                rtc::crypto::SignatureScheme::EcdsaP256Sha256,
                rtc::peer_connection::certificate::CertificateParams::new(vec![
                    "camerata".to_owned(),
                ])
                .map_err(std::io::Error::other)?,
            )
            .map_err(std::io::Error::other)?
        };
        Ok(Engine {
            certificate,
            net,
            local_udp,
            local_tcp,
            peers: HashMap::new(),
            by_address: HashMap::new(),
            by_ufrag: HashMap::new(),
            streams: HashMap::new(),
            next_peer: 1,
            next_wake: now + REFRESH,
            next_refresh: now + REFRESH,
            unclaimed: 0,
            wall: rtc::shared::time::SystemInstant::now(now),
            next_reports: now + REPORT_INTERVAL,
            retransmitted: 0,
            sender_reports: 0,
            counts: super::MediaCounts::default(),
            histograms: super::MediaHistograms::default(),
            relays_out: HashMap::new(),
            relays_in: HashMap::new(),
            relay_buf: Box::new([0u8; MAX_DATAGRAM]),
        })
    }

    async fn run(
        mut self,
        udp: tokio::net::UdpSocket,
        mut tcp: mpsc::Receiver<TcpEvent>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let mut buf = vec![0u8; 65_536];
        let timer = tokio::time::sleep_until(self.next_wake.into());
        tokio::pin!(timer);
        loop {
            let wake = tokio::time::Instant::from_std(self.next_wake);
            if timer.deadline() != wake {
                timer.as_mut().reset(wake);
            }
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(command) => self.command(command, Instant::now()),
                    None => break,
                },
                got = udp.recv_from(&mut buf) => {
                    let now = Instant::now();
                    if let Ok((n, from)) = got {
                        self.datagram(from, false, &buf[..n], now);
                    }
                    for _ in 1..BATCH {
                        match udp.try_recv_from(&mut buf) {
                            Ok((n, from)) => self.datagram(from, false, &buf[..n], now),
                            Err(_) => break,
                        }
                    }
                }
                Some(event) = tcp.recv() => self.tcp(event),
                () = &mut timer => self.timers(Instant::now()),
            }
        }
        for (_, mut peer) in self.peers.drain() {
            let _ = peer.pc.close();
            self.net.flush(&mut peer.pc);
        }
    }

    fn command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Publish {
                stream,
                offer,
                video,
                candidates_in_sdp,
                reply,
            } => {
                let made = self.create(stream, offer, video, true, candidates_in_sdp, now);
                if let Ok((id, _)) = &made {
                    let s = self.streams.entry(stream).or_default();
                    s.publisher = Some(*id);
                    s.video = Some(video);
                    for fanout in &mut s.fanouts {
                        // The new source's packets continue the old numbering.
                        fanout.source = None;
                        fanout.continuity.rebase = true;
                        fanout.last_in = None;
                    }
                }
                self.settle(made, reply, now);
            }
            Command::Subscribe {
                stream,
                offer,
                video,
                candidates_in_sdp,
                reply,
            } => {
                let made = if self.streams.contains_key(&stream) {
                    self.create(stream, offer, video, false, candidates_in_sdp, now)
                } else {
                    Err(MediaError::Gone("the stream is no longer published"))
                };
                self.settle(made, reply, now);
            }
            Command::Offer {
                stream,
                audio,
                video_track,
                video,
                candidates_in_sdp,
                reply,
            } => {
                let made = if self.streams.contains_key(&stream) {
                    self.offer(
                        stream,
                        kinds(audio, video_track),
                        video,
                        candidates_in_sdp,
                        now,
                    )
                } else {
                    Err(MediaError::Gone("the stream is no longer published"))
                };
                self.settle(made, reply, now);
            }
            Command::Answer(id, sdp, reply) => {
                let _ = reply.send(self.answered(id, sdp, now));
                self.service(id, now);
            }
            Command::Candidate(id, init, reply) => {
                let result = match self.peers.get_mut(&id) {
                    Some(peer) => peer.pc.add_remote_candidate(init).map_err(sdp_error),
                    None => Err(MediaError::Gone("the endpoint is closed")),
                };
                let _ = reply.send(result);
                self.service(id, now);
            }
            Command::ClosePeer(id) => self.close(id),
            Command::Sending {
                peer,
                stream,
                video,
                on,
            } => self.sending(peer, stream, video, on, now),
            Command::Extend {
                peer,
                stream,
                audio,
                video_track,
                video,
                reply,
            } => {
                let kinds = kinds(audio, video_track);
                let _ = reply.send(self.extend(peer, stream, kinds, video, now));
                self.service(peer, now);
            }
            Command::Switch {
                peer,
                mid,
                stream,
                reply,
            } => {
                let _ = reply.send(self.switch(peer, &mid, stream, now));
            }
            Command::Shrink {
                peer,
                stream,
                reply,
            } => {
                let _ = reply.send(self.shrink(peer, stream, now));
                self.service(peer, now);
            }
            Command::Keyframe(stream) => self.request_keyframe(stream, now),
            Command::Cap { stream, bps } => {
                if let Some(s) = self.streams.get_mut(&stream) {
                    s.cap_bps = bps;
                    self.send_cap(stream, now);
                }
            }
            Command::Speech {
                stream,
                every,
                threshold,
                reply,
            } => {
                let watching = self.streams.get_mut(&stream).map(|s| {
                    let (state, watching) = watch::channel(Speech::default());
                    s.speech = Some(Levels {
                        every: every.max(1),
                        threshold,
                        sum: 0,
                        count: 0,
                        state,
                    });
                    watching
                });
                let _ = reply.send(watching);
            }
            Command::Mute {
                stream,
                video,
                muted,
            } => {
                let index = if video { VIDEO } else { AUDIO };
                if let Some(s) = self.streams.get_mut(&stream) {
                    let fanout = &mut s.fanouts[index];
                    if fanout.muted != muted {
                        fanout.muted = muted;
                        if !muted {
                            // Subscribers see one numbering across the pause, and a picture
                            // at once.
                            fanout.continuity.rebase = true;
                            if video {
                                self.request_keyframe(stream, now);
                            }
                        }
                    }
                }
            }
            Command::DropStream(key) => {
                if let Some(stream) = self.streams.remove(&key) {
                    if let Some(publisher) = stream.publisher {
                        self.close(publisher);
                    }
                    for (relay, _, _) in &stream.relays {
                        self.relays_out.remove(relay);
                    }
                    if let Some(relay) = stream.relay_in {
                        self.relays_in.remove(&relay);
                    }
                    // A subscriber's peer connection ends with the stream, unless it carries
                    // another stream still published (its dead sections are pruned later).
                    for output in stream.fanouts.iter().flat_map(|f| &f.outputs) {
                        let carries_more = self.peers.get(&output.peer).is_some_and(|p| {
                            p.sink_streams()
                                .iter()
                                .any(|s| *s != key && self.streams.contains_key(s))
                        });
                        if !carries_more {
                            self.close(output.peer);
                        } else if let Some(peer) = self.peers.get(&output.peer) {
                            peer.status.send_modify(|s| s.ended += 1);
                        }
                    }
                }
            }
            Command::Tap {
                stream,
                id,
                packets,
                reply,
            } => {
                let found = match self.streams.get_mut(&stream) {
                    Some(s) => {
                        s.taps.push((id, packets));
                        true
                    }
                    None => false,
                };
                let _ = reply.send(found);
                if found {
                    // A recording starts at a keyframe.
                    self.request_keyframe(stream, now);
                }
            }
            Command::DropTap(id) => {
                for s in self.streams.values_mut() {
                    s.taps.retain(|(tap, _)| *tap != id);
                }
            }
            Command::RelayOut {
                stream,
                relay,
                to,
                keys,
                reply,
            } => {
                let (sealer, opener) = keys.owner(relay);
                let found = match self.streams.get_mut(&stream) {
                    Some(s) => {
                        s.relays.retain(|(r, _, _)| *r != relay);
                        s.relays.push((relay, to, sealer));
                        self.relays_out.insert(relay, (stream, to, opener));
                        true
                    }
                    None => false,
                };
                let _ = reply.send(found);
                if found {
                    // The edge's subscribers start at a keyframe.
                    self.request_keyframe(stream, now);
                }
            }
            Command::RelayIn {
                stream,
                relay,
                from,
                keys,
                video,
            } => {
                let (opener, sealer) = keys.edge(relay);
                let s = self.streams.entry(stream).or_default();
                s.video = Some(video);
                s.relay_in = Some(relay);
                self.relays_in.insert(
                    relay,
                    RelayIn {
                        stream,
                        owner: from,
                        opener,
                        sealer,
                    },
                );
            }
            Command::DropRelay(relay) => {
                if let Some((stream, _, _)) = self.relays_out.remove(&relay)
                    && let Some(s) = self.streams.get_mut(&stream)
                {
                    s.relays.retain(|(r, _, _)| *r != relay);
                }
            }
            Command::Stats(reply) => {
                let _ = reply.send(MediaStats {
                    peers: self.peers.len(),
                    streams: self.streams.len(),
                    addresses: self.by_address.len(),
                    tcp_connections: self.net.tcp.len(),
                    unclaimed_datagrams: self.unclaimed,
                    retransmitted: self.retransmitted,
                    sender_reports: self.sender_reports,
                    counts: self.counts,
                    peers_by_state: self.peers_by_state(),
                });
            }
        }
    }

    /// Peer connections by state (`connected`, `failed`, `connecting`) and transport (`tcp`
    /// when a TCP address is claimed, else `udp`), for the metrics.
    fn peers_by_state(&self) -> Vec<(&'static str, &'static str, usize)> {
        let mut counts: Vec<(&'static str, &'static str, usize)> = Vec::new();
        for peer in self.peers.values() {
            let status = peer.status.borrow();
            let state = if status.failed {
                "failed"
            } else if status.connected {
                "connected"
            } else {
                "connecting"
            };
            let transport = if peer.addresses.iter().any(|(_, tcp)| *tcp) {
                "tcp"
            } else {
                "udp"
            };
            match counts
                .iter_mut()
                .find(|(s, t, _)| *s == state && *t == transport)
            {
                Some((_, _, n)) => *n += 1,
                None => counts.push((state, transport, 1)),
            }
        }
        counts
    }

    /// Hands a new peer connection to whoever asked; closes it if they are gone.
    fn settle(
        &mut self,
        made: Result<(PeerKey, Description), MediaError>,
        reply: oneshot::Sender<Result<(PeerKey, Description), MediaError>>,
        now: Instant,
    ) {
        let id = made.as_ref().ok().map(|(id, _)| *id);
        if reply.send(made).is_err() {
            if let Some(id) = id {
                self.close(id);
            }
        } else if let Some(id) = id {
            // A subscriber's keyframe is asked for when its peer connection comes up.
            self.service(id, now);
        }
    }

    /// A new peer connection for a publisher (receiving) or a subscriber (sending), with
    /// its ICE username fragment.
    fn new_pc(
        &self,
        video: VideoChoice,
        publisher: bool,
        now: Instant,
    ) -> Result<(RTCPeerConnection, String), MediaError> {
        let mut engine = media_engine(video)?;
        let registry = server_interceptors(&mut engine, publisher)?;
        let ufrag = ice_chars(16);
        let settings = SettingEngineBuilder::new()
            .with_lite(false)
            .with_ice_credentials(ufrag.clone(), ice_chars(32))
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_CHECKS_PER_PAIR))
            .build();
        let pc = RTCPeerConnectionBuilder::new()
            .with_configuration(
                RTCConfigurationBuilder::new()
                    .with_certificates(vec![self.certificate.clone()])
                    .build(),
            )
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .build(now)
            .map_err(stack)?;
        Ok((pc, ufrag))
    }

    /// One sending track per kind, each with a fresh SSRC.
    fn add_sinks(
        pc: &mut RTCPeerConnection,
        kinds: Vec<RtpCodecKind>,
        video: VideoChoice,
        stream: StreamKey,
    ) -> Result<Vec<Sink>, MediaError> {
        let mut sinks = Vec::new();
        for kind in kinds {
            let ssrc: u32 = rand::random();
            let label = format!("camerata-{ssrc}");
            let track = MediaStreamTrack::new(
                label.clone(),
                format!("{label}-{kind}"),
                label,
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: super::codec::codec(kind, video),
                    ..Default::default()
                }],
            );
            let track_id = track.track_id().clone();
            let sender = pc.add_track(track).map_err(stack)?;
            sinks.push(Sink {
                stream,
                track: track_id,
                index: output_of(kind),
                sender,
                ssrc,
            });
        }
        Ok(sinks)
    }

    /// Adds the server's host candidates (UDP, and ICE-TCP when on) to `pc`; returns them as
    /// the browser takes them, for media section `mid`.
    fn add_host_candidates(
        &self,
        pc: &mut RTCPeerConnection,
        mid: &str,
    ) -> Result<Vec<LocalCandidate>, MediaError> {
        let mut candidates = Vec::new();
        let mut locals = vec![(self.local_udp, "udp")];
        if let Some(tcp) = self.local_tcp {
            locals.push((tcp, "tcp"));
        }
        for (addr, network) in locals {
            let host = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: network.to_owned(),
                    address: addr.ip().to_string(),
                    port: addr.port(),
                    component: 1,
                    ..Default::default()
                },
                tcp_type: if network == "tcp" {
                    rtc::ice::tcp_type::TcpType::Passive
                } else {
                    rtc::ice::tcp_type::TcpType::Unspecified
                },
            }
            .new_candidate_host()
            .map_err(stack)?;
            let init = RTCIceCandidate::from(&host).to_json().map_err(stack)?;
            pc.add_local_candidate(init.clone()).map_err(stack)?;
            let candidate = if init.candidate.starts_with("candidate:") {
                init.candidate
            } else {
                format!("candidate:{}", init.candidate)
            };
            candidates.push(LocalCandidate {
                candidate,
                sdp_mid: mid.to_owned(),
                sdp_mline_index: 0,
            });
        }
        Ok(candidates)
    }

    /// The local description, without its candidates unless `with_candidates`.
    fn local_sdp(pc: &RTCPeerConnection, with_candidates: bool) -> Result<String, MediaError> {
        let sdp = pc
            .local_description()
            .ok_or_else(|| MediaError::Sdp("no local description".into()))?
            .sdp;
        if with_candidates {
            return Ok(sdp);
        }
        Ok(sdp
            .split_inclusive('\n')
            .filter(|l| !l.starts_with("a=candidate:") && !l.starts_with("a=end-of-candidates"))
            .collect())
    }

    /// Adds `sinks`, negotiated on peer connection `id`, to the fan-out of `stream`.
    fn join_fanout(
        &mut self,
        id: PeerKey,
        pc: &mut RTCPeerConnection,
        sinks: &[Sink],
    ) -> Result<(), MediaError> {
        let mut outputs = Vec::new();
        for sink in sinks {
            let payload_type = negotiated_payload_type(pc, sink.sender).ok_or_else(|| {
                MediaError::Sdp(format!("no codec negotiated for {}", sink.track))
            })?;
            outputs.push((
                sink.stream,
                sink.index,
                Output {
                    peer: id,
                    sender: sink.sender,
                    ssrc: sink.ssrc,
                    payload_type,
                    packets: 0,
                    octets: 0,
                    paused: Paused::No,
                    skipped: 0,
                    last_seq: None,
                    resumed_at: None,
                },
            ));
        }
        for (stream, index, output) in outputs {
            if let Some(s) = self.streams.get_mut(&stream) {
                s.fanouts[index].outputs.push(output);
            }
        }
        Ok(())
    }

    /// Keeps a new peer connection in the loop under a fresh id.
    fn register(
        &mut self,
        pc: RTCPeerConnection,
        ufrag: String,
        stream: StreamKey,
        sinks: &[Sink],
        unanswered: Vec<Sink>,
    ) -> (PeerKey, watch::Receiver<PeerStatus>) {
        let (status, watching) = watch::channel(PeerStatus::default());
        let id = PeerKey(self.next_peer);
        self.next_peer += 1;
        self.by_ufrag.insert(ufrag.clone().into_bytes(), id);
        self.peers.insert(
            id,
            Peer {
                pc,
                ufrag: ufrag.into_bytes(),
                stream,
                addresses: Vec::new(),
                deadline: None,
                sources: Vec::new(),
                sinks: sinks.to_vec(),
                awaiting_answer: !unanswered.is_empty(),
                unanswered,
                kick: None,
                status,
                audio_level: None,
                nacked: 0,
            },
        );
        (id, watching)
    }

    /// Makes a peer connection answering `offer`: a publisher's receives, a subscriber's
    /// sends one track per media section of the offer. The server's candidates go in the
    /// answer when `candidates_in_sdp`, else only in the returned list (to trickle).
    fn create(
        &mut self,
        stream: StreamKey,
        offer: String,
        video: VideoChoice,
        publisher: bool,
        candidates_in_sdp: bool,
        now: Instant,
    ) -> Result<(PeerKey, Description), MediaError> {
        let (mut pc, ufrag) = self.new_pc(video, publisher, now)?;
        let kinds: Vec<RtpCodecKind> = offer
            .lines()
            .filter_map(|l| {
                if l.starts_with("m=audio") {
                    Some(RtpCodecKind::Audio)
                } else if l.starts_with("m=video") {
                    Some(RtpCodecKind::Video)
                } else {
                    None
                }
            })
            .collect();
        let mid = offer
            .lines()
            .find_map(|l| l.strip_prefix("a=mid:"))
            .unwrap_or("0")
            .trim()
            .to_owned();
        let description = RTCSessionDescription::offer(offer).map_err(sdp_error)?;
        pc.set_remote_description(now, description)
            .map_err(sdp_error)?;
        let sinks = if publisher {
            Vec::new()
        } else {
            Self::add_sinks(&mut pc, kinds, video, stream)?
        };
        let candidates = self.add_host_candidates(&mut pc, &mid)?;
        let answer = pc.create_answer(None).map_err(sdp_error)?;
        pc.set_local_description(now, answer).map_err(sdp_error)?;
        let sdp = Self::local_sdp(&pc, candidates_in_sdp)?;
        let id = PeerKey(self.next_peer);
        self.join_fanout(id, &mut pc, &sinks)?;
        let (registered, status) = self.register(pc, ufrag, stream, &sinks, Vec::new());
        debug_assert_eq!(id, registered);
        if publisher && let Some(peer) = self.peers.get_mut(&id) {
            peer.audio_level = audio_level_extension(&sdp);
        }
        Ok((
            id,
            Description {
                sdp,
                candidates,
                status,
                tracks: Vec::new(),
            },
        ))
    }

    /// The media sections that carry `sinks` on `pc`, by mid.
    fn sent_tracks(pc: &mut RTCPeerConnection, sinks: &[Sink]) -> Vec<super::SentTrack> {
        sinks
            .iter()
            .filter_map(|s| {
                let id = rtc::rtp_transceiver::RTCRtpTransceiverId::from(s.sender);
                let mid = pc.rtp_transceiver(id)?.mid().clone()?;
                Some(super::SentTrack {
                    mid,
                    video: s.index == VIDEO,
                })
            })
            .collect()
    }

    /// Makes a subscriber's peer connection offering `stream`'s `kinds`; its tracks join the
    /// fan-out when the answer comes (`answered`).
    fn offer(
        &mut self,
        stream: StreamKey,
        kinds: Vec<RtpCodecKind>,
        video: VideoChoice,
        candidates_in_sdp: bool,
        now: Instant,
    ) -> Result<(PeerKey, Description), MediaError> {
        if kinds.is_empty() {
            return Err(MediaError::Sdp(
                "nothing to offer: no audio and no video".into(),
            ));
        }
        let (mut pc, ufrag) = self.new_pc(video, false, now)?;
        let sinks = Self::add_sinks(&mut pc, kinds, video, stream)?;
        let offer = pc.create_offer(None).map_err(sdp_error)?;
        pc.set_local_description(now, offer).map_err(sdp_error)?;
        let mid = pc
            .local_description()
            .and_then(|d| {
                d.sdp
                    .lines()
                    .find_map(|l| l.strip_prefix("a=mid:").map(|m| m.trim().to_owned()))
            })
            .unwrap_or_else(|| "0".to_owned());
        let candidates = self.add_host_candidates(&mut pc, &mid)?;
        let sdp = Self::local_sdp(&pc, candidates_in_sdp)?;
        let tracks = Self::sent_tracks(&mut pc, &sinks);
        let (id, status) = self.register(pc, ufrag, stream, &sinks, sinks.clone());
        Ok((
            id,
            Description {
                sdp,
                candidates,
                status,
                tracks,
            },
        ))
    }

    /// The client's answer to the server's offer on peer connection `id`: its tracks join
    /// the stream's fan-out.
    fn answered(&mut self, id: PeerKey, sdp: String, now: Instant) -> Result<(), MediaError> {
        let peer = self
            .peers
            .get_mut(&id)
            .ok_or(MediaError::Gone("the endpoint is closed"))?;
        if !peer.awaiting_answer {
            return Err(MediaError::Sdp(
                "this peer connection expects no answer".into(),
            ));
        }
        let description = RTCSessionDescription::answer(sdp).map_err(sdp_error)?;
        peer.pc
            .set_remote_description(now, description)
            .map_err(sdp_error)?;
        peer.awaiting_answer = false;
        let sinks = std::mem::take(&mut peer.unanswered);
        // The peer connection is taken out while its outputs are added, then put back.
        let mut peer = self.peers.remove(&id).expect("found just above");
        let joined = self.join_fanout(id, &mut peer.pc, &sinks);
        self.peers.insert(id, peer);
        joined
    }

    /// Closes a peer connection and forgets it everywhere (idempotent).
    fn close(&mut self, id: PeerKey) {
        let Some(mut peer) = self.peers.remove(&id) else {
            return;
        };
        let _ = peer.pc.close();
        self.net.flush(&mut peer.pc);
        for address in &peer.addresses {
            self.by_address.remove(address);
        }
        self.by_ufrag.remove(&peer.ufrag);
        let mut streams = peer.sink_streams();
        streams.push(peer.stream);
        for key in streams {
            let Some(stream) = self.streams.get_mut(&key) else {
                continue;
            };
            if stream.publisher == Some(id) {
                stream.publisher = None;
                for fanout in &mut stream.fanouts {
                    fanout.source = None;
                }
            }
            for fanout in &mut stream.fanouts {
                fanout.outputs.retain(|o| o.peer != id);
            }
        }
    }

    /// One datagram from `from` (`tcp`: a frame of an ICE-TCP connection).
    fn datagram(&mut self, from: SocketAddr, tcp: bool, data: &[u8], now: Instant) {
        if !tcp && data.first() == Some(&relay::MAGIC[0]) {
            self.relay_datagram(from, data, now);
            return;
        }
        // A STUN check names its peer connection by ICE username: that decides, and the
        // address is (re)claimed for it. Anything else goes where its address was claimed.
        let named = stun_local_ufrag(data).and_then(|ufrag| self.by_ufrag.get(ufrag).copied());
        let id = match named {
            Some(id) => {
                if self.by_address.get(&(from, tcp)) != Some(&id) && !self.claim(id, from, tcp) {
                    self.unclaimed += 1;
                    return;
                }
                id
            }
            None => match self.by_address.get(&(from, tcp)) {
                Some(id) => *id,
                None => {
                    self.unclaimed += 1;
                    return;
                }
            },
        };
        let local = match (tcp, self.local_tcp) {
            (true, Some(local)) => local,
            _ => self.local_udp,
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let _ = peer.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: local,
                peer_addr: from,
                ecn: None,
                transport_protocol: if tcp {
                    TransportProtocol::TCP
                } else {
                    TransportProtocol::UDP
                },
            },
            message: BytesMut::from(data),
        });
        self.service(id, now);
    }

    /// A datagram of a relay: media from an owner node (fanned out to this loop's
    /// subscribers of the relayed stream), or feedback from an edge node (a keyframe request
    /// for the publisher; NACKs answered from the stream's history over the relay).
    fn relay_datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        let Some((id, _)) = relay::header(data).filter(|_| data.len() <= MAX_DATAGRAM) else {
            self.unclaimed += 1;
            return;
        };
        let len = data.len();
        self.relay_buf[..len].copy_from_slice(data);
        if let Some(r) = self.relays_in.get_mut(&id) {
            if r.owner != from {
                self.unclaimed += 1;
                return;
            }
            let Some((kind, body)) = r.opener.open(&mut self.relay_buf[..], len) else {
                self.unclaimed += 1;
                return;
            };
            let index = match kind {
                Kind::Audio => AUDIO,
                Kind::Video => VIDEO,
                Kind::Keyframe | Kind::Nack => return,
            };
            use rtc::shared::marshal::Unmarshal;
            let Ok(packet) = rtc::rtp::Packet::unmarshal(&mut &body[..]) else {
                return;
            };
            let stream = r.stream;
            self.fan_out(stream, index, packet, None, now);
            return;
        }
        let Some((stream, edge, opener)) = self.relays_out.get_mut(&id) else {
            self.unclaimed += 1;
            return;
        };
        if *edge != from {
            self.unclaimed += 1;
            return;
        }
        let stream = *stream;
        let Some((kind, body)) = opener.open(&mut self.relay_buf[..], len) else {
            self.unclaimed += 1;
            return;
        };
        match kind {
            Kind::Keyframe => {
                self.counts.keyframe_requests_received += 1;
                self.request_keyframe(stream, now);
            }
            Kind::Nack => {
                let mut seqs = [0u16; 64];
                let n = body.len().min(128) / 2;
                for (i, pair) in body.chunks_exact(2).take(n).enumerate() {
                    seqs[i] = u16::from_be_bytes([pair[0], pair[1]]);
                }
                self.resend(stream, id, &seqs[..n]);
            }
            Kind::Audio | Kind::Video => {}
        }
    }

    /// Sends relay `relay` of `stream` again the video packets `seqs` its edge lacks, from
    /// the stream's history.
    fn resend(&mut self, stream: StreamKey, relay: u64, seqs: &[u16]) {
        use rtc::shared::marshal::Marshal;
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        let Some((_, to, sealer)) = s.relays.iter_mut().find(|(r, _, _)| *r == relay) else {
            return;
        };
        for seq in seqs {
            self.counts.nacks_received += 1;
            let Some(kept) = s.fanouts[VIDEO].history.get(*seq) else {
                continue;
            };
            if let Some(n) = sealer.seal(Kind::Video, &mut self.relay_buf, |out| {
                kept.marshal_to(out).ok()
            }) {
                self.net.send_raw(*to, &self.relay_buf[..n]);
                self.retransmitted += 1;
            }
        }
    }

    /// Routes `from` to peer connection `id` (taking it from another one if need be); false
    /// when `id` already has as many addresses as it may.
    fn claim(&mut self, id: PeerKey, from: SocketAddr, tcp: bool) -> bool {
        if self
            .peers
            .get(&id)
            .is_none_or(|p| p.addresses.len() >= MAX_ADDRESSES)
        {
            return false;
        }
        if let Some(old) = self.by_address.insert((from, tcp), id)
            && let Some(p) = self.peers.get_mut(&old)
        {
            p.addresses.retain(|a| *a != (from, tcp));
        }
        if let Some(p) = self.peers.get_mut(&id) {
            p.addresses.push((from, tcp));
        }
        true
    }

    fn tcp(&mut self, event: TcpEvent) {
        match event {
            TcpEvent::Opened(addr, out) => {
                self.net.tcp.insert(addr, out);
            }
            TcpEvent::Frame(addr, frame) => self.datagram(addr, true, &frame, Instant::now()),
            TcpEvent::Closed(addr) => {
                self.net.tcp.remove(&addr);
                if let Some(id) = self.by_address.remove(&(addr, true))
                    && let Some(peer) = self.peers.get_mut(&id)
                {
                    peer.addresses.retain(|a| *a != (addr, true));
                }
            }
        }
    }

    /// Takes everything a peer connection has for us: events, media, datagrams, its timer.
    fn service(&mut self, id: PeerKey, now: Instant) {
        let mut ice_connected = false;
        while let Some(event) = self.peers.get_mut(&id).and_then(|p| p.pc.poll_event()) {
            match event {
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    self.track_opened(id, init.track_id, init.receiver_id, now);
                }
                RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                    rtc::peer_connection::state::RTCIceConnectionState::Connected,
                ) => ice_connected = true,
                // A subscriber can use a keyframe only once its media is flowing: ask again
                // then (the request made when it subscribed may have been answered before).
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                    rtc::peer_connection::state::RTCPeerConnectionState::Failed,
                ) => {
                    if let Some(peer) = self.peers.get(&id) {
                        peer.status
                            .send_if_modified(|s| !std::mem::replace(&mut s.failed, true));
                    }
                }
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                    rtc::peer_connection::state::RTCPeerConnectionState::Connected,
                ) => {
                    if let Some(peer) = self.peers.get(&id) {
                        peer.status
                            .send_if_modified(|s| !std::mem::replace(&mut s.connected, true));
                    }
                    let streams: Vec<StreamKey> = self
                        .peers
                        .get(&id)
                        .map(|p| p.sink_streams())
                        .unwrap_or_default();
                    for stream in streams {
                        self.request_keyframe(stream, now);
                    }
                }
                _ => {}
            }
        }
        // The DTLS handshake starts (the server answers, so it is the DTLS client) once ICE
        // has selected a pair, but `rtc` hands out its first flight only from
        // `handle_timeout`: serve that `DTLS_START` later instead of at the next ICE timer
        // (up to `ICE_CHECK_INTERVAL` later, most of the set-up time on a fast path).
        if ice_connected && let Some(peer) = self.peers.get_mut(&id) {
            peer.kick = Some(now + DTLS_START);
        }
        while let Some(message) = self.peers.get_mut(&id).and_then(|p| p.pc.poll_read()) {
            match message.message {
                RTCMessage::RtpPacket(track, packet) => self.forward(id, &track, packet, now),
                RTCMessage::RtcpPacket(track, packets) => {
                    self.feedback(id, &track, &packets, now);
                }
                _ => {}
            }
        }
        let mut checked = Vec::new();
        if let Some(peer) = self.peers.get_mut(&id) {
            self.net.flush_checks(&mut peer.pc, |to| checked.push(to));
            peer.deadline = match (peer.pc.poll_timeout(), peer.kick) {
                (Some(d), Some(k)) => Some(d.min(k)),
                (d, k) => d.or(k),
            };
            if let Some(d) = peer.deadline
                && d < self.next_wake
            {
                self.next_wake = d;
            }
        }
        // The answer to a check we sent comes from where it went: route it here unless that
        // address already belongs to someone.
        for to in checked {
            if !self.by_address.contains_key(&(to, false)) {
                self.claim(id, to, false);
            }
        }
    }

    /// A publisher's track started: it becomes the source of its kind.
    fn track_opened(
        &mut self,
        id: PeerKey,
        track: MediaStreamTrackId,
        receiver: RTCRtpReceiverId,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(r) = peer.pc.rtp_receiver(receiver) else {
            return;
        };
        let index = output_of(r.track().kind());
        let ssrc = r.track().ssrcs().next().unwrap_or(0);
        peer.sources.push((track, index, receiver));
        peer.status.send_if_modified(|s| {
            let receiving = if index == VIDEO {
                &mut s.video
            } else {
                &mut s.audio
            };
            !std::mem::replace(receiving, true)
        });
        let stream = peer.stream;
        if let Some(s) = self.streams.get_mut(&stream)
            && s.publisher == Some(id)
        {
            s.fanouts[index].source = Some((receiver, ssrc));
            if index == VIDEO {
                self.request_keyframe(stream, now);
            }
        }
    }

    /// Sends a publisher's packet to every subscriber of its kind.
    fn forward(&mut self, id: PeerKey, track: &str, packet: rtc::rtp::Packet, now: Instant) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let Some(index) = peer
            .sources
            .iter()
            .find(|(t, _, _)| t == track)
            .map(|(_, i, _)| *i)
        else {
            return;
        };
        let Some(stream) = self.streams.get(&peer.stream) else {
            return;
        };
        if stream.publisher != Some(id) {
            return;
        }
        let (key, audio_level) = (peer.stream, peer.audio_level);
        self.fan_out(key, index, packet, audio_level, now);
    }

    /// One packet of kind `index` of `stream` (from its publisher, or from the relay it
    /// comes over) to its subscribers, recorders and relays.
    fn fan_out(
        &mut self,
        key: StreamKey,
        index: usize,
        mut packet: rtc::rtp::Packet,
        audio_level: Option<u8>,
        now: Instant,
    ) {
        let Some(stream) = self.streams.get_mut(&key) else {
            return;
        };
        let size = (packet.header.marshal_size() + packet.payload.len()) as u64;
        self.counts.packets_received += 1;
        self.counts.bytes_received += size;
        if index == AUDIO
            && let (Some(levels), Some(ext)) = (stream.speech.as_mut(), audio_level)
            && let Some(level) = packet
                .header
                .extensions
                .iter()
                .find(|e| e.id == ext)
                .and_then(|e| e.payload.first())
        {
            levels.add(*level);
        }
        let fanout = &mut stream.fanouts[index];
        let seq = packet.header.sequence_number;
        if let Some(last) = fanout.last_in {
            let gap = seq.wrapping_sub(last);
            if gap < 0x8000 {
                fanout.lost_in += u32::from(gap.saturating_sub(1));
                fanout.last_in = Some(seq);
            }
        } else {
            fanout.last_in = Some(seq);
        }
        if fanout.muted {
            return;
        }
        if (fanout.keyframe_wanted.is_some() || fanout.keyframe_asked_at.is_some())
            && index == VIDEO
            && stream
                .video
                .is_some_and(|codec| starts_keyframe(&packet.payload, codec))
        {
            fanout.keyframe_wanted = None;
            if let Some(asked) = fanout.keyframe_asked_at.take() {
                self.histograms
                    .keyframe_latency
                    .observe(now.duration_since(asked).as_secs_f64());
            }
        }
        fanout.continuity.apply(&mut packet.header);
        // Header extensions are negotiated per peer connection (their ids differ between
        // publisher and subscriber), so they are not forwarded; each subscriber's sender adds
        // its own. Without them, the clones below share the payload and allocate nothing.
        packet.header.extension = false;
        packet.header.extensions.clear();
        packet.header.extensions_padding = 0;
        fanout.clock.observe(packet.header.timestamp, now);
        if index == VIDEO {
            fanout.history.keep(&packet);
        }
        for (_, tap) in &stream.taps {
            let _ = tap.try_send(super::TapPacket {
                video: index == VIDEO,
                packet: packet.clone(),
                at: now,
            });
        }
        if !stream.relays.is_empty() {
            use rtc::shared::marshal::Marshal;
            let kind = if index == VIDEO {
                Kind::Video
            } else {
                Kind::Audio
            };
            for (_, to, sealer) in &mut stream.relays {
                if let Some(n) =
                    sealer.seal(kind, &mut self.relay_buf, |out| packet.marshal_to(out).ok())
                {
                    self.net.send_raw(*to, &self.relay_buf[..n]);
                }
            }
        }
        let seq = packet.header.sequence_number;
        for output in &mut fanout.outputs {
            match output.paused {
                Paused::Yes => continue,
                Paused::Resuming => {
                    // Continue this subscriber's numbering from the last packet it got.
                    if let Some(last) = output.last_seq {
                        let gap = seq.wrapping_sub(last).wrapping_sub(1);
                        output.skipped = output.skipped.wrapping_add(gap);
                    }
                    output.resumed_at = Some(seq.wrapping_sub(output.skipped));
                    output.paused = Paused::No;
                }
                Paused::No => {}
            }
            let Some(sub) = self.peers.get_mut(&output.peer) else {
                continue;
            };
            output.last_seq = Some(seq);
            if output.write(&mut sub.pc, &packet, now) {
                self.counts.packets_forwarded += 1;
                self.counts.bytes_forwarded += size;
            }
            self.net.flush(&mut sub.pc);
        }
    }

    /// RTCP feedback a subscriber sent about one of its tracks: keyframe requests go to the
    /// publisher, NACKs are answered from the stream's history.
    fn feedback(
        &mut self,
        id: PeerKey,
        track: &str,
        packets: &[Box<dyn rtc::rtcp::Packet>],
        now: Instant,
    ) {
        self.receiver_reports(packets, now);
        let Some((stream, index)) = self.peers.get(&id).and_then(|p| {
            p.sinks
                .iter()
                .find(|s| s.track == track)
                .map(|s| (s.stream, s.index))
        }) else {
            return;
        };
        if index == VIDEO && packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
            self.counts.keyframe_requests_received += 1;
            self.request_keyframe(stream, now);
        }
        let (Some(s), Some(peer)) = (self.streams.get_mut(&stream), self.peers.get_mut(&id)) else {
            return;
        };
        let relayed = s.relay_in;
        let fanout = &mut s.fanouts[index];
        let Some(output) = fanout.outputs.iter_mut().find(|o| o.peer == id) else {
            return;
        };
        // Packets a relayed stream's history lacks (lost between the nodes): the owner is
        // asked for them, and sends them again over the relay.
        let mut missing = [0u8; 128];
        let mut n_missing = 0;
        for nack in packets.iter().filter_map(|p| as_nack(p.as_ref())) {
            for seq in nack.nacks.iter().copied().flatten() {
                peer.nacked += 1;
                self.counts.nacks_received += 1;
                // The subscriber's numbering back to the stream's; only since its last
                // resume, whose offset is the one it has.
                if output
                    .resumed_at
                    .is_some_and(|r| seq.wrapping_sub(r) >= 0x8000)
                {
                    continue;
                }
                let wanted = seq.wrapping_add(output.skipped);
                match fanout.history.get(wanted) {
                    Some(kept) if output.write(&mut peer.pc, kept, now) => {
                        self.retransmitted += 1;
                    }
                    Some(_) => {}
                    None if relayed.is_some() && n_missing < missing.len() => {
                        missing[n_missing..n_missing + 2].copy_from_slice(&wanted.to_be_bytes());
                        n_missing += 2;
                    }
                    None => {}
                }
            }
        }
        self.net.flush(&mut peer.pc);
        if n_missing > 0
            && let Some(r) = relayed.and_then(|relay| self.relays_in.get_mut(&relay))
            && let Some(n) = r.sealer.seal(Kind::Nack, &mut self.relay_buf, |out| {
                out.get_mut(..n_missing)?
                    .copy_from_slice(&missing[..n_missing]);
                Some(n_missing)
            })
        {
            self.net.send_raw(r.owner, &self.relay_buf[..n]);
        }
    }

    /// The loss and round-trip time a subscriber's receiver reports give (about once a
    /// second per track): the fraction lost, and now − LSR − DLSR in NTP short format.
    fn receiver_reports(&mut self, packets: &[Box<dyn rtc::rtcp::Packet>], now: Instant) {
        use rtc::rtcp::receiver_report::ReceiverReport;
        let mut now_short = None;
        for rr in packets
            .iter()
            .filter_map(|p| p.as_any().downcast_ref::<ReceiverReport>())
        {
            for report in &rr.reports {
                self.histograms
                    .receiver_loss
                    .observe(f64::from(report.fraction_lost) / 256.0);
                if report.last_sender_report != 0 {
                    let now_short = *now_short
                        .get_or_insert_with(|| ((self.wall.ntp(now) >> 16) & 0xFFFF_FFFF) as u32);
                    let rtt = now_short
                        .wrapping_sub(report.last_sender_report)
                        .wrapping_sub(report.delay);
                    // A clock step or a forged report gives a huge value: ignored.
                    if rtt < 0x8000_0000 {
                        self.histograms
                            .receiver_rtt
                            .observe(f64::from(rtt) / 65_536.0);
                    }
                }
            }
        }
    }

    /// Sends every subscriber a sender report for each of its tracks that has carried media:
    /// the stream's RTP time now (from the newest frame forwarded) against wall-clock time,
    /// and what this subscriber was sent.
    fn sender_reports(&mut self, now: Instant) {
        let ntp_time = self.wall.ntp(now);
        for stream in self.streams.values() {
            for (fanout, rate) in stream.fanouts.iter().zip(CLOCK_RATES) {
                let Some(rtp_time) = fanout.clock.at(now, rate) else {
                    continue;
                };
                for output in fanout.outputs.iter().filter(|o| o.packets > 0) {
                    let Some(peer) = self.peers.get_mut(&output.peer) else {
                        continue;
                    };
                    let report = SenderReport {
                        ssrc: output.ssrc,
                        ntp_time,
                        rtp_time,
                        packet_count: output.packets,
                        octet_count: output.octets,
                        ..Default::default()
                    };
                    if let Some(mut sender) = peer.pc.rtp_sender(output.sender)
                        && sender.write_rtcp(now, vec![Box::new(report)]).is_ok()
                    {
                        self.sender_reports += 1;
                    }
                    self.net.flush(&mut peer.pc);
                }
            }
        }
    }

    /// Pauses or resumes the outputs of subscriber `peer` (those of `only` stream, or of
    /// every stream it receives; its audio, video or both); a resumed video asks the
    /// publisher for a keyframe.
    fn sending(
        &mut self,
        peer: PeerKey,
        only: Option<StreamKey>,
        video: Option<bool>,
        on: bool,
        now: Instant,
    ) {
        let Some(streams) = self.peers.get(&peer).map(Peer::sink_streams) else {
            return;
        };
        for stream in streams.into_iter().filter(|s| only.is_none_or(|o| o == *s)) {
            let Some(s) = self.streams.get_mut(&stream) else {
                continue;
            };
            let mut keyframe = false;
            for (index, fanout) in s.fanouts.iter_mut().enumerate() {
                if video.is_some_and(|v| v != (index == VIDEO)) {
                    continue;
                }
                for output in fanout.outputs.iter_mut().filter(|o| o.peer == peer) {
                    output.paused = match (on, output.paused) {
                        (false, _) => Paused::Yes,
                        (true, Paused::Yes) => {
                            keyframe |= index == VIDEO;
                            Paused::Resuming
                        }
                        (true, other) => other,
                    };
                }
            }
            if keyframe {
                self.request_keyframe(stream, now);
            }
        }
    }

    /// Adds sending tracks for `stream` (the kinds asked for) to subscriber `id`'s peer
    /// connection and offers again; they join the fan-out once answered.
    fn extend(
        &mut self,
        id: PeerKey,
        stream: StreamKey,
        kinds: Vec<RtpCodecKind>,
        video: VideoChoice,
        now: Instant,
    ) -> Result<Description, MediaError> {
        if !self.streams.contains_key(&stream) {
            return Err(MediaError::Gone("the stream is no longer published"));
        }
        if kinds.is_empty() {
            return Err(MediaError::Sdp(
                "nothing to add: no audio and no video".into(),
            ));
        }
        let peer = self
            .peers
            .get_mut(&id)
            .ok_or(MediaError::Gone("the endpoint is closed"))?;
        let sinks = Self::add_sinks(&mut peer.pc, kinds, video, stream)?;
        peer.sinks.extend(sinks.iter().cloned());
        let mut offer = Self::reoffer(peer, now)?;
        offer.tracks = Self::sent_tracks(&mut peer.pc, &sinks);
        peer.unanswered.extend(sinks);
        Ok(offer)
    }

    /// Takes `stream`'s tracks (or, with `None`, those of streams no longer published) off
    /// subscriber `id`'s peer connection and offers again: their sections become inactive.
    fn shrink(
        &mut self,
        id: PeerKey,
        stream: Option<StreamKey>,
        now: Instant,
    ) -> Result<Description, MediaError> {
        let live: Vec<StreamKey> = self.streams.keys().copied().collect();
        let peer = self
            .peers
            .get_mut(&id)
            .ok_or(MediaError::Gone("the endpoint is closed"))?;
        let gone = |s: &Sink| match stream {
            Some(key) => s.stream == key,
            None => !live.contains(&s.stream),
        };
        let removed: Vec<Sink> = peer.sinks.iter().filter(|s| gone(s)).cloned().collect();
        peer.sinks.retain(|s| !gone(s));
        peer.unanswered.retain(|s| !gone(s));
        for sink in &removed {
            peer.pc.remove_track(sink.sender).map_err(stack)?;
        }
        let description = Self::reoffer(peer, now)?;
        for sink in &removed {
            if let Some(s) = self.streams.get_mut(&sink.stream) {
                s.fanouts[sink.index].outputs.retain(|o| o.peer != id);
            }
        }
        Ok(description)
    }

    /// Moves the section `mid` of subscriber `id` to `stream` (same kind): its output leaves
    /// the old stream's fan-out and joins the new one's, keeping the subscriber's RTP
    /// numbering; no renegotiation. Returns the stream it carried before.
    fn switch(
        &mut self,
        id: PeerKey,
        mid: &str,
        stream: StreamKey,
        now: Instant,
    ) -> Result<StreamKey, MediaError> {
        if !self.streams.contains_key(&stream) {
            return Err(MediaError::Gone("the stream is no longer published"));
        }
        let peer = self
            .peers
            .get_mut(&id)
            .ok_or(MediaError::Gone("the endpoint is closed"))?;
        let position = peer
            .sinks
            .iter()
            .position(|s| {
                let t = rtc::rtp_transceiver::RTCRtpTransceiverId::from(s.sender);
                peer.pc
                    .rtp_transceiver(t)
                    .is_some_and(|t| t.mid().as_deref() == Some(mid))
            })
            .ok_or_else(|| MediaError::Sdp(format!("no section {mid} sends here")))?;
        let sink = &mut peer.sinks[position];
        let (from, index) = (sink.stream, sink.index);
        sink.stream = stream;
        let mut output = self
            .streams
            .get_mut(&from)
            .and_then(|s| {
                let outputs = &mut s.fanouts[index].outputs;
                let at = outputs
                    .iter()
                    .position(|o| o.peer == id && o.sender == sink.sender)?;
                Some(outputs.remove(at))
            })
            .ok_or_else(|| MediaError::Sdp(format!("section {mid} is not answered yet")))?;
        // The next packet, from the other source, continues this subscriber's numbering.
        if output.paused != Paused::Yes {
            output.paused = Paused::Resuming;
        }
        if let Some(s) = self.streams.get_mut(&stream) {
            s.fanouts[index].outputs.push(output);
        }
        if index == VIDEO {
            self.request_keyframe(stream, now);
        }
        Ok(from)
    }

    /// A new offer on an established peer connection (its candidates are known already).
    fn reoffer(peer: &mut Peer, now: Instant) -> Result<Description, MediaError> {
        let offer = peer.pc.create_offer(None).map_err(sdp_error)?;
        peer.pc
            .set_local_description(now, offer)
            .map_err(sdp_error)?;
        peer.awaiting_answer = true;
        Ok(Description {
            sdp: Self::local_sdp(&peer.pc, true)?,
            candidates: Vec::new(),
            status: peer.status.subscribe(),
            tracks: Vec::new(),
        })
    }

    /// Tells each peer connection's watchers the packets lost on it since the last report,
    /// when there were any, and starts counting again.
    fn report_loss(&mut self) {
        for s in self.streams.values_mut() {
            let lost: u32 = s.fanouts.iter().map(|f| f.lost_in).sum();
            for f in &mut s.fanouts {
                f.lost_in = 0;
            }
            if lost > 0
                && let Some(peer) = s.publisher.and_then(|p| self.peers.get(&p))
            {
                peer.status.send_modify(|st| {
                    st.lossy += 1;
                    st.lost = lost;
                    st.uplink = true;
                });
            }
        }
        for peer in self.peers.values_mut() {
            let lost = std::mem::take(&mut peer.nacked);
            if lost > 0 {
                peer.status.send_modify(|st| {
                    st.lossy += 1;
                    st.lost = lost;
                    st.uplink = false;
                });
            }
        }
    }

    /// Tells a stream's publisher its video cap (REMB), when it has one.
    fn send_cap(&mut self, stream: StreamKey, now: Instant) {
        let Some(s) = self.streams.get(&stream) else {
            return;
        };
        let (Some(publisher), Some((receiver, ssrc)), Some(bps)) =
            (s.publisher, s.fanouts[VIDEO].source, s.cap_bps)
        else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        if let Some(mut r) = peer.pc.rtp_receiver(receiver) {
            #[allow(clippy::cast_precision_loss)] // bits per second fit an f32 closely enough
            let bitrate = bps as f32;
            let _ = r.write_rtcp(
                now,
                vec![Box::new(ReceiverEstimatedMaximumBitrate {
                    sender_ssrc: 0,
                    bitrate,
                    ssrcs: vec![ssrc],
                })],
            );
        }
        self.net.flush(&mut peer.pc);
    }

    /// Asks a stream's publisher for a keyframe, at most once per `KEYFRAME_MIN_GAP`; a
    /// request inside the gap is kept for its end.
    fn request_keyframe(&mut self, stream: StreamKey, now: Instant) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        let fanout = &mut s.fanouts[VIDEO];
        // Who is asked: the publisher's peer connection, or (a relayed stream) the owner
        // node, which asks its publisher.
        let publisher = match (s.relay_in, s.publisher, fanout.source) {
            (Some(_), _, _) => None,
            (None, Some(publisher), Some(source)) => Some((publisher, source)),
            _ => return,
        };
        if let Some(last) = fanout.last_keyframe_request
            && now < last + KEYFRAME_MIN_GAP
        {
            fanout.keyframe_wanted.get_or_insert(now);
            self.next_wake = self.next_wake.min(last + KEYFRAME_MIN_GAP);
            return;
        }
        fanout.last_keyframe_request = Some(now);
        fanout.keyframe_wanted = None;
        fanout.keyframe_asked_at.get_or_insert(now);
        let Some((publisher, (receiver, ssrc))) = publisher else {
            if let Some(r) = s.relay_in.and_then(|relay| self.relays_in.get_mut(&relay))
                && let Some(n) = r
                    .sealer
                    .seal(Kind::Keyframe, &mut self.relay_buf, |_| Some(0))
            {
                self.counts.keyframe_requests_sent += 1;
                self.net.send_raw(r.owner, &self.relay_buf[..n]);
            }
            return;
        };
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        self.counts.keyframe_requests_sent += 1;
        if let Some(mut r) = peer.pc.rtp_receiver(receiver) {
            let _ = r.write_rtcp(
                now,
                vec![Box::new(PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc: ssrc,
                })],
            );
        }
        self.net.flush(&mut peer.pc);
    }

    /// Serves every timer that is due, then finds the next wake-up.
    fn timers(&mut self, now: Instant) {
        let refresh = now >= self.next_refresh;
        let due: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| refresh || p.deadline.is_some_and(|d| d <= now + SLACK))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(peer) = self.peers.get_mut(&id)
                && peer.deadline.is_some_and(|d| d <= now + SLACK)
            {
                if peer.kick.is_some_and(|k| k <= now + SLACK) {
                    peer.kick = None;
                }
                let _ = peer.pc.handle_timeout(now);
            }
            self.service(id, now);
        }
        let wanted: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(_, s)| {
                let f = &s.fanouts[VIDEO];
                f.keyframe_wanted.is_some()
                    && f.last_keyframe_request
                        .is_none_or(|t| now + SLACK >= t + KEYFRAME_MIN_GAP)
            })
            .map(|(key, _)| *key)
            .collect();
        for key in wanted {
            self.request_keyframe(key, now);
        }
        if refresh {
            self.next_refresh = now + REFRESH;
        }
        if now + SLACK >= self.next_reports {
            self.sender_reports(now);
            self.report_loss();
            let capped: Vec<StreamKey> = self
                .streams
                .iter()
                .filter(|(_, s)| s.cap_bps.is_some())
                .map(|(k, _)| *k)
                .collect();
            for key in capped {
                self.send_cap(key, now);
            }
            self.next_reports = now + REPORT_INTERVAL;
        }
        let keyframes = self.streams.values().filter_map(|s| {
            let f = &s.fanouts[VIDEO];
            f.keyframe_wanted
                .and(f.last_keyframe_request)
                .map(|t| t + KEYFRAME_MIN_GAP)
        });
        self.next_wake = self
            .peers
            .values()
            .filter_map(|p| p.deadline)
            .chain(keyframes)
            .fold(self.next_refresh, Instant::min)
            .max(now);
    }
}

#[cfg(test)]
mod tests;
