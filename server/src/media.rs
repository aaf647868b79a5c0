//! Media: the only module that names webrtc-rs. One peer connection per publisher endpoint
//! and per subscriber endpoint, the browser always offering (OpenVidu's "kurento" mode); one
//! forwarder task per published track that owns its list of subscriber outputs and is changed
//! only by messages.
//!
//! This is the straightforward version on the async `webrtc` layer: each forwarded packet is
//! cloned per subscriber and written through `TrackLocalStaticRTP`. Keyframes: a PLI goes to
//! the publisher on every new subscription, and every PLI or FIR a subscriber sends is relayed
//! to the publisher (at most one per `KEYFRAME_MIN_GAP`). NACK, receiver reports and
//! congestion feedback are webrtc-rs's default interceptors on each peer connection.

use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
};

/// The shortest time between two keyframe requests relayed to one publisher.
pub const KEYFRAME_MIN_GAP: Duration = Duration::from_millis(250);

/// Commands to one forwarder. Senders: the publisher's track handler and subscribers being
/// set up. Receiver: the forwarder task. Unbounded: commands are a handful per subscription,
/// never per packet.
enum Forward {
    Source(Arc<dyn TrackRemote>),
    Output(Arc<TrackLocalStaticRTP>, u32),
    Keyframe,
}

/// An interceptor that lets keyframe requests (PLI, FIR) through to the application. Inbound
/// RTCP otherwise ends at the last interceptor; placed last, this one sees RTCP after every
/// interceptor that acts on it and marks only keyframe requests for delivery.
#[derive(Default)]
pub struct KeyframeRequests {
    read: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
    write: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
}

/// Whether an RTCP packet asks for a keyframe.
pub fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl rtc::sansio::Protocol<rtc::interceptor::TaggedPacket, rtc::interceptor::TaggedPacket, ()>
    for KeyframeRequests
{
    type Rout = rtc::interceptor::TaggedPacket;
    type Wout = rtc::interceptor::TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = std::time::Instant;

    fn handle_read(&mut self, mut msg: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        if let rtc::interceptor::Packet::Rtcp(packets) = &msg.message.packet {
            let wanted: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| is_keyframe_request(p.as_ref()))
                .cloned()
                .collect();
            if wanted.is_empty() {
                return Ok(());
            }
            msg.message.packet = rtc::interceptor::Packet::Rtcp(wanted);
            msg.message
                .add(rtc::interceptor::Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl rtc::interceptor::Interceptor for KeyframeRequests {
    fn bind_local_stream(&mut self, _info: &rtc::interceptor::StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &rtc::interceptor::StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &rtc::interceptor::StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &rtc::interceptor::StreamInfo) {}
}

/// The interceptors of every peer connection: webrtc-rs's defaults (NACK, reports,
/// congestion feedback), then keyframe requests to the application.
pub fn interceptors(engine: &mut MediaEngine) -> Result<Registry, MediaError> {
    Ok(register_default_interceptors(Registry::new(), engine)
        .map_err(stack)?
        .with(
            rtc::interceptor::Slot::from(14_000),
            KeyframeRequests::default(),
        ))
}

/// A media operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The SDP could not be used.
    #[error("SDP failure: {0}")]
    Sdp(String),
    /// The WebRTC stack failed.
    #[error("WebRTC failure: {0}")]
    Stack(String),
}

fn stack(e: impl std::fmt::Display) -> MediaError {
    MediaError::Stack(e.to_string())
}

/// How peers are set up.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// The address media sockets bind to.
    pub bind_ip: IpAddr,
    /// The address announced to browsers, when it differs (NAT, containers).
    pub public_ip: Option<IpAddr>,
    /// Ports to bind media sockets on, inclusive; `None` for any free port.
    pub port_range: Option<(u16, u16)>,
    /// Also offer passive ICE-TCP candidates.
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

/// Makes peer connections (cheap to clone).
#[derive(Clone, Debug)]
pub struct Media {
    config: Arc<MediaConfig>,
    /// The next port of the range to try (round robin).
    next_port: Arc<std::sync::atomic::AtomicU32>,
}

/// One peer connection of a publisher or subscriber (cheap to clone).
#[derive(Clone)]
pub struct Endpoint {
    pc: Arc<dyn PeerConnection>,
}

impl Endpoint {
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
        self.pc
            .add_ice_candidate(RTCIceCandidateInit {
                candidate,
                sdp_mid,
                sdp_mline_index,
                ..Default::default()
            })
            .await
            .map_err(stack)
    }

    /// Closes the peer connection in the background: its sockets and tasks end.
    pub fn close(self) {
        tokio::spawn(async move {
            let _ = self.pc.close().await;
        });
    }
}

/// The fan-out of one published stream: a forwarder per kind (cheap to clone; the forwarders
/// end when the last clone is dropped).
#[derive(Clone)]
pub struct StreamOut {
    audio: mpsc::UnboundedSender<Forward>,
    video: mpsc::UnboundedSender<Forward>,
}

struct PublisherHandler {
    gathered: mpsc::Sender<()>,
    audio: mpsc::UnboundedSender<Forward>,
    video: mpsc::UnboundedSender<Forward>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PublisherHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let to = match track.kind().await {
            RtpCodecKind::Audio => &self.audio,
            _ => &self.video,
        };
        let _ = to.send(Forward::Source(track));
    }
}

struct SubscriberHandler {
    gathered: mpsc::Sender<()>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for SubscriberHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }
}

fn feedback(typ: &str, parameter: &str) -> rtc::rtp_transceiver::rtp_sender::RTCPFeedback {
    rtc::rtp_transceiver::rtp_sender::RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    }
}

/// The codec of `kind` that peers of a room negotiate.
fn codec(kind: RtpCodecKind, video: VideoChoice) -> RTCRtpCodec {
    let video_feedback = || {
        vec![
            feedback("goog-remb", ""),
            feedback("transport-cc", ""),
            feedback("ccm", "fir"),
            feedback("nack", ""),
            feedback("nack", "pli"),
        ]
    };
    let (mime, fmtp) = match (kind, video) {
        (RtpCodecKind::Audio, _) => {
            return RTCRtpCodec {
                mime_type: "audio/opus".to_owned(),
                clock_rate: 48000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![feedback("transport-cc", "")],
            };
        }
        (_, VideoChoice::Vp8) => ("video/VP8", ""),
        (_, VideoChoice::Vp9) => ("video/VP9", "profile-id=0"),
        (_, VideoChoice::H264) => (
            "video/H264",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ),
    };
    RTCRtpCodec {
        mime_type: mime.to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: fmtp.to_owned(),
        rtcp_feedback: video_feedback(),
    }
}

/// A media engine that knows Opus and the room's one video codec, nothing else: every offer
/// is answered with exactly those.
fn engine(video: VideoChoice) -> Result<MediaEngine, MediaError> {
    use rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters;
    let mut engine = MediaEngine::default();
    for (kind, payload_type) in [(RtpCodecKind::Audio, 111), (RtpCodecKind::Video, 96)] {
        engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: codec(kind, video),
                    payload_type,
                },
                kind,
            )
            .map_err(stack)?;
    }
    Ok(engine)
}

/// Forwards one track: reads the publisher's packets and writes a copy to every output.
async fn forwarder(mut commands: mpsc::UnboundedReceiver<Forward>) {
    let mut source: Option<Arc<dyn TrackRemote>> = None;
    let mut media_ssrc = 0u32;
    let mut outputs: Vec<(Arc<TrackLocalStaticRTP>, u32)> = Vec::new();
    let mut last_request: Option<tokio::time::Instant> = None;
    // Sequence numbers and timestamps continue across a change of source (a publisher's
    // stream reconnect), so subscribers see one unbroken stream.
    let mut continuity = Continuity::default();
    loop {
        let packet = async {
            match &source {
                Some(track) => track.poll().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Forward::Source(track)) => {
                    media_ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
                    continuity.rebase = true;
                    source = Some(track);
                    request_keyframe(&source, media_ssrc).await;
                    last_request = Some(tokio::time::Instant::now());
                }
                Some(Forward::Output(track, ssrc)) => {
                    outputs.push((track, ssrc));
                    request_keyframe(&source, media_ssrc).await;
                    last_request = Some(tokio::time::Instant::now());
                }
                Some(Forward::Keyframe) => {
                    let due = last_request.is_none_or(|t| t.elapsed() >= KEYFRAME_MIN_GAP);
                    if due {
                        request_keyframe(&source, media_ssrc).await;
                        last_request = Some(tokio::time::Instant::now());
                    }
                }
            },
            event = packet => match event {
                Some(TrackRemoteEvent::OnRtpPacket(mut packet)) => {
                    continuity.apply(&mut packet.header);
                    // Header extensions are negotiated per peer connection (their ids differ
                    // between publisher and subscriber), so they are not forwarded; each
                    // subscriber's sender adds its own. Without them, the copies below
                    // share the payload and allocate nothing.
                    packet.header.extension = false;
                    packet.header.extensions.clear();
                    packet.header.extensions_padding = 0;
                    let mut failed = Vec::new();
                    for (i, (out, ssrc)) in outputs.iter().enumerate() {
                        let mut copy = packet.clone();
                        copy.header.ssrc = *ssrc;
                        if out.write_rtp(copy).await.is_err() {
                            failed.push(i);
                        }
                    }
                    for i in failed.into_iter().rev() {
                        outputs.swap_remove(i);
                    }
                }
                Some(_) => {}
                None => source = None,
            },
        }
    }
}

/// Offsets that keep sequence numbers and timestamps continuous when a forwarder's source
/// changes.
#[derive(Default)]
struct Continuity {
    seq_offset: u16,
    ts_offset: u32,
    last_seq: u16,
    last_ts: u32,
    started: bool,
    rebase: bool,
}

impl Continuity {
    /// The timestamp step put between the last packet of the old source and the first of the
    /// new one (one frame at 30 fps in the 90 kHz clock; harmless for audio).
    const GAP: u32 = 3000;

    fn apply(&mut self, header: &mut rtc::rtp::Header) {
        if self.rebase {
            if self.started {
                self.seq_offset = self
                    .last_seq
                    .wrapping_add(1)
                    .wrapping_sub(header.sequence_number);
                self.ts_offset = self
                    .last_ts
                    .wrapping_add(Self::GAP)
                    .wrapping_sub(header.timestamp);
            }
            self.rebase = false;
        }
        self.started = true;
        header.sequence_number = header.sequence_number.wrapping_add(self.seq_offset);
        header.timestamp = header.timestamp.wrapping_add(self.ts_offset);
        self.last_seq = header.sequence_number;
        self.last_ts = header.timestamp;
    }
}

/// Relays the keyframe requests a subscriber sends on `track` to its forwarder.
async fn relay_keyframe_requests(
    track: Arc<TrackLocalStaticRTP>,
    to: mpsc::UnboundedSender<Forward>,
) {
    use webrtc::media_stream::track_local::TrackLocalEvent;
    while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = track.poll().await {
        if packets.iter().any(|p| is_keyframe_request(p.as_ref()))
            && to.send(Forward::Keyframe).is_err()
        {
            return;
        }
    }
}

async fn request_keyframe(source: &Option<Arc<dyn TrackRemote>>, media_ssrc: u32) {
    if let Some(track) = source
        && track.kind().await == RtpCodecKind::Video
    {
        let _ = track
            .write_rtcp(vec![Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            })])
            .await;
    }
}

impl Media {
    /// A media layer with `config`.
    pub fn new(config: MediaConfig) -> Self {
        Self {
            config: Arc::new(config),
            next_port: Arc::new(std::sync::atomic::AtomicU32::new(0)),
        }
    }

    async fn peer(
        &self,
        handler: Arc<dyn PeerConnectionEventHandler>,
        video: VideoChoice,
    ) -> Result<Arc<dyn PeerConnection>, MediaError> {
        let ip = self.config.bind_ip;
        // Port 0 lets the system pick; with a range, each peer connection takes the next
        // free port of it, round robin.
        let ports: Vec<u16> = match self.config.port_range {
            None => vec![0],
            Some((min, max)) => {
                let span = u32::from(max - min) + 1;
                (0..span)
                    .map(|_| {
                        let offset = self
                            .next_port
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                            % span;
                        u16::try_from(u32::from(min) + offset).expect("inside the range")
                    })
                    .collect()
            }
        };
        for port in ports {
            if port != 0 && std::net::UdpSocket::bind((ip, port)).is_err() {
                continue;
            }
            let mut engine = engine(video)?;
            let registry = interceptors(&mut engine)?;
            let mut settings = SettingEngineBuilder::new()
                .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled);
            if let Some(public) = self.config.public_ip {
                settings = settings.with_nat_1to1_ips(
                    vec![public.to_string()],
                    rtc::peer_connection::transport::RTCIceCandidateType::Host,
                );
            }
            let mut builder = PeerConnectionBuilder::new()
                .with_configuration(RTCConfigurationBuilder::new().build())
                .with_media_engine(engine)
                .with_interceptor_registry(registry)
                .with_setting_engine(settings.build())
                .with_handler(handler.clone())
                .with_udp_addrs(vec![format!("{ip}:{port}")]);
            if self.config.ice_tcp {
                builder = builder.with_tcp_addrs(vec![format!("{ip}:{port}")]);
            }
            match builder.build().await {
                Ok(pc) => return Ok(Arc::new(pc)),
                Err(e) if port == 0 => return Err(stack(e)),
                Err(_) => continue,
            }
        }
        Err(MediaError::Stack(
            "no free UDP port in CAMERATA_UDP_PORT_RANGE".into(),
        ))
    }

    /// Answers a publisher's offer: the answer with its candidates, and the stream's fan-out.
    pub async fn publish(
        &self,
        offer: String,
        codec: VideoChoice,
    ) -> Result<(Endpoint, StreamOut, String), MediaError> {
        let (audio, audio_rx) = mpsc::unbounded_channel();
        let (video, video_rx) = mpsc::unbounded_channel();
        tokio::spawn(forwarder(audio_rx));
        tokio::spawn(forwarder(video_rx));
        let out = StreamOut { audio, video };
        let (endpoint, answer) = self.republish(&out, offer, codec).await?;
        Ok((endpoint, out, answer))
    }

    /// Answers a publisher's new offer for a stream that already has subscribers (a stream
    /// reconnect): the new peer connection feeds the same forwarders, so subscribers keep
    /// their own peer connections.
    pub async fn republish(
        &self,
        out: &StreamOut,
        offer: String,
        codec: VideoChoice,
    ) -> Result<(Endpoint, String), MediaError> {
        let (gathered, gathered_rx) = mpsc::channel(1);
        let handler = Arc::new(PublisherHandler {
            gathered,
            audio: out.audio.clone(),
            video: out.video.clone(),
        });
        let pc = self.peer(handler, codec).await?;
        let answer = answer(&pc, offer, gathered_rx).await?;
        Ok((Endpoint { pc }, answer))
    }

    /// Answers a subscriber's offer for `stream`: the answer with its candidates.
    pub async fn subscribe(
        &self,
        stream: &StreamOut,
        offer: String,
        video: VideoChoice,
    ) -> Result<(Endpoint, String), MediaError> {
        let (gathered, gathered_rx) = mpsc::channel(1);
        let pc = self
            .peer(Arc::new(SubscriberHandler { gathered }), video)
            .await?;
        let description =
            RTCSessionDescription::offer(offer).map_err(|e| MediaError::Sdp(e.to_string()))?;
        let kinds: Vec<RtpCodecKind> = description
            .sdp
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
        pc.set_remote_description(description)
            .await
            .map_err(|e| MediaError::Sdp(e.to_string()))?;
        let mut outputs = Vec::new();
        for kind in kinds {
            let ssrc: u32 = rand::random();
            let label = format!("camerata-{ssrc}");
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                label.clone(),
                format!("{label}-{kind}"),
                label,
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: codec(kind, video),
                    ..Default::default()
                }],
            )));
            pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
                .await
                .map_err(stack)?;
            outputs.push((kind, track, ssrc));
        }
        let answer = answer_local(&pc, gathered_rx).await?;
        for (kind, track, ssrc) in outputs {
            let to = match kind {
                RtpCodecKind::Audio => &stream.audio,
                _ => &stream.video,
            };
            tokio::spawn(relay_keyframe_requests(Arc::clone(&track), to.clone()));
            let _ = to.send(Forward::Output(track, ssrc));
        }
        Ok((Endpoint { pc }, answer))
    }
}

/// Sets the remote offer, then answers (see `answer_local`).
async fn answer(
    pc: &Arc<dyn PeerConnection>,
    offer: String,
    gathered: mpsc::Receiver<()>,
) -> Result<String, MediaError> {
    let description =
        RTCSessionDescription::offer(offer).map_err(|e| MediaError::Sdp(e.to_string()))?;
    pc.set_remote_description(description)
        .await
        .map_err(|e| MediaError::Sdp(e.to_string()))?;
    answer_local(pc, gathered).await
}

/// Creates the answer and waits for ICE gathering, so the answer carries every candidate.
async fn answer_local(
    pc: &Arc<dyn PeerConnection>,
    mut gathered: mpsc::Receiver<()>,
) -> Result<String, MediaError> {
    let answer = pc
        .create_answer(None)
        .await
        .map_err(|e| MediaError::Sdp(e.to_string()))?;
    pc.set_local_description(answer)
        .await
        .map_err(|e| MediaError::Sdp(e.to_string()))?;
    let _ = tokio::time::timeout(Duration::from_secs(5), gathered.recv()).await;
    pc.local_description()
        .await
        .map(|d| d.sdp)
        .ok_or_else(|| MediaError::Sdp("no local description".into()))
}

#[cfg(test)]
mod tests {
    use super::Continuity;

    fn header(seq: u16, ts: u32) -> rtc::rtp::Header {
        rtc::rtp::Header {
            sequence_number: seq,
            timestamp: ts,
            ..Default::default()
        }
    }

    #[test]
    fn sequence_and_time_continue_across_a_new_source() {
        let mut c = Continuity::default();
        for (seq, ts) in [(100u16, 9000u32), (101, 12000)] {
            let mut h = header(seq, ts);
            c.apply(&mut h);
            assert_eq!(
                (h.sequence_number, h.timestamp),
                (seq, ts),
                "the first source is untouched"
            );
        }
        c.rebase = true;
        let mut h = header(65_000, 4_294_967_000);
        c.apply(&mut h);
        assert_eq!((h.sequence_number, h.timestamp), (102, 15_000));
        let mut h = header(65_535, 4_294_967_295);
        c.apply(&mut h);
        assert_eq!(h.sequence_number, 637, "wraps like the source does");
        let mut h = header(0, 2999);
        c.apply(&mut h);
        assert_eq!(h.sequence_number, 638);
        assert_eq!(
            h.timestamp,
            15_000u32.wrapping_add(2999u32.wrapping_sub(4_294_967_000))
        );
    }
}
