//! Client peers on webrtc-rs (the async layer): a publisher that sends the prerecorded stream
//! and logs when each video payload left, and subscribers that count, time and check what
//! arrives.

use crate::media::{Stream, payload_key};
use camerata_server::media::{VideoChoice, starts_keyframe};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use webrtc::media_stream::Track;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Send times by payload hash, and the same in sending order (to forget old ones).
type Sends = (HashMap<u64, Instant>, VecDeque<(Instant, u64)>);

/// When each video payload was sent, by payload hash; entries older than `KEEP` go.
#[derive(Default)]
pub struct SendLog {
    inner: Mutex<Sends>,
}

const KEEP: Duration = Duration::from_secs(5);

impl SendLog {
    fn sent(&self, key: u64, at: Instant) {
        let mut g = lock(&self.inner);
        g.0.insert(key, at);
        g.1.push_back((at, key));
        while let Some(&(t, k)) = g.1.front() {
            if at.duration_since(t) < KEEP {
                break;
            }
            g.1.pop_front();
            if g.0.get(&k) == Some(&t) {
                g.0.remove(&k);
            }
        }
    }

    fn when(&self, key: u64) -> Option<Instant> {
        lock(&self.inner).0.get(&key).copied()
    }
}

struct Events {
    gathered: mpsc::UnboundedSender<()>,
    state: mpsc::UnboundedSender<RTCPeerConnectionState>,
    tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(track);
    }
}

/// One client peer connection.
pub struct Peer {
    /// The peer connection.
    pub pc: Arc<dyn PeerConnection>,
    gathered: mpsc::UnboundedReceiver<()>,
    state: mpsc::UnboundedReceiver<RTCPeerConnectionState>,
    tracks: Option<mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>>,
}

fn codec(kind: RtpCodecKind) -> RTCRtpCodec {
    match kind {
        RtpCodecKind::Audio => RTCRtpCodec {
            mime_type: "audio/opus".to_owned(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        _ => RTCRtpCodec {
            mime_type: "video/VP8".to_owned(),
            clock_rate: 90000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
    }
}

impl Peer {
    /// A peer whose sockets bind `ip`.
    pub async fn new(ip: IpAddr) -> anyhow::Result<Self> {
        let (gathered_tx, gathered) = mpsc::unbounded_channel();
        let (state_tx, state) = mpsc::unbounded_channel();
        let (tracks_tx, tracks) = mpsc::unbounded_channel();
        let mut engine = MediaEngine::default();
        engine.register_default_codecs()?;
        // The server's chain: the defaults, then keyframe requests handed to the application.
        let registry = camerata_server::media::interceptors(&mut engine)?;
        // Connectivity checks paced as Chromium paces them (50 ms), not at webrtc-rs's 200 ms
        // default, so join times measure the servers rather than the client's pacing.
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_ice_connection_attempts(Some(Duration::from_millis(50)), Some(28))
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(Arc::new(Events {
                gathered: gathered_tx,
                state: state_tx,
                tracks: tracks_tx,
            }))
            .with_udp_addrs(vec![format!("{ip}:0")])
            .build()
            .await?;
        Ok(Self {
            pc: Arc::new(pc),
            gathered,
            state,
            tracks: Some(tracks),
        })
    }

    /// An offer with every candidate in it.
    pub async fn offer(&mut self) -> anyhow::Result<String> {
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        self.gathered_sdp().await
    }

    /// The local description once ICE gathering is complete.
    async fn gathered_sdp(&mut self) -> anyhow::Result<String> {
        tokio::time::timeout(Duration::from_secs(10), self.gathered.recv()).await?;
        Ok(self
            .pc
            .local_description()
            .await
            .ok_or_else(|| anyhow::anyhow!("no local description"))?
            .sdp)
    }

    /// Takes a remote answer and candidates trickled after it.
    pub async fn accept(&mut self, answer: &str, candidates: &[String]) -> anyhow::Result<()> {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(answer.to_owned())?)
            .await?;
        self.add_candidates(candidates).await
    }

    /// Answers a remote offer (Janus subscribers); the answer has every candidate.
    pub async fn answer(&mut self, offer: &str) -> anyhow::Result<String> {
        self.pc
            .set_remote_description(RTCSessionDescription::offer(offer.to_owned())?)
            .await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        self.gathered_sdp().await
    }

    /// Adds candidates the server trickled.
    pub async fn add_candidates(&self, candidates: &[String]) -> anyhow::Result<()> {
        for c in candidates {
            self.pc
                .add_ice_candidate(webrtc::peer_connection::RTCIceCandidateInit {
                    candidate: c.clone(),
                    sdp_mid: Some("0".to_owned()),
                    sdp_mline_index: Some(0),
                    ..Default::default()
                })
                .await?;
        }
        Ok(())
    }

    /// Waits until the peer connection is connected.
    pub async fn connected(&mut self) -> anyhow::Result<()> {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match self.state.recv().await {
                    Some(RTCPeerConnectionState::Connected) => return Ok(()),
                    Some(RTCPeerConnectionState::Failed) | None => {
                        anyhow::bail!("peer connection failed")
                    }
                    Some(_) => {}
                }
            }
        })
        .await?
    }

    /// Adds a recvonly transceiver of each kind (a subscriber's offer).
    pub async fn receive_both(&self) -> anyhow::Result<()> {
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            self.pc
                .add_transceiver_from_kind(
                    kind,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        ..Default::default()
                    }),
                )
                .await?;
        }
        Ok(())
    }

    /// Closes the peer connection.
    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

/// A publisher's two tracks.
pub struct Tracks {
    video: Arc<TrackLocalStaticRTP>,
    audio: Arc<TrackLocalStaticRTP>,
    senders: Vec<Arc<dyn webrtc::rtp_transceiver::RtpSender>>,
}

/// Adds a video and an audio track to `peer`.
pub async fn add_tracks(peer: &Peer) -> anyhow::Result<Tracks> {
    let mut made = Vec::new();
    let mut senders = Vec::new();
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        let ssrc: u32 = rand::random();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "load".to_owned(),
            format!("load-{kind}"),
            "load".to_owned(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec(kind),
                ..Default::default()
            }],
        )));
        senders.push(
            peer.pc
                .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
                .await?,
        );
        made.push((track, ssrc));
    }
    let audio = made.pop().map(|(t, _)| t).expect("two tracks");
    let video = made.pop().map(|(t, _)| t).expect("two tracks");
    Ok(Tracks {
        video,
        audio,
        senders,
    })
}

/// Packets sent so far by a publisher.
#[derive(Default)]
pub struct Sent {
    /// Video packets.
    pub video: std::sync::atomic::AtomicU64,
    /// Audio packets.
    pub audio: std::sync::atomic::AtomicU64,
}

/// Sends `stream` on `tracks` in a loop, in real time, until aborted. A keyframe request
/// from the server is answered as an encoder would: the next frame sent is a keyframe (the
/// file's nearest one, with the current timestamp).
pub async fn send(
    tracks: Tracks,
    stream: Arc<Stream>,
    log: Arc<SendLog>,
    sent: Arc<Sent>,
) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut pts = Vec::new();
    for s in &tracks.senders {
        let p = s
            .get_parameters()
            .await?
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)
            .ok_or_else(|| anyhow::anyhow!("no negotiated codec"))?;
        pts.push(p);
    }
    let (video_pt, audio_pt) = (pts[0], pts[1]);
    let video_ssrc = *tracks.video.ssrcs().await.first().unwrap_or(&0);
    let audio_ssrc = *tracks.audio.ssrcs().await.first().unwrap_or(&0);
    let wanted = Arc::new(AtomicBool::new(false));
    let (watched, flag) = (tracks.video.clone(), wanted.clone());
    let requests = tokio::spawn(async move {
        use webrtc::media_stream::track_local::TrackLocalEvent;
        while let Some(event) = watched.poll().await {
            if let TrackLocalEvent::OnRtcpPacket(packets) = event
                && packets
                    .iter()
                    .any(|p| camerata_server::media::is_keyframe_request(p.as_ref()))
            {
                flag.store(true, Ordering::Relaxed);
            }
        }
    });
    let result = async {
        let (mut video_seq, mut audio_seq) = (rand::random::<u16>(), rand::random::<u16>());
        let start = Instant::now();
        let length = stream.length;
        for round in 0u32.. {
            let base = start + length * round;
            let video_ts = (length.as_secs_f64() * 90_000.0) as u32 * round;
            let audio_ts = (length.as_secs_f64() * 48_000.0) as u32 * round;
            let (mut f, mut a) = (0, 0);
            while f < stream.frames.len() || a < stream.audio.len() {
                let frame_at = stream.frames.get(f).map(|r| stream.video[r.start].at);
                let audio = stream.audio.get(a);
                let video_first = match (frame_at, audio) {
                    (Some(v), Some(x)) => v <= x.at,
                    (Some(_), None) => true,
                    _ => false,
                };
                if video_first {
                    let range = stream.frames[f].clone();
                    let at = stream.video[range.start].at;
                    let timestamp = stream.video[range.start].timestamp;
                    tokio::time::sleep_until((base + at).into()).await;
                    // A requested keyframe replaces this frame.
                    let chunks = if wanted.swap(false, Ordering::Relaxed) {
                        let k = stream
                            .keyframes
                            .iter()
                            .rev()
                            .find(|&&k| k <= f)
                            .or(stream.keyframes.first())
                            .copied()
                            .unwrap_or(f);
                        stream.frames[k].clone()
                    } else {
                        range
                    };
                    let last = chunks.end - 1;
                    for i in chunks {
                        let chunk = &stream.video[i];
                        video_seq = video_seq.wrapping_add(1);
                        let packet = rtc::rtp::Packet {
                            header: rtc::rtp::Header {
                                version: 2,
                                marker: i == last,
                                payload_type: video_pt,
                                sequence_number: video_seq,
                                timestamp: video_ts.wrapping_add(timestamp),
                                ssrc: video_ssrc,
                                ..Default::default()
                            },
                            payload: chunk.payload.clone(),
                        };
                        log.sent(payload_key(&chunk.payload), Instant::now());
                        sent.video.fetch_add(1, Ordering::Relaxed);
                        tracks.video.write_rtp(packet).await?;
                    }
                    f += 1;
                } else {
                    let chunk = audio.expect("checked");
                    tokio::time::sleep_until((base + chunk.at).into()).await;
                    audio_seq = audio_seq.wrapping_add(1);
                    let packet = rtc::rtp::Packet {
                        header: rtc::rtp::Header {
                            version: 2,
                            payload_type: audio_pt,
                            sequence_number: audio_seq,
                            timestamp: audio_ts.wrapping_add(chunk.timestamp),
                            ssrc: audio_ssrc,
                            ..Default::default()
                        },
                        payload: chunk.payload.clone(),
                    };
                    sent.audio.fetch_add(1, Ordering::Relaxed);
                    tracks.audio.write_rtp(packet).await?;
                    a += 1;
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    requests.abort();
    result
}

/// Sequence numbers seen on one track: received packets and the extended highest number.
#[derive(Default, Clone, Copy, Debug)]
pub struct SeqCount {
    /// Packets received.
    pub received: u64,
    /// Highest extended sequence number (cycles * 65536 + seq).
    pub highest: Option<i64>,
    last: u16,
    cycles: i64,
}

impl SeqCount {
    fn add(&mut self, seq: u16) {
        self.received += 1;
        match self.highest {
            None => {
                self.highest = Some(i64::from(seq));
                self.last = seq;
            }
            Some(h) => {
                if seq < 0x1000 && self.last > 0xf000 {
                    self.cycles += 1;
                }
                if seq.wrapping_sub(self.last) < 0x8000 {
                    self.last = seq;
                }
                let ext = self.cycles * 65_536 + i64::from(seq);
                self.highest = Some(h.max(ext));
            }
        }
    }
}

/// What one subscriber saw.
#[derive(Default, Debug)]
pub struct Seen {
    /// When the subscription was asked for.
    pub requested: Option<Instant>,
    /// First RTP packet.
    pub first_packet: Option<Instant>,
    /// First packet of a VP8 keyframe.
    pub first_keyframe: Option<Instant>,
    /// Video sequence numbers.
    pub video: SeqCount,
    /// Audio sequence numbers.
    pub audio: SeqCount,
    /// Delays of video packets from send to receipt while measuring, microseconds.
    pub delays_us: Vec<u32>,
    /// Whether delays are recorded.
    pub measuring: bool,
}

/// Counts what arrives on every track `peer` receives, until its tracks end.
pub fn watch(peer: &mut Peer, seen: Arc<Mutex<Seen>>, log: Arc<SendLog>) {
    let Some(mut tracks) = peer.tracks.take() else {
        return;
    };
    tokio::spawn(async move {
        while let Some(track) = tracks.recv().await {
            let seen = seen.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let video = track.kind().await == RtpCodecKind::Video;
                while let Some(event) = track.poll().await {
                    let TrackRemoteEvent::OnRtpPacket(p) = event else {
                        continue;
                    };
                    let now = Instant::now();
                    let mut s = lock(&seen);
                    s.first_packet.get_or_insert(now);
                    if video {
                        s.video.add(p.header.sequence_number);
                        if s.first_keyframe.is_none()
                            && starts_keyframe(&p.payload, VideoChoice::Vp8)
                        {
                            s.first_keyframe = Some(now);
                        }
                        if s.measuring
                            && let Some(sent) = log.when(payload_key(&p.payload))
                        {
                            let us = now.duration_since(sent).as_micros();
                            s.delays_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                        }
                    } else {
                        s.audio.add(p.header.sequence_number);
                    }
                }
            });
        }
    });
}
