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
    use super::{Continuity, cap_video_bitrate, stun_local_ufrag};

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
