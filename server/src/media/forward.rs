//! Pure pieces of forwarding, free of I/O: keeping a subscriber's stream continuous when its
//! source changes, and finding which peer connection a datagram from an unknown address is for.

/// Offsets that keep sequence numbers and timestamps continuous when a forwarder's source
/// changes.
#[derive(Default)]
pub(super) struct Continuity {
    seq_offset: u16,
    ts_offset: u32,
    last_seq: u16,
    last_ts: u32,
    started: bool,
    pub(super) rebase: bool,
}

impl Continuity {
    /// The timestamp step put between the last packet of the old source and the first of the
    /// new one (one frame at 30 fps in the 90 kHz clock; harmless for audio).
    const GAP: u32 = 3000;

    pub(super) fn apply(&mut self, header: &mut rtc::rtp::Header) {
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

/// A stream's forwarded packets kept for retransmission after a NACK: one history per stream
/// and kind, shared by every subscriber (they all get the same sequence numbers; only SSRC
/// and payload type differ), so a subscriber costs no history of its own. Keeping a packet
/// clones a header without extensions and a shared payload: no allocation.
#[derive(Default)]
pub(super) struct History {
    slots: Vec<Option<rtc::rtp::Packet>>,
}

impl History {
    /// Packets kept: about 3 s of a 1 Mbps video stream. A power of two, so slots stay in
    /// step across the wrap of the 16-bit sequence number.
    pub(super) const SIZE: usize = 512;

    /// Keeps `packet` (as forwarded), replacing the one `SIZE` packets older.
    pub(super) fn keep(&mut self, packet: &rtc::rtp::Packet) {
        if self.slots.is_empty() {
            self.slots.resize_with(Self::SIZE, || None);
        }
        self.slots[usize::from(packet.header.sequence_number) % Self::SIZE] = Some(packet.clone());
    }

    /// The packet forwarded with sequence number `seq`, if still kept.
    pub(super) fn get(&self, seq: u16) -> Option<&rtc::rtp::Packet> {
        self.slots
            .get(usize::from(seq) % Self::SIZE)?
            .as_ref()
            .filter(|p| p.header.sequence_number == seq)
    }
}

/// Where a forwarded stream's RTP clock stands against the monotonic clock, for sender
/// reports: the timestamp of the newest frame and when its first packet was forwarded (as
/// webrtc-rs's sender report interceptor does, so a frame spread over many packets does not
/// drag the mapping).
#[derive(Default, Clone, Copy)]
pub(super) struct RtpClock {
    newest: Option<(u32, std::time::Instant)>,
}

impl RtpClock {
    /// Notes a forwarded packet's timestamp; an older frame's (reordered) is ignored.
    pub(super) fn observe(&mut self, timestamp: u32, now: std::time::Instant) {
        let newer = self.newest.is_none_or(|(ts, _)| {
            let ahead = timestamp.wrapping_sub(ts);
            ahead != 0 && ahead < 1 << 31
        });
        if newer {
            self.newest = Some((timestamp, now));
        }
    }

    /// The RTP timestamp at `now` for a clock of `rate` Hz; `None` before any packet.
    pub(super) fn at(&self, now: std::time::Instant, rate: u32) -> Option<u32> {
        let (ts, at) = self.newest?;
        let elapsed = now.saturating_duration_since(at).as_secs_f64();
        Some(ts.wrapping_add((elapsed * f64::from(rate)) as u32))
    }
}

/// Whether an RTP payload of `codec` starts a keyframe: the first packet of a VP8 or VP9
/// intra frame, or an H.264 packet carrying (the start of) an IDR slice or a sequence
/// parameter set. Reads a few header bytes; never allocates.
pub fn starts_keyframe(payload: &[u8], codec: super::VideoChoice) -> bool {
    use super::VideoChoice;
    match codec {
        VideoChoice::Vp8 => {
            // RFC 7741 payload descriptor, then the VP8 payload header.
            let Some(&b0) = payload.first() else {
                return false;
            };
            if b0 & 0x10 == 0 || b0 & 0x07 != 0 {
                return false; // not the start of partition 0
            }
            let mut at = 1;
            if b0 & 0x80 != 0 {
                let Some(&x) = payload.get(1) else {
                    return false;
                };
                at = 2;
                if x & 0x80 != 0 {
                    // PictureID: two bytes when its M bit is set.
                    at += if payload.get(at).is_some_and(|b| b & 0x80 != 0) {
                        2
                    } else {
                        1
                    };
                }
                if x & 0x40 != 0 {
                    at += 1;
                }
                if x & 0x30 != 0 {
                    at += 1;
                }
            }
            payload.get(at).is_some_and(|h| h & 0x01 == 0)
        }
        VideoChoice::Vp9 => {
            // draft-ietf-payload-vp9: P (inter-picture predicted) clear, B (start of frame) set.
            payload
                .first()
                .is_some_and(|b| b & 0x40 == 0 && b & 0x08 != 0)
        }
        VideoChoice::H264 => {
            let Some(&b0) = payload.first() else {
                return false;
            };
            match b0 & 0x1f {
                5 | 7 => true,
                // STAP-A: the first aggregated unit (browsers put SPS first).
                24 => payload.get(3).is_some_and(|h| matches!(h & 0x1f, 5 | 7)),
                // FU-A: the start of a fragmented IDR slice.
                28 => payload
                    .get(1)
                    .is_some_and(|h| h & 0x80 != 0 && h & 0x1f == 5),
                _ => false,
            }
        }
    }
}

/// The local username fragment of a STUN binding request: the part of its USERNAME attribute
/// before the colon (RFC 8445 7.2.2: "receiver's ufrag:sender's ufrag"). `None` for anything
/// that is not a well-formed binding request carrying one.
pub(super) fn stun_local_ufrag(datagram: &[u8]) -> Option<&[u8]> {
    const BINDING_REQUEST: u16 = 0x0001;
    const MAGIC_COOKIE: u32 = 0x2112_A442;
    const USERNAME: u16 = 0x0006;
    let word = |at: usize| u16::from_be_bytes([datagram[at], datagram[at + 1]]);
    if datagram.len() < 20
        || word(0) != BINDING_REQUEST
        || u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]) != MAGIC_COOKIE
    {
        return None;
    }
    let end = (20 + usize::from(word(2))).min(datagram.len());
    let mut at = 20;
    while at + 4 <= end {
        let (kind, len) = (word(at), usize::from(word(at + 2)));
        let value = datagram.get(at + 4..at + 4 + len)?;
        if kind == USERNAME {
            let colon = value.iter().position(|&b| b == b':')?;
            return Some(&value[..colon]);
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// `sdp` with every video section capped at `kbps` (`b=AS`, and `b=TIAS` in bits per
/// second), placed after the section's `c=` line as RFC 4566 orders them. A browser takes the
/// cap of the description it receives as the most it sends.
pub fn cap_video_bitrate(sdp: &str, kbps: u32) -> String {
    let mut out = String::with_capacity(sdp.len() + 64);
    let mut in_video = false;
    for line in sdp.split_inclusive('\n') {
        let bare = line.trim_end();
        if bare.starts_with("m=") {
            in_video = bare.starts_with("m=video");
        }
        if in_video && (bare.starts_with("b=AS:") || bare.starts_with("b=TIAS:")) {
            continue;
        }
        out.push_str(line);
        if in_video && bare.starts_with("c=") {
            let eol = if line.ends_with("\r\n") { "\r\n" } else { "\n" };
            out.push_str(&format!(
                "b=AS:{kbps}{eol}b=TIAS:{}{eol}",
                u64::from(kbps) * 1000
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{
        Continuity, History, RtpClock, cap_video_bitrate, starts_keyframe, stun_local_ufrag,
    };

    #[test]
    fn keyframe_starts_are_spotted_for_each_codec() {
        use super::super::VideoChoice::{H264, Vp8, Vp9};
        // VP8: S=1, PID=0, extended with a two-byte PictureID, then a keyframe header.
        assert!(starts_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x10, 0x02], Vp8));
        assert!(
            !starts_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x11, 0x02], Vp8),
            "inter frame"
        );
        assert!(
            !starts_keyframe(&[0x80, 0x80, 0x81, 0x23, 0x10, 0x02], Vp8),
            "not a start"
        );
        assert!(starts_keyframe(&[0x10, 0x10], Vp8), "no extension");
        assert!(starts_keyframe(&[0x10, 0x00], Vp8));
        assert!(!starts_keyframe(&[0x10, 0x01], Vp8), "an interframe");
        assert!(!starts_keyframe(&[0x00, 0x00], Vp8), "not a frame start");
        assert!(starts_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x9c], Vp8));
        assert!(!starts_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x9d], Vp8));
        assert!(!starts_keyframe(&[0x90], Vp8), "truncated");
        assert!(!starts_keyframe(&[], Vp8));
        // VP9: B set, P clear.
        assert!(starts_keyframe(&[0x08], Vp9));
        assert!(!starts_keyframe(&[0x48], Vp9));
        // H.264: IDR, SPS, STAP-A led by an SPS, FU-A starting an IDR.
        assert!(starts_keyframe(&[0x65, 0x00], H264));
        assert!(starts_keyframe(&[0x78, 0x00, 0x10, 0x67], H264));
        assert!(starts_keyframe(&[0x7c, 0x85], H264));
        assert!(!starts_keyframe(&[0x7c, 0x05], H264), "FU-A middle");
        assert!(!starts_keyframe(&[0x41, 0x00], H264), "non-IDR slice");
    }

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
    fn binding_request(attributes: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in attributes {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&u16::try_from(value.len()).expect("short").to_be_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&u16::try_from(body.len()).expect("short").to_be_bytes());
        m.extend_from_slice(&0x2112_A442u32.to_be_bytes());
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn the_local_ufrag_is_read_from_a_binding_request() {
        let m = binding_request(&[(0x0024, &[0, 0, 0, 1]), (0x0006, b"srvufrag:brws")]);
        assert_eq!(stun_local_ufrag(&m), Some(&b"srvufrag"[..]));
        // Padding after an attribute whose length is not a multiple of four.
        let m = binding_request(&[(0x8029, b"abcde"), (0x0006, b"u1:u2")]);
        assert_eq!(stun_local_ufrag(&m), Some(&b"u1"[..]));
    }

    #[test]
    fn anything_else_has_no_ufrag() {
        let good = binding_request(&[(0x0006, b"a:b")]);
        assert_eq!(stun_local_ufrag(&good[..good.len() - 2]), None, "truncated");
        let mut response = good.clone();
        response[1] = 0x01;
        response[0] = 0x01;
        assert_eq!(stun_local_ufrag(&response), None, "a binding response");
        let mut no_cookie = good.clone();
        no_cookie[4] = 0;
        assert_eq!(stun_local_ufrag(&no_cookie), None);
        assert_eq!(
            stun_local_ufrag(&binding_request(&[(0x0006, b"nocolon")])),
            None
        );
        assert_eq!(stun_local_ufrag(&[0x80, 0x60, 0, 1]), None, "RTP");
        let mut lying = binding_request(&[(0x0006, b"a:b")]);
        lying[23] = 200; // attribute length past the end
        assert_eq!(stun_local_ufrag(&lying), None);
    }

    #[test]
    fn video_sections_get_a_bitrate_cap_and_audio_does_not() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\nb=AS:5000\r\na=mid:1\r\n";
        let capped = cap_video_bitrate(sdp, 300);
        assert_eq!(
            capped,
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\nb=AS:300\r\nb=TIAS:300000\r\na=mid:1\r\n"
        );
    }

    #[test]
    fn the_history_keeps_the_newest_packets_across_the_wrap() {
        let mut history = History::default();
        assert!(history.get(7).is_none(), "nothing kept yet");
        let packet = |seq: u16| rtc::rtp::Packet {
            header: header(seq, u32::from(seq)),
            payload: bytes::Bytes::from(vec![seq as u8; 3]),
        };
        for seq in 65_000u16..=65_535 {
            history.keep(&packet(seq));
        }
        for seq in 0u16..100 {
            history.keep(&packet(seq));
        }
        assert_eq!(history.get(99).map(|p| p.payload[0]), Some(99));
        assert_eq!(
            history.get(65_535).map(|p| p.header.timestamp),
            Some(65_535)
        );
        let oldest = 100u16.wrapping_sub(History::SIZE as u16);
        assert!(history.get(oldest).is_some(), "the oldest still kept");
        assert!(
            history.get(oldest.wrapping_sub(1)).is_none(),
            "one older was replaced"
        );
        assert!(history.get(100).is_none(), "not forwarded yet");
    }

    #[test]
    fn the_rtp_clock_follows_the_newest_frame() {
        let t0 = std::time::Instant::now();
        let ms = |n: u64| t0 + std::time::Duration::from_millis(n);
        let mut clock = RtpClock::default();
        assert_eq!(clock.at(t0, 90_000), None);
        clock.observe(u32::MAX - 899, t0);
        assert_eq!(clock.at(ms(10), 90_000), Some(0), "wraps");
        clock.observe(u32::MAX - 899, ms(5));
        assert_eq!(
            clock.at(ms(10), 90_000),
            Some(0),
            "same frame: first packet's time"
        );
        clock.observe(u32::MAX - 5000, ms(20));
        assert_eq!(
            clock.at(ms(10), 90_000),
            Some(0),
            "a reordered older frame is ignored"
        );
        clock.observe(2100, ms(40));
        assert_eq!(clock.at(ms(1040), 90_000), Some(92_100));
        assert_eq!(
            clock.at(ms(30), 90_000),
            Some(2100),
            "never before the frame"
        );
    }
}
