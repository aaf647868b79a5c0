//! The media loop driven the sans-IO way: no socket, no task, no sleep. Client peers are
//! `rtc` peer connections too; the test hands datagrams between them and the loop, moves
//! time forward itself, and reads what each side sent and received.

use super::*;
use crate::media::interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

const SERVER: &str = "127.0.0.1:40000";
/// A VP8 keyframe's payload start (descriptor, then the keyframe's start code).
const KEYFRAME: [u8; 10] = [0x10, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0x00];

/// A client peer connection at `addr`, standing in for a browser.
struct Client {
    pc: RTCPeerConnection,
    addr: SocketAddr,
    connected: bool,
    /// RTP received: (SSRC, payload).
    rtp: Vec<(u32, Vec<u8>)>,
    /// The sequence numbers of the RTP received, in order.
    seqs: Vec<u16>,
    /// The next sequence number this client sends.
    next_seq: u16,
    /// Keyframe requests received.
    keyframe_requests: usize,
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("a socket address")
}

impl Client {
    fn new(at: &str, now: Instant) -> Self {
        let mut engine = MediaEngine::default();
        engine.register_default_codecs().expect("codecs");
        let registry = interceptors(&mut engine).expect("interceptors");
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .build();
        let pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .build(now)
            .expect("a client peer connection");
        Self {
            pc,
            addr: addr(at),
            connected: false,
            rtp: Vec::new(),
            seqs: Vec::new(),
            next_seq: 1000,
            keyframe_requests: 0,
        }
    }

    /// The client's host candidate, added after its local description is set.
    fn add_host_candidate(&mut self) {
        let host = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: self.addr.ip().to_string(),
                port: self.addr.port(),
                component: 1,
                ..Default::default()
            },
            tcp_type: rtc::ice::tcp_type::TcpType::Unspecified,
        }
        .new_candidate_host()
        .expect("a host candidate");
        let init = RTCIceCandidate::from(&host)
            .to_json()
            .expect("candidate JSON");
        self.pc.add_local_candidate(init).expect("local candidate");
    }

    /// An offer for the tracks added so far, with the client's candidate in it.
    fn offer(&mut self, now: Instant) -> String {
        let offer = self.pc.create_offer(None).expect("an offer");
        self.pc
            .set_local_description(now, offer)
            .expect("local offer");
        self.add_host_candidate();
        self.pc.local_description().expect("local description").sdp
    }

    /// Takes the server's SDP (`answer` or offer) and the candidates it lists.
    fn accept(&mut self, description: &Description, answer: bool, now: Instant) {
        let remote = if answer {
            RTCSessionDescription::answer(description.sdp.clone())
        } else {
            RTCSessionDescription::offer(description.sdp.clone())
        };
        self.pc
            .set_remote_description(now, remote.expect("an SDP"))
            .expect("remote description");
        for c in &description.candidates {
            self.pc
                .add_remote_candidate(RTCIceCandidateInit {
                    candidate: c.candidate.clone(),
                    sdp_mid: Some(c.sdp_mid.clone()),
                    sdp_mline_index: Some(c.sdp_mline_index),
                    ..Default::default()
                })
                .expect("the server's candidate");
        }
    }

    /// Reads what the peer connection has for the application.
    fn drain(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                rtc::peer_connection::state::RTCPeerConnectionState::Connected,
            ) = event
            {
                self.connected = true;
            }
        }
        while let Some(message) = self.pc.poll_read() {
            match message.message {
                RTCMessage::RtpPacket(_, p) => {
                    self.seqs.push(p.header.sequence_number);
                    self.rtp.push((p.header.ssrc, p.payload.to_vec()));
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    self.keyframe_requests += packets
                        .iter()
                        .filter(|p| is_keyframe_request(p.as_ref()))
                        .count();
                }
                _ => {}
            }
        }
    }
}

/// The loop under test, with no socket.
fn engine(now: Instant) -> Engine {
    let net = Net {
        udp: None,
        tcp: HashMap::new(),
        sent: Vec::new(),
    };
    Engine::new(net, addr(SERVER), None, now).expect("an engine")
}

/// Runs the loop's command and returns its reply.
fn ask<T>(
    engine: &mut Engine,
    now: Instant,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> T {
    let (reply, mut answer) = oneshot::channel();
    engine.command(make(reply), now);
    answer.try_recv().expect("the loop replies at once")
}

/// Moves `steps` ticks of 2 ms: datagrams from clients to the loop and back, then timers.
fn pump(engine: &mut Engine, clients: &mut [&mut Client], now: &mut Instant, steps: usize) {
    let server = addr(SERVER);
    for _ in 0..steps {
        for c in clients.iter_mut() {
            while let Some(out) = c.pc.poll_write() {
                engine.datagram(c.addr, false, &out.message, *now);
            }
        }
        for (to, message) in std::mem::take(&mut engine.net.sent) {
            if let Some(c) = clients.iter_mut().find(|c| c.addr == to) {
                let _ = c.pc.handle_read(TaggedBytesMut {
                    now: *now,
                    transport: TransportContext {
                        local_addr: to,
                        peer_addr: server,
                        ecn: None,
                        transport_protocol: TransportProtocol::UDP,
                    },
                    message,
                });
            }
        }
        *now += Duration::from_millis(2);
        engine.timers(*now);
        for c in clients.iter_mut() {
            if c.pc.poll_timeout().is_some_and(|t| t <= *now) {
                let _ = c.pc.handle_timeout(*now);
            }
            c.drain();
        }
    }
}

/// A publisher with one VP8 track, published through the loop as `stream`; returns the
/// client, its sender and the track's SSRC.
fn publisher(
    engine: &mut Engine,
    stream: StreamKey,
    now: Instant,
) -> (Client, RTCRtpSenderId, u32) {
    publisher_at(engine, stream, "127.0.0.1:50001", now)
}

/// `publisher`, with the client at `at`.
fn publisher_at(
    engine: &mut Engine,
    stream: StreamKey,
    at: &str,
    now: Instant,
) -> (Client, RTCRtpSenderId, u32) {
    let mut client = Client::new(at, now);
    let ssrc = 0x1111_2222;
    let track = MediaStreamTrack::new(
        "pub".to_owned(),
        "pub-video".to_owned(),
        "pub".to_owned(),
        RtpCodecKind::Video,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: super::super::codec::codec(RtpCodecKind::Video, VideoChoice::Vp8),
            ..Default::default()
        }],
    );
    let sender = client.pc.add_track(track).expect("a video track");
    let offer = client.offer(now);
    let (_, answer) = ask(engine, now, |reply| Command::Publish {
        stream,
        offer,
        video: VideoChoice::Vp8,
        candidates_in_sdp: false,
        reply,
    })
    .expect("the loop answers the publisher");
    client.accept(&answer, true, now);
    (client, sender, ssrc)
}

/// Sends `n` VP8 packets (the first a keyframe start) from the publisher.
fn send_video(client: &mut Client, sender: RTCRtpSenderId, ssrc: u32, n: u16, now: Instant) {
    let payload_type = negotiated_payload_type(&mut client.pc, sender).expect("a negotiated codec");
    for _ in 0..n {
        let seq = client.next_seq;
        client.next_seq = seq.wrapping_add(1);
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                marker: true,
                payload_type,
                sequence_number: seq,
                timestamp: 90_000 + u32::from(seq) * 3000,
                ssrc,
                ..Default::default()
            },
            payload: bytes::Bytes::copy_from_slice(&KEYFRAME),
        };
        client
            .pc
            .rtp_sender(sender)
            .expect("the sender")
            .write_rtp(now, packet)
            .expect("RTP written");
    }
}

/// ICE and DTLS between the loop and both clients over simulated time: at most 10 s of it.
fn connect(
    engine: &mut Engine,
    publisher: &mut Client,
    subscriber: &mut Client,
    now: &mut Instant,
) {
    for _ in 0..100 {
        pump(engine, &mut [&mut *publisher, &mut *subscriber], now, 50);
        if publisher.connected && subscriber.connected {
            return;
        }
    }
    panic!("the clients did not connect");
}

/// The publisher sends `n` packets on `sender` (SSRC `ssrc`); 40 ms pass.
fn forward(
    engine: &mut Engine,
    publisher: &mut Client,
    subscriber: &mut Client,
    (sender, ssrc, n): (RTCRtpSenderId, u32, u16),
    now: &mut Instant,
) {
    send_video(publisher, sender, ssrc, n, *now);
    pump(engine, &mut [&mut *publisher, &mut *subscriber], now, 20);
}

#[test]
fn a_publisher_reaches_a_subscriber_that_offers_with_time_as_input() {
    let mut now = Instant::now();
    let mut engine = engine(now);
    let (mut publisher, sender, ssrc) = publisher(&mut engine, StreamKey(1), now);

    let mut subscriber = video_subscriber(&mut engine, StreamKey(1), "127.0.0.1:50002", now);

    connect(&mut engine, &mut publisher, &mut subscriber, &mut now);

    forward(
        &mut engine,
        &mut publisher,
        &mut subscriber,
        (sender, ssrc, 20),
        &mut now,
    );
    assert_eq!(subscriber.rtp.len(), 20, "every packet forwarded once");
    // The subscriber wanted a keyframe since it came up: asked for once the source showed.
    assert!(
        publisher.keyframe_requests > 0,
        "a keyframe request reached the publisher"
    );
    for (got_ssrc, payload) in &subscriber.rtp {
        assert_ne!(*got_ssrc, ssrc, "the subscriber's own SSRC");
        assert_eq!(payload.as_slice(), &KEYFRAME[..], "the payload unchanged");
    }
    // Closing the subscriber frees it in the loop.
    let stats = |engine: &mut Engine, now| ask(engine, now, Command::Stats);
    assert_eq!(stats(&mut engine, now).peers, 2);
    engine.command(Command::ClosePeer(PeerKey(2)), now);
    assert_eq!(stats(&mut engine, now).peers, 1);
}

#[test]
fn the_loop_offers_a_subscription_and_forwards_once_answered() {
    let mut now = Instant::now();
    let mut engine = engine(now);
    let (mut publisher, sender, ssrc) = publisher(&mut engine, StreamKey(7), now);
    let (peer, offer) = ask(&mut engine, now, |reply| Command::Offer {
        stream: StreamKey(7),
        audio: false,
        video_track: true,
        video: VideoChoice::Vp8,
        candidates_in_sdp: false,
        reply,
    })
    .expect("the loop offers");
    assert!(
        !offer.sdp.contains("a=candidate:") && !offer.candidates.is_empty(),
        "candidates listed for trickling, not in the SDP"
    );
    assert_eq!(offer.sdp.matches("m=video").count(), 1);
    assert_eq!(offer.sdp.matches("m=audio").count(), 0);

    let mut subscriber = Client::new("127.0.0.1:50003", now);
    let sdp = answer_offer(&mut engine, &mut subscriber, peer, &offer, now);
    // Only one answer per offer.
    assert!(
        ask(&mut engine, now, |reply| Command::Answer(peer, sdp, reply)).is_err(),
        "a second answer is refused"
    );
    connect(&mut engine, &mut publisher, &mut subscriber, &mut now);
    forward(
        &mut engine,
        &mut publisher,
        &mut subscriber,
        (sender, ssrc, 10),
        &mut now,
    );
    assert_eq!(subscriber.rtp.len(), 10, "every packet forwarded once");
}

#[test]
fn a_paused_subscriber_resumes_with_one_numbering_and_a_keyframe_request() {
    let mut now = Instant::now();
    let mut engine = engine(now);
    let (mut publisher, sender, ssrc) = publisher(&mut engine, StreamKey(9), now);
    let (peer, offer) = ask(&mut engine, now, |reply| Command::Offer {
        stream: StreamKey(9),
        audio: false,
        video_track: true,
        video: VideoChoice::Vp8,
        candidates_in_sdp: true,
        reply,
    })
    .expect("the loop offers");
    let mut subscriber = Client::new("127.0.0.1:50004", now);
    answer_offer(&mut engine, &mut subscriber, peer, &offer, now);
    connect(&mut engine, &mut publisher, &mut subscriber, &mut now);
    let packets = (sender, ssrc, 10);
    forward(
        &mut engine,
        &mut publisher,
        &mut subscriber,
        packets,
        &mut now,
    );
    assert_eq!(subscriber.rtp.len(), 10);
    let sending = |on| Command::Sending {
        peer,
        stream: None,
        video: None,
        on,
    };
    engine.command(sending(false), now);
    forward(
        &mut engine,
        &mut publisher,
        &mut subscriber,
        packets,
        &mut now,
    );
    assert_eq!(subscriber.rtp.len(), 10, "nothing while paused");
    // Past the least gap between keyframe requests, so the resume's request goes out.
    pump(
        &mut engine,
        &mut [&mut publisher, &mut subscriber],
        &mut now,
        (KEYFRAME_MIN_GAP.as_millis() / 2) as usize + 10,
    );
    let asked = publisher.keyframe_requests;
    engine.command(sending(true), now);
    forward(
        &mut engine,
        &mut publisher,
        &mut subscriber,
        packets,
        &mut now,
    );
    assert_eq!(subscriber.rtp.len(), 20, "sent again once resumed");
    let seqs = &subscriber.seqs;
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "one numbering across the pause: {seqs:?}"
    );
    assert!(
        publisher.keyframe_requests > asked,
        "the resumed video asked for a keyframe"
    );
}

/// The client answers the server's (re)offer; the answer goes to the loop. Returns it.
fn answer_offer(
    engine: &mut Engine,
    client: &mut Client,
    peer: PeerKey,
    offer: &Description,
    now: Instant,
) -> String {
    client.accept(offer, false, now);
    let answer = client.pc.create_answer(None).expect("an answer");
    client
        .pc
        .set_local_description(now, answer)
        .expect("local answer");
    if client
        .pc
        .local_description()
        .is_some_and(|d| !d.sdp.contains("a=candidate:"))
    {
        client.add_host_candidate();
    }
    let sdp = client.pc.local_description().expect("answer").sdp;
    ask(engine, now, |reply| {
        Command::Answer(peer, sdp.clone(), reply)
    })
    .expect("the answer is taken");
    sdp
}

#[test]
fn one_subscriber_peer_connection_takes_a_second_stream_then_drops_the_first() {
    let mut now = Instant::now();
    let mut engine = engine(now);
    let (mut first, first_sender, first_ssrc) =
        publisher_at(&mut engine, StreamKey(1), "127.0.0.1:50011", now);
    let (mut second, second_sender, second_ssrc) =
        publisher_at(&mut engine, StreamKey(2), "127.0.0.1:50012", now);
    let (peer, offer) = ask(&mut engine, now, |reply| Command::Offer {
        stream: StreamKey(1),
        audio: false,
        video_track: true,
        video: VideoChoice::Vp8,
        candidates_in_sdp: true,
        reply,
    })
    .expect("the loop offers");
    let mut subscriber = Client::new("127.0.0.1:50013", now);
    answer_offer(&mut engine, &mut subscriber, peer, &offer, now);
    for _ in 0..100 {
        pump(
            &mut engine,
            &mut [&mut first, &mut second, &mut subscriber],
            &mut now,
            50,
        );
        if first.connected && second.connected && subscriber.connected {
            break;
        }
    }
    assert!(subscriber.connected, "the subscriber connected");
    send_video(&mut first, first_sender, first_ssrc, 10, now);
    pump(
        &mut engine,
        &mut [&mut first, &mut second, &mut subscriber],
        &mut now,
        20,
    );
    assert_eq!(subscriber.rtp.len(), 10, "the first stream arrives");

    // The second stream joins the same peer connection: a new offer, answered.
    let more = ask(&mut engine, now, |reply| Command::Extend {
        peer,
        stream: StreamKey(2),
        audio: false,
        video_track: true,
        video: VideoChoice::Vp8,
        reply,
    })
    .expect("the loop offers again");
    assert_eq!(more.sdp.matches("m=video").count(), 2, "{}", more.sdp);
    answer_offer(&mut engine, &mut subscriber, peer, &more, now);
    pump(
        &mut engine,
        &mut [&mut first, &mut second, &mut subscriber],
        &mut now,
        50,
    );
    send_video(&mut second, second_sender, second_ssrc, 10, now);
    send_video(&mut first, first_sender, first_ssrc, 10, now);
    pump(
        &mut engine,
        &mut [&mut first, &mut second, &mut subscriber],
        &mut now,
        20,
    );
    let ssrcs: std::collections::HashSet<u32> = subscriber.rtp.iter().map(|(s, _)| *s).collect();
    assert_eq!(subscriber.rtp.len(), 30, "both streams arrive");
    assert_eq!(ssrcs.len(), 2, "each on its own track");

    // The first stream leaves it: its section goes inactive, its packets stop.
    let less = ask(&mut engine, now, |reply| Command::Shrink {
        peer,
        stream: Some(StreamKey(1)),
        reply,
    })
    .expect("the loop offers again");
    answer_offer(&mut engine, &mut subscriber, peer, &less, now);
    pump(
        &mut engine,
        &mut [&mut first, &mut second, &mut subscriber],
        &mut now,
        50,
    );
    let before = subscriber.rtp.len();
    send_video(&mut first, first_sender, first_ssrc, 10, now);
    send_video(&mut second, second_sender, second_ssrc, 10, now);
    pump(
        &mut engine,
        &mut [&mut first, &mut second, &mut subscriber],
        &mut now,
        20,
    );
    assert_eq!(
        subscriber.rtp.len() - before,
        10,
        "only the second stream arrives"
    );
    assert_eq!(
        ask(&mut engine, now, Command::Stats).peers,
        3,
        "one peer connection each"
    );
}

#[test]
fn voice_activity_is_the_average_level_of_each_window() {
    let (state, watching) = watch::channel(Speech::default());
    let mut levels = Levels {
        every: 4,
        threshold: 50,
        sum: 0,
        count: 0,
        state,
    };
    // Silence (127), then a window averaging 40 dBov: talking, told once.
    for level in [127, 127, 127, 127, 30, 50, 40, 40, 30, 50, 40, 40] {
        levels.add(level);
    }
    let now = *watching.borrow();
    assert!(now.talking && (now.average - 40.0).abs() < 0.01, "{now:?}");
    assert!(watching.has_changed().expect("open"));
    let mut watching = watching;
    watching.borrow_and_update();
    // The voice-activity bit (0x80) is not part of the level; quiet again: stopped.
    for level in [0x80 | 127, 127, 100, 100] {
        levels.add(level);
    }
    assert!(watching.has_changed().expect("open"));
    assert!(!watching.borrow().talking);
}

#[test]
fn a_strangers_datagrams_are_counted_and_answered_with_nothing() {
    let now = Instant::now();
    let mut engine = engine(now);
    engine.datagram(addr("127.0.0.1:1234"), false, b"junk from nobody", now);
    // A STUN check naming a username no peer connection has.
    let mut check = vec![0u8, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    check.extend_from_slice(&[7u8; 12]);
    engine.datagram(addr("127.0.0.1:1235"), false, &check, now);
    let stats = ask(&mut engine, now, Command::Stats);
    assert_eq!(stats.unclaimed_datagrams, 2);
    assert!(engine.net.sent.is_empty(), "nothing is sent to a stranger");
}

/// A recv-only VP8 client at `at`, subscribed through `engine` to `stream`.
fn video_subscriber(engine: &mut Engine, stream: StreamKey, at: &str, now: Instant) -> Client {
    let mut subscriber = Client::new(at, now);
    subscriber
        .pc
        .add_transceiver_from_kind(
            RtpCodecKind::Video,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .expect("a receiving transceiver");
    let offer = subscriber.offer(now);
    let (_, answer) = ask(engine, now, |reply| Command::Subscribe {
        stream,
        offer,
        video: VideoChoice::Vp8,
        candidates_in_sdp: false,
        reply,
    })
    .expect("the loop answers the subscriber");
    subscriber.accept(&answer, true, now);
    subscriber
}

/// Two loops (an owner node with a publisher, an edge node with a subscriber) on one
/// simulated network.
struct TwoNodes {
    owner: Engine,
    edge: Engine,
    publisher: Client,
    subscriber: Client,
    now: Instant,
}

impl TwoNodes {
    const OWNER: &str = SERVER;
    const EDGE: &str = "127.0.0.1:40001";

    /// Moves `steps` ticks of 2 ms: datagrams go wherever they are addressed, loop to loop
    /// included; `lose` decides which owner-to-edge datagrams the network loses.
    fn pump(&mut self, steps: usize, lose: &mut dyn FnMut(&[u8]) -> bool) {
        let (a_addr, b_addr) = (addr(Self::OWNER), addr(Self::EDGE));
        for _ in 0..steps {
            while let Some(out) = self.publisher.pc.poll_write() {
                self.owner
                    .datagram(self.publisher.addr, false, &out.message, self.now);
            }
            while let Some(out) = self.subscriber.pc.poll_write() {
                self.edge
                    .datagram(self.subscriber.addr, false, &out.message, self.now);
            }
            for (from, sent) in [
                (a_addr, std::mem::take(&mut self.owner.net.sent)),
                (b_addr, std::mem::take(&mut self.edge.net.sent)),
            ] {
                for (to, message) in sent {
                    if to == b_addr {
                        if !lose(&message) {
                            self.edge.datagram(from, false, &message, self.now);
                        }
                    } else if to == a_addr {
                        self.owner.datagram(from, false, &message, self.now);
                    } else {
                        let client = if to == self.publisher.addr {
                            &mut self.publisher
                        } else {
                            &mut self.subscriber
                        };
                        let _ = client.pc.handle_read(TaggedBytesMut {
                            now: self.now,
                            transport: TransportContext {
                                local_addr: to,
                                peer_addr: from,
                                ecn: None,
                                transport_protocol: TransportProtocol::UDP,
                            },
                            message,
                        });
                    }
                }
            }
            self.now += Duration::from_millis(2);
            self.owner.timers(self.now);
            self.edge.timers(self.now);
            for c in [&mut self.publisher, &mut self.subscriber] {
                if c.pc.poll_timeout().is_some_and(|t| t <= self.now) {
                    let _ = c.pc.handle_timeout(self.now);
                }
                c.drain();
            }
        }
    }
}

#[test]
fn a_stream_relayed_to_another_node_reaches_its_subscribers_with_keyframes_and_nacks_passed_back() {
    let now = Instant::now();
    let mut owner = engine(now);
    let mut edge = Engine::new(
        Net {
            udp: None,
            tcp: HashMap::new(),
            sent: Vec::new(),
        },
        addr(TwoNodes::EDGE),
        None,
        now,
    )
    .expect("an edge loop");
    let (publisher, sender, ssrc) = publisher(&mut owner, StreamKey(1), now);
    let keys = RelayKeys::derive(b"the cluster key", 77);
    edge.command(
        Command::RelayIn {
            stream: StreamKey(9),
            relay: 77,
            from: addr(TwoNodes::OWNER),
            keys: keys.clone(),
            video: VideoChoice::Vp8,
        },
        now,
    );
    let relayed = ask(&mut owner, now, |reply| Command::RelayOut {
        stream: StreamKey(1),
        relay: 77,
        to: addr(TwoNodes::EDGE),
        keys,
        reply,
    });
    assert!(relayed, "the owner relays a stream it has");
    let subscriber = video_subscriber(&mut edge, StreamKey(9), "127.0.0.1:50002", now);
    let mut n = TwoNodes {
        owner,
        edge,
        publisher,
        subscriber,
        now,
    };
    let mut keep_all = |_: &[u8]| false;
    for _ in 0..100 {
        n.pump(50, &mut keep_all);
        if n.publisher.connected && n.subscriber.connected {
            break;
        }
    }
    assert!(
        n.publisher.connected && n.subscriber.connected,
        "both connected"
    );

    send_video(&mut n.publisher, sender, ssrc, 20, n.now);
    n.pump(20, &mut keep_all);
    assert_eq!(
        n.subscriber.rtp.len(),
        20,
        "every packet relayed once and forwarded"
    );
    for (_, payload) in &n.subscriber.rtp {
        assert_eq!(payload.as_slice(), &KEYFRAME[..], "the payload unchanged");
    }
    assert!(
        n.publisher.keyframe_requests > 0,
        "the edge's keyframe request reached the publisher through the owner"
    );
    assert!(n.owner.counts.keyframe_requests_received > 0);

    // The network between the nodes loses three video packets: the subscriber NACKs them,
    // the edge (whose history lacks them) asks the owner, the owner sends them again.
    let mut lost = 0;
    let mut lose_three = |d: &[u8]| {
        let video = relay::header(d).is_some() && d.len() > 40;
        if video && lost < 3 {
            lost += 1;
            return true;
        }
        false
    };
    send_video(&mut n.publisher, sender, ssrc, 10, n.now);
    n.pump(20, &mut lose_three);
    assert!(
        n.subscriber.rtp.len() < 30,
        "some packets were lost between the nodes"
    );
    n.pump(500, &mut keep_all);
    assert_eq!(
        n.subscriber.rtp.len(),
        30,
        "the lost packets came again through the owner"
    );
    assert!(n.owner.retransmitted >= 3);

    // A stranger's datagram that looks like the relay's is refused; dropping the relay stops it.
    let before = n.edge.unclaimed;
    let forged = [
        0xFF, b'C', b'R', 1, 0, 0, 0, 0, 0, 0, 0, 77, 0, 0, 0, 0, 0, 0, 0, 9, 1, 2, 3,
    ];
    n.edge
        .datagram(addr("127.0.0.1:50009"), false, &forged, n.now);
    assert_eq!(n.edge.unclaimed, before + 1);
    n.owner.command(Command::DropRelay(77), n.now);
    send_video(&mut n.publisher, sender, ssrc, 5, n.now);
    n.pump(20, &mut keep_all);
    assert_eq!(
        n.subscriber.rtp.len(),
        30,
        "nothing relayed after the relay was dropped"
    );
}
