//! What peers negotiate: Opus and the room's one video codec, and the interceptor chains: the
//! server's per role (a publisher's: NACK generation, receiver reports, transport-wide
//! congestion feedback; a subscriber's: only feedback handed to the application) and the
//! clients' of the tests and load tool (webrtc-rs's defaults); each ends by handing keyframe
//! requests to the application.

use super::{MediaError, VideoChoice};
use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};

fn feedback(typ: &str, parameter: &str) -> rtc::rtp_transceiver::rtp_sender::RTCPFeedback {
    rtc::rtp_transceiver::rtp_sender::RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    }
}

/// The codec of `kind` that peers of a room negotiate.
pub(super) fn codec(kind: RtpCodecKind, video: VideoChoice) -> RTCRtpCodec {
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
pub(super) fn engine(video: VideoChoice) -> Result<MediaEngine, MediaError> {
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

/// An interceptor that hands RTCP feedback the application acts on to it: keyframe requests
/// (PLI, FIR), receiver reports (for the metrics' loss and round-trip time) and, when asked
/// for, NACKs (the server answers them from its own history of
/// each stream). Inbound RTCP otherwise ends at the last interceptor; placed last, this one
/// sees RTCP after every interceptor that acts on it and marks only that feedback for
/// delivery.
#[derive(Default)]
pub struct FeedbackToApplication {
    nacks: bool,
    read: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
    write: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
}

impl FeedbackToApplication {
    /// Delivers NACKs to the application too.
    pub fn with_nacks() -> Self {
        Self {
            nacks: true,
            ..Self::default()
        }
    }
}

/// Whether an RTCP packet asks for a keyframe.
pub fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// The NACK an RTCP packet is, if it is one.
pub fn as_nack(packet: &dyn rtc::rtcp::Packet) -> Option<&TransportLayerNack> {
    packet.as_any().downcast_ref::<TransportLayerNack>()
}

impl rtc::sansio::Protocol<rtc::interceptor::TaggedPacket, rtc::interceptor::TaggedPacket, ()>
    for FeedbackToApplication
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
                .filter(|p| {
                    is_keyframe_request(p.as_ref())
                        || (self.nacks && as_nack(p.as_ref()).is_some())
                        || p.as_any()
                            .is::<rtc::rtcp::receiver_report::ReceiverReport>()
                })
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

impl rtc::interceptor::Interceptor for FeedbackToApplication {
    fn bind_local_stream(&mut self, _info: &rtc::interceptor::StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &rtc::interceptor::StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &rtc::interceptor::StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &rtc::interceptor::StreamInfo) {}
}

/// Packets the NACK responder of `interceptors` keeps for retransmission: about 1.5 s of a
/// 1 Mbps video stream, far beyond any round trip a retransmission still helps with. (The
/// webrtc-rs default, 1024, costs about 100 KiB per peer connection in slots alone.)
pub const NACK_HISTORY: u16 = 256;

/// The audio-level header extension (RFC 6464).
pub(super) const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// The interceptors of every peer connection: NACK retransmission (a history of
/// `NACK_HISTORY` packets) and NACK generation, transport-wide congestion feedback to
/// publishers, RTCP sender and receiver reports (webrtc-rs's defaults otherwise), then
/// keyframe requests to the application.
pub fn interceptors(engine: &mut MediaEngine) -> Result<Registry, MediaError> {
    use rtc::interceptor::{NackGeneratorBuilder, NackResponderBuilder, Slot};
    use rtc::peer_connection::configuration::interceptor_registry as defaults;
    for parameter in ["", "pli"] {
        engine.register_feedback(feedback("nack", parameter), RtpCodecKind::Video);
    }
    defaults::configure_simulcast_extension_headers(engine).map_err(stack)?;
    let registry = Registry::new()
        .with(
            Slot::NackResponder,
            NackResponderBuilder::new().with_size(NACK_HISTORY).build(),
        )
        .with(Slot::NackGenerator, NackGeneratorBuilder::new().build());
    let registry = defaults::configure_twcc_receiver_only(registry, engine).map_err(stack)?;
    Ok(defaults::configure_rtcp_reports(registry)
        .with(Slot::from(14_000), FeedbackToApplication::default()))
}

/// The leaner chain of one role of a server peer connection. A publisher's peer connection
/// only receives media: NACK generation, transport-wide congestion feedback and receiver
/// reports, then keyframe requests to the application. A subscriber's only sends it, and
/// the loop does a sender's work itself: it answers NACKs from one history per stream
/// (instead of a copy of every packet per subscriber) and writes sender reports, so its
/// chain is the one stage that hands keyframe requests and NACKs to the application. Every
/// interceptor left out is one stage less that each forwarded packet passes through, and
/// its state per peer connection.
pub(super) fn server_interceptors(
    engine: &mut MediaEngine,
    publisher: bool,
) -> Result<Registry, MediaError> {
    use rtc::interceptor::{NackGeneratorBuilder, ReceiverReportBuilder, Slot};
    use rtc::peer_connection::configuration::interceptor_registry as defaults;
    for parameter in ["", "pli"] {
        engine.register_feedback(feedback("nack", parameter), RtpCodecKind::Video);
    }
    defaults::configure_simulcast_extension_headers(engine).map_err(stack)?;
    if publisher {
        // Publishers put each audio packet's level in it: voice activity for the doors.
        engine
            .register_header_extension(
                rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionCapability {
                    uri: AUDIO_LEVEL_URI.to_owned(),
                },
                RtpCodecKind::Audio,
                None,
            )
            .map_err(stack)?;
    }
    Ok(if publisher {
        let registry = Registry::new()
            .with(Slot::NackGenerator, NackGeneratorBuilder::new().build())
            .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build());
        defaults::configure_twcc_receiver_only(registry, engine)
            .map_err(stack)?
            .with(Slot::from(14_000), FeedbackToApplication::default())
    } else {
        Registry::new().with(Slot::from(14_000), FeedbackToApplication::with_nacks())
    })
}

fn stack(e: impl std::fmt::Display) -> MediaError {
    MediaError::Stack(e.to_string())
}
