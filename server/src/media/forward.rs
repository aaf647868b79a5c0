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
    use super::{Continuity, cap_video_bitrate, starts_keyframe, stun_local_ufrag};

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
}
