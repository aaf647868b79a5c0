//! The forwarder between two in-process webrtc-rs peers standing in for browsers: a
//! publisher sends RTP through Camerata to a subscriber, which receives the same payloads on
//! its own SSRC; the publisher is asked for a keyframe when the subscription starts and when
//! the subscriber asks; a packet lost on the way is retransmitted after a NACK; unpublishing
//! ends the subscriber's endpoint; the media loop frees what is closed. Synchronised by
//! events, channels and the loop's own counts, never by sleeping.

use crate::support::{Server, TempDir};
use futures_util::{SinkExt, StreamExt};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};

const API: &str = "/openvidu/api";
const PUBLISHER_SSRC: u32 = 0x1111_2222;

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

/// A webrtc-rs peer in the role of a browser.
pub(crate) struct Peer {
    pub(crate) pc: Arc<dyn PeerConnection>,
    gathered: mpsc::UnboundedReceiver<()>,
    state: mpsc::UnboundedReceiver<RTCPeerConnectionState>,
    pub(crate) tracks: mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>,
}

impl Peer {
    pub(crate) async fn new() -> Self {
        let (gathered_tx, gathered) = mpsc::unbounded_channel();
        let (state_tx, state) = mpsc::unbounded_channel();
        let (tracks_tx, tracks) = mpsc::unbounded_channel();
        let mut engine = MediaEngine::default();
        engine.register_default_codecs().expect("codecs");
        // The same chain as the server's, so keyframe requests reach this peer's application.
        let registry = camerata_server::media::interceptors(&mut engine).expect("interceptors");
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
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
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .build()
            .await
            .expect("a peer connection");
        Self {
            pc: Arc::new(pc),
            gathered,
            state,
            tracks,
        }
    }

    /// An offer with every candidate in it.
    async fn offer(&mut self) -> String {
        let offer = self.pc.create_offer(None).await.expect("offer");
        self.pc
            .set_local_description(offer)
            .await
            .expect("local offer");
        self.gathered.recv().await.expect("gathering completes");
        self.pc
            .local_description()
            .await
            .expect("local description")
            .sdp
    }

    /// Answers the server's `offer`: the answer with every candidate in it.
    pub(crate) async fn answer(&mut self, offer: &str) -> String {
        self.reanswer(offer).await;
        self.gathered.recv().await.expect("gathering completes");
        self.pc
            .local_description()
            .await
            .expect("local description")
            .sdp
    }

    /// Answers the server's new offer on a connected peer connection (no new gathering).
    pub(crate) async fn reanswer(&mut self, offer: &str) -> String {
        let offer = RTCSessionDescription::offer(offer.to_owned()).expect("an SDP offer");
        self.pc
            .set_remote_description(offer)
            .await
            .expect("remote offer");
        let answer = self.pc.create_answer(None).await.expect("answer");
        self.pc
            .set_local_description(answer)
            .await
            .expect("local answer");
        self.pc
            .local_description()
            .await
            .expect("local description")
            .sdp
    }

    /// Takes the server's answer and the candidates it trickled after it.
    pub(crate) async fn accept(&mut self, answer: &str, candidates: &[String]) {
        let answer = RTCSessionDescription::answer(answer.to_owned()).expect("an SDP answer");
        self.pc
            .set_remote_description(answer)
            .await
            .expect("remote answer");
        for candidate in candidates {
            self.pc
                .add_ice_candidate(webrtc::peer_connection::RTCIceCandidateInit {
                    candidate: candidate.clone(),
                    sdp_mid: Some("0".to_owned()),
                    sdp_mline_index: Some(0),
                    ..Default::default()
                })
                .await
                .expect("the server's candidate");
        }
        loop {
            match self.state.recv().await.expect("state changes") {
                RTCPeerConnectionState::Connected => return,
                RTCPeerConnectionState::Failed => panic!("peer connection failed"),
                _ => {}
            }
        }
    }
}

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn rpc(ws: &mut Ws, id: u64, method: &str, params: Value) -> Value {
    let frame = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id});
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .expect("send");
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a reply within 15 s")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("JSON");
            if v.get("id") == Some(&json!(id)) {
                return v;
            }
        }
    }
}

/// A media request: its reply, then the server's UDP candidate, which it trickles as an
/// `iceCandidate` notification right after the reply (the answer carries none).
async fn media_rpc(ws: &mut Ws, id: u64, method: &str, params: Value) -> (Value, Vec<String>) {
    let reply = rpc(ws, id, method, params).await;
    if reply.get("result").is_none() {
        return (reply, Vec::new());
    }
    assert!(
        !reply["result"]["sdpAnswer"]
            .as_str()
            .unwrap_or_default()
            .contains("a=candidate"),
        "the answer carries no candidates: {reply}"
    );
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a candidate within 15 s")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("JSON");
            if v["method"] == "iceCandidate" {
                let candidate = v["params"]["candidate"].as_str().expect("candidate");
                assert!(v["params"]["senderConnectionId"].is_string(), "{v}");
                if candidate.to_ascii_lowercase().contains(" udp ") {
                    return (reply, vec![candidate.to_owned()]);
                }
            }
        }
    }
}

pub(crate) async fn joined(s: &Server, sid: &str, role: &str) -> Ws {
    let token = s.token(sid, &json!({"role": role}).to_string()).await;
    let url = format!("ws://{}/openvidu?sessionId={sid}", s.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket");
    let r = rpc(
        &mut ws,
        0,
        "joinRoom",
        json!({"token": token, "session": sid, "metadata": ""}),
    )
    .await;
    assert!(r.get("result").is_some(), "{r}");
    ws
}

/// A text member of a JSON-RPC reply's result; the reply itself in the panic otherwise.
fn result_text(r: &Value, key: &str) -> String {
    r["result"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned()
}

fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "video/VP8".to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

#[tokio::test]
async fn forwards_rtp_from_a_publisher_to_a_subscriber_and_tears_down() {
    let dir = TempDir::new();
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &[]).await;
    let sid = s.session("{}").await;

    // The publisher sends one VP8 track.
    let mut pws = joined(&s, &sid, "PUBLISHER").await;
    let (publisher, track, stream_id, feeding) = start_publishing(&mut pws, 1).await;

    // Keyframe requests reaching the publisher's application.
    let (plis_tx, mut plis) = mpsc::unbounded_channel();
    let watched = Arc::clone(&track);
    tokio::spawn(async move {
        use webrtc::media_stream::track_local::TrackLocalEvent;
        while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = watched.poll().await {
            if packets
                .iter()
                .any(|p| camerata_server::media::is_keyframe_request(p.as_ref()))
            {
                let _ = plis_tx.send(());
            }
        }
    });

    // The subscriber receives it.
    let mut sws = joined(&s, &sid, "SUBSCRIBER").await;
    let (mut subscriber, offer) = subscriber_offer().await;
    let (r, candidates) = media_rpc(
        &mut sws,
        1,
        "receiveVideoFrom",
        json!({"sender": stream_id, "sdpOffer": offer}),
    )
    .await;
    subscriber
        .accept(
            r["result"]["sdpAnswer"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}")),
            &candidates,
        )
        .await;
    let remote = tokio::time::timeout(Duration::from_secs(15), subscriber.tracks.recv())
        .await
        .expect("a track within 15 s")
        .expect("a remote track");
    // A keyframe was asked for when the subscription started.
    tokio::time::timeout(Duration::from_secs(15), plis.recv())
        .await
        .expect("a keyframe request on subscribe")
        .expect("the publisher's track is open");
    while plis.try_recv().is_ok() {}
    // 40 packets paced at 10 ms: more than KEYFRAME_MIN_GAP since that request.
    let mut received = 0;
    while received < 40 {
        match tokio::time::timeout(Duration::from_secs(15), remote.poll())
            .await
            .expect("packets keep coming")
        {
            Some(TrackRemoteEvent::OnRtpPacket(p)) => {
                assert_ne!(
                    p.header.ssrc, PUBLISHER_SSRC,
                    "each subscriber gets its own SSRC"
                );
                assert_eq!(
                    &p.payload[..5],
                    &[0x10, 0x00, 0x9d, 0x01, 0x2a],
                    "the payload passes unchanged"
                );
                received += 1;
            }
            Some(_) => {}
            None => panic!("the track ended early"),
        }
    }

    // The subscriber asks for a keyframe: the publisher is asked too.
    let media_ssrc = remote.ssrcs().await.first().copied().unwrap_or(0);
    remote
        .write_rtcp(vec![Box::new(
            rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            },
        )])
        .await
        .expect("PLI sent");
    tokio::time::timeout(Duration::from_secs(15), plis.recv())
        .await
        .expect("the subscriber's keyframe request is relayed")
        .expect("the publisher's track is open");

    // The REST view shows the subscription; unpublishing ends it and closes its endpoint.
    let c = s.call("GET", &format!("{API}/sessions/{sid}"), None).await;
    let subs: usize = c.json["connections"]["content"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|x| x["subscribers"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(subs, 1);
    let r = rpc(&mut pws, 3, "unpublishVideo", json!({})).await;
    assert!(r.get("result").is_some(), "{r}");
    closed_by_server(&mut subscriber).await;
    feeding.abort();
    let _ = publisher.pc.close().await;
    let _ = subscriber.pc.close().await;
    s.stop().await;
}

/// The server offers the subscription (`prepareReceiveVideoFrom`, candidates in the offer)
/// and the peer answers (`receiveVideoFrom` with `sdpAnswer`): media flows on the peer's own
/// SSRC, and unpublishing closes the subscription as in the client-offer flow.
#[tokio::test]
async fn the_server_offers_a_subscription_and_the_client_answers() {
    let dir = TempDir::new();
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &[]).await;
    let sid = s.session("{}").await;
    let mut pws = joined(&s, &sid, "PUBLISHER").await;
    let (publisher, _track, stream_id, feeding) = start_publishing(&mut pws, 1).await;

    let mut sws = joined(&s, &sid, "SUBSCRIBER").await;
    let r = rpc(
        &mut sws,
        1,
        "prepareReceiveVideoFrom",
        json!({"sender": stream_id, "reconnect": false}),
    )
    .await;
    let offer = result_text(&r, "sdpOffer");
    assert!(
        offer.contains("a=candidate:"),
        "the offer carries the server's candidates: {offer}"
    );
    assert_eq!(
        offer.matches("m=video").count() + offer.matches("m=audio").count(),
        1,
        "one media section per kind the stream carries (video only here): {offer}"
    );
    let mut subscriber = Peer::new().await;
    let answer = subscriber.answer(&offer).await;
    let r = rpc(
        &mut sws,
        2,
        "receiveVideoFrom",
        json!({"sender": stream_id, "sdpAnswer": answer}),
    )
    .await;
    assert!(r.get("result").is_some(), "{r}");
    // A second answer for the same subscription is refused.
    let again = rpc(
        &mut sws,
        3,
        "receiveVideoFrom",
        json!({"sender": stream_id, "sdpAnswer": "v=0"}),
    )
    .await;
    assert_eq!(again["error"]["code"], 302, "{again}");
    let remote = tokio::time::timeout(Duration::from_secs(15), subscriber.tracks.recv())
        .await
        .expect("a track within 15 s")
        .expect("a remote track");
    let mut received = 0;
    while received < 20 {
        match tokio::time::timeout(Duration::from_secs(15), remote.poll())
            .await
            .expect("packets keep coming")
        {
            Some(TrackRemoteEvent::OnRtpPacket(p)) => {
                assert_ne!(p.header.ssrc, PUBLISHER_SSRC, "the subscriber's own SSRC");
                received += 1;
            }
            Some(_) => {}
            None => panic!("the track ended early"),
        }
    }
    let r = rpc(&mut pws, 3, "unpublishVideo", json!({})).await;
    assert!(r.get("result").is_some(), "{r}");
    closed_by_server(&mut subscriber).await;
    feeding.abort();
    let _ = publisher.pc.close().await;
    let _ = subscriber.pc.close().await;
    s.stop().await;
}

/// A UDP relay between a subscriber and the server that drops one RTP packet going to the
/// subscriber, as a lossy network would. Each side is told the other is at the relay: the
/// subscriber's candidates point at `back`, the server's at `front`.
struct LossyRelay {
    front: u16,
    back: u16,
    server: tokio::sync::watch::Sender<Option<std::net::SocketAddr>>,
    dropped: tokio::sync::oneshot::Receiver<u16>,
}

async fn lossy_relay(client: std::net::SocketAddr) -> LossyRelay {
    let front = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("relay socket");
    let back = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("relay socket");
    let (server_tx, mut server_rx) = tokio::sync::watch::channel(None);
    let (dropped_tx, dropped) = tokio::sync::oneshot::channel();
    let relay = LossyRelay {
        front: front.local_addr().expect("bound").port(),
        back: back.local_addr().expect("bound").port(),
        server: server_tx,
        dropped,
    };
    tokio::spawn(async move {
        let mut rtp_seen = 0u32;
        let mut dropped_tx = Some(dropped_tx);
        let mut a = [0u8; 2048];
        let mut b = [0u8; 2048];
        loop {
            tokio::select! {
                got = front.recv_from(&mut a) => {
                    let Ok((n, _)) = got else { return };
                    let server = *server_rx.borrow_and_update();
                    if let Some(server) = server {
                        let _ = back.send_to(&a[..n], server).await;
                    }
                }
                got = back.recv_from(&mut b) => {
                    let Ok((n, _)) = got else { return };
                    // RTP, not RTCP, STUN or DTLS: version 2, and outside the RTCP packet
                    // types 192-223 that RFC 5761 sets apart.
                    let is_rtp = n > 12 && b[0] >> 6 == 2 && !(64..=95).contains(&(b[1] & 0x7f));
                    if is_rtp {
                        rtp_seen += 1;
                        if rtp_seen == 30
                            && let Some(tx) = dropped_tx.take()
                        {
                            let _ = tx.send(u16::from_be_bytes([b[2], b[3]]));
                            continue;
                        }
                    }
                    let _ = front.send_to(&b[..n], client).await;
                }
            }
        }
    });
    relay
}

/// The port of the first UDP host candidate in an SDP.
fn candidate_port(sdp: &str) -> u16 {
    sdp.lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .find(|l| l.to_ascii_lowercase().contains(" udp "))
        .and_then(|l| l.split_whitespace().nth(5))
        .and_then(|p| p.parse().ok())
        .expect("a UDP candidate")
}

#[tokio::test]
async fn a_lost_packet_is_retransmitted_after_a_nack() {
    let dir = TempDir::new();
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &[]).await;
    let sid = s.session("{}").await;
    let mut pws = joined(&s, &sid, "PUBLISHER").await;
    let (publisher, _, stream_id, feeding) = start_publishing(&mut pws, 1).await;

    // The subscriber reaches the server through a relay that loses one packet.
    let mut sws = joined(&s, &sid, "SUBSCRIBER").await;
    let (mut subscriber, offer) = subscriber_offer().await;
    let client_port = candidate_port(&offer);
    let relay = lossy_relay(([127, 0, 0, 1], client_port).into()).await;
    let offer = offer.replace(
        &format!(" {client_port} typ"),
        &format!(" {} typ", relay.back),
    );
    let (r, candidates) = media_rpc(
        &mut sws,
        1,
        "receiveVideoFrom",
        json!({"sender": stream_id, "sdpOffer": offer}),
    )
    .await;
    let answer = result_text(&r, "sdpAnswer");
    let server_port = candidate_port(&format!("a={}", candidates[0]));
    relay
        .server
        .send(Some(([127, 0, 0, 1], server_port).into()))
        .expect("relay running");
    let candidates = vec![candidates[0].replace(
        &format!(" {server_port} typ"),
        &format!(" {} typ", relay.front),
    )];
    subscriber.accept(&answer, &candidates).await;
    let dropped = relay.dropped;
    let remote = tokio::time::timeout(Duration::from_secs(15), subscriber.tracks.recv())
        .await
        .expect("a track within 15 s")
        .expect("a remote track");
    let lost = tokio::time::timeout(Duration::from_secs(15), dropped)
        .await
        .expect("the relay drops a packet")
        .expect("relay running");
    let recovered = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match remote.poll().await {
                Some(TrackRemoteEvent::OnRtpPacket(p)) if p.header.sequence_number == lost => {
                    return;
                }
                Some(_) => {}
                None => panic!("the track ended"),
            }
        }
    })
    .await;
    assert!(
        recovered.is_ok(),
        "packet {lost} was lost on the way and came back after a NACK"
    );
    feeding.abort();
    let _ = publisher.pc.close().await;
    let _ = subscriber.pc.close().await;
    s.stop().await;
}

/// Publishes `PUBLISHER_SSRC` packets (a VP8-like payload every 10 ms) on a fresh publisher
/// peer; returns the peer, its track, the stream id and the feeding task.
async fn start_publishing(
    ws: &mut Ws,
    id: u64,
) -> (
    Peer,
    Arc<TrackLocalStaticRTP>,
    String,
    tokio::task::JoinHandle<()>,
) {
    let (mut publisher, track, offer) = publisher_offer().await;
    let (r, candidates) = media_rpc(
        ws,
        id,
        "publishVideo",
        json!({"sdpOffer": offer, "hasAudio": false, "hasVideo": true, "doLoopback": false}),
    )
    .await;
    let stream_id = result_text(&r, "id");
    publisher
        .accept(
            r["result"]["sdpAnswer"].as_str().expect("answer"),
            &candidates,
        )
        .await;
    let feeding = feed(Arc::clone(&track));
    (publisher, track, stream_id, feeding)
}

/// A publisher peer with one VP8 track of `PUBLISHER_SSRC`, and its offer.
pub(crate) async fn publisher_offer() -> (Peer, Arc<TrackLocalStaticRTP>, String) {
    let mut publisher = Peer::new().await;
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "pub".to_owned(),
        "pub-video".to_owned(),
        "pub".to_owned(),
        RtpCodecKind::Video,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(PUBLISHER_SSRC),
                ..Default::default()
            },
            codec: vp8(),
            ..Default::default()
        }],
    )));
    publisher
        .pc
        .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
        .await
        .expect("track added");
    let offer = publisher.offer().await;
    (publisher, track, offer)
}

/// Sends a VP8-like packet every 10 ms on `sender` until it fails or is aborted.
pub(crate) fn feed(sender: Arc<TrackLocalStaticRTP>) -> tokio::task::JoinHandle<()> {
    feed_every(sender, 1)
}

/// `feed`, the sequence number advancing by `step` (more than 1: packets missing).
pub(crate) fn feed_every(
    sender: Arc<TrackLocalStaticRTP>,
    step: u16,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seq: u16 = 0;
        let mut ticker = tokio::time::interval(Duration::from_millis(10));
        loop {
            ticker.tick().await;
            seq = seq.wrapping_add(step);
            let packet = rtc::rtp::Packet {
                header: rtc::rtp::Header {
                    version: 2,
                    marker: true,
                    payload_type: 96,
                    sequence_number: seq,
                    timestamp: u32::from(seq) * 3000,
                    ssrc: PUBLISHER_SSRC,
                    ..Default::default()
                },
                payload: bytes::Bytes::from_static(&[0x10, 0x00, 0x9d, 0x01, 0x2a]),
            };
            if sender.write_rtp(packet).await.is_err() {
                return;
            }
        }
    })
}

/// A subscriber peer with one recvonly video transceiver, and its offer.
async fn subscriber_offer() -> (Peer, String) {
    let mut subscriber = Peer::new().await;
    subscriber
        .pc
        .add_transceiver_from_kind(
            RtpCodecKind::Video,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await
        .expect("recvonly transceiver");
    let offer = subscriber.offer().await;
    (subscriber, offer)
}

/// Waits until the server has closed `peer`'s connection (it sends a DTLS close, or the
/// connection fails once the server stops answering).
pub(crate) async fn closed_by_server(peer: &mut Peer) {
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match peer.state.recv().await {
                Some(
                    RTCPeerConnectionState::Closed
                    | RTCPeerConnectionState::Failed
                    | RTCPeerConnectionState::Disconnected,
                )
                | None => return,
                Some(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server closed the endpoint");
}

#[tokio::test]
async fn publish_subscribe_cycles_end_each_subscription() {
    let dir = TempDir::new();
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &[]).await;
    let sid = s.session("{}").await;
    let mut pws = joined(&s, &sid, "PUBLISHER").await;
    let mut sws = joined(&s, &sid, "SUBSCRIBER").await;
    for cycle in 0..3u64 {
        let (publisher, _, stream_id, feeding) = start_publishing(&mut pws, 10 + cycle * 2).await;
        let (mut subscriber, offer) = subscriber_offer().await;
        let (r, candidates) = media_rpc(
            &mut sws,
            10 + cycle,
            "receiveVideoFrom",
            json!({"sender": stream_id, "sdpOffer": offer}),
        )
        .await;
        subscriber
            .accept(
                r["result"]["sdpAnswer"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{r}")),
                &candidates,
            )
            .await;
        let remote = subscriber.tracks.recv().await.expect("a remote track");
        packets(&remote, 5).await;
        let r = rpc(&mut pws, 11 + cycle * 2, "unpublishVideo", json!({})).await;
        assert!(r.get("result").is_some(), "{r}");
        closed_by_server(&mut subscriber).await;
        feeding.abort();
        let _ = publisher.pc.close().await;
        let _ = subscriber.pc.close().await;
    }
    s.stop().await;
}

/// Waits for `n` RTP packets on a remote track.
pub(crate) async fn packets(remote: &Arc<dyn TrackRemote>, n: usize) {
    let mut got = 0;
    while got < n {
        match tokio::time::timeout(Duration::from_secs(15), remote.poll())
            .await
            .expect("packets keep coming")
        {
            Some(TrackRemoteEvent::OnRtpPacket(_)) => got += 1,
            Some(_) => {}
            None => panic!("the track ended"),
        }
    }
}

#[tokio::test]
async fn the_media_loop_shares_one_port_ignores_strangers_and_frees_what_is_closed() {
    use camerata_server::media::{Media, MediaConfig, VideoChoice};
    let media = Media::start(MediaConfig {
        bind_ip: [127, 0, 0, 1].into(),
        announced_ip: [127, 0, 0, 1].into(),
        ports: (0, 0),
        ice_tcp: false,
    })
    .expect("media sockets");
    let port = media.udp_addr().port();

    let (mut publisher, track, offer) = publisher_offer().await;
    let (pub_endpoint, out, answer) = media
        .publish(offer, VideoChoice::Vp8, false)
        .await
        .expect("publish");
    assert!(
        !answer.sdp.contains("a=candidate"),
        "candidates are trickled"
    );
    assert_eq!(answer.candidates.len(), 1, "one UDP candidate");
    assert!(
        answer.candidates[0]
            .candidate
            .contains(&format!(" {port} typ host"))
    );
    let candidates: Vec<String> = answer
        .candidates
        .iter()
        .map(|c| c.candidate.clone())
        .collect();
    publisher.accept(&answer.sdp, &candidates).await;
    let feeding = feed(track);

    let mut subscribers = Vec::new();
    for _ in 0..2 {
        let (mut subscriber, offer) = subscriber_offer().await;
        let (endpoint, answer) = media
            .subscribe(&out, offer, VideoChoice::Vp8, false)
            .await
            .expect("subscribe");
        let candidates: Vec<String> = answer
            .candidates
            .iter()
            .map(|c| c.candidate.clone())
            .collect();
        assert!(
            candidates[0].contains(&format!(" {port} typ host")),
            "the same port"
        );
        subscriber.accept(&answer.sdp, &candidates).await;
        let remote = tokio::time::timeout(Duration::from_secs(15), subscriber.tracks.recv())
            .await
            .expect("a track within 15 s")
            .expect("a remote track");
        packets(&remote, 5).await;
        subscribers.push((subscriber, endpoint, remote));
    }

    // Datagrams from an address no ICE check claimed are dropped and counted; media goes on.
    let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("socket");
    let before = media.stats().await.expect("stats");
    assert_eq!((before.peers, before.streams), (3, 1));
    for junk in [
        &b"\x80\x60\x00\x01junk-rtp"[..],
        b"",
        &[0u8; 20],
        &[0xffu8; 1200],
    ] {
        stranger
            .send_to(junk, media.udp_addr())
            .await
            .expect("sent");
    }
    // A STUN check naming an ICE user that does not exist claims nothing either.
    let mut check = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
    check.extend_from_slice(&[9; 12]);
    check.extend_from_slice(&[0x00, 0x06, 0x00, 0x07]);
    check.extend_from_slice(b"nobody:x\0");
    stranger
        .send_to(&check, media.udp_addr())
        .await
        .expect("sent");
    for (_, _, remote) in &subscribers {
        packets(remote, 5).await;
    }
    // Commands go before datagrams in the loop: wait for it to have read the junk.
    let mut after = media.stats().await.expect("stats");
    for _ in 0..50 {
        if after.unclaimed_datagrams >= before.unclaimed_datagrams + 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = media.stats().await.expect("stats");
    }
    assert!(
        after.unclaimed_datagrams >= before.unclaimed_datagrams + 4,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.addresses, before.addresses, "no address claimed");

    // The loop itself sends every subscriber RTCP sender reports, once a second.
    tokio::time::timeout(Duration::from_secs(5), async {
        while media.stats().await.expect("stats").sender_reports < 2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("sender reports for both subscribers within 5 s");

    // Closing one subscriber frees its peer connection; the other keeps receiving.
    let (first, endpoint, _) = subscribers.remove(0);
    endpoint.close();
    assert_eq!(media.stats().await.expect("stats").peers, 2);
    packets(&subscribers[0].2, 5).await;
    let _ = first.pc.close().await;

    // Dropping the stream's last handle ends its fan-out, publisher and subscribers.
    drop(out);
    drop(pub_endpoint);
    let end = media.stats().await.expect("stats");
    assert_eq!(
        (end.peers, end.streams, end.addresses),
        (0, 0, 0),
        "nothing left: {end:?}"
    );
    feeding.abort();
    let _ = publisher.pc.close().await;
    for (s, _, _) in subscribers {
        let _ = s.pc.close().await;
    }
}
