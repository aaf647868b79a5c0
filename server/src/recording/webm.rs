//! One stream (VP8 video and Opus audio, either optional) from RTP to WebM, no transcoding.
//!
//! RTP packets are put back into frames (VP8 by its payload descriptor and the marker bit; a
//! frame with a missing packet is dropped, and so is video until the next keyframe), timed
//! from their RTP timestamps (each track anchored at the wall-clock arrival of its first
//! packet, so the two stay in sync), and written as SimpleBlocks in clusters that start at a
//! video keyframe (or every 5 s for audio alone). The file starts at the first video
//! keyframe, whose header gives the frame size. Clusters are written whole; the segment size
//! and the duration are filled in by [`WebmWriter::finish`].

use bytes::{Bytes, BytesMut};
use rtc::rtp::packetizer::Depacketizer;
use std::io::{Seek, SeekFrom, Write};
use std::time::Instant;

const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TRACKS: u32 = 0x1654_AE6B;
const CLUSTER: u32 = 0x1F43_B675;
const TRACK_ENTRY: u32 = 0xAE;
const SIMPLE_BLOCK: u32 = 0xA3;
const VIDEO_TRACK: u64 = 1;
const AUDIO_TRACK: u64 = 2;
/// Longest a cluster runs before it is written out, keyframe or not (browsers send keyframes
/// only when asked): at most this much is lost when the process is killed.
const CLUSTER_SPAN_MS: u64 = 1_000;

/// What the writer knows about the stream before it starts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tracks {
    /// A video track: VP8, or H.264 when `h264`.
    pub video: bool,
    /// An Opus audio track (48 kHz, stereo in the header as browsers send it).
    pub audio: bool,
    /// The video is H.264 (packetization mode 1): the file is Matroska rather than WebM.
    pub h264: bool,
    /// The picture size the publisher announced, for the header of an H.264 track (a VP8
    /// keyframe carries its own).
    pub size: Option<(u16, u16)>,
}

/// A WebM file being written from RTP.
pub struct WebmWriter<W: Write + Seek> {
    out: W,
    tracks: Tracks,
    started: bool,
    /// Where the segment's size field is, and where its content starts.
    segment_at: u64,
    /// Where the 8-byte Duration float is.
    duration_at: u64,
    cluster: Option<Cluster>,
    last_ms: u64,
    video: Track,
    audio: Track,
    first_arrival: Option<Instant>,
    /// The latest H.264 parameter sets seen (NAL units with their header byte).
    sps: Option<Bytes>,
    pps: Option<Bytes>,
}

struct Cluster {
    start_ms: u64,
    body: Vec<u8>,
}

/// Frame assembly and timing of one track.
#[derive(Default)]
struct Track {
    first_ts: Option<u32>,
    offset_ms: u64,
    frame: BytesMut,
    frame_ts: Option<u32>,
    frame_broken: bool,
    frame_key: bool,
    next_seq: Option<u16>,
    waiting_for_key: bool,
    /// H.264 reassembly state (fragmentation units span packets).
    h264: rtc::rtp::codec::h264::H264Packet,
}

impl Track {
    /// Milliseconds of RTP timestamp `ts` since this track's first, plus its offset.
    fn ms(&self, ts: u32, rate: u32) -> u64 {
        let first = self.first_ts.unwrap_or(ts);
        self.offset_ms + u64::from(ts.wrapping_sub(first)) * 1000 / u64::from(rate)
    }
}

/// The frame size written in a VP8 keyframe header, if `frame` is one.
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.len() < 10 || frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let h = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((w, h))
}

fn id_bytes(id: u32) -> Vec<u8> {
    let b = id.to_be_bytes();
    let skip = b.iter().take_while(|&&x| x == 0).count();
    b[skip..].to_vec()
}

/// An EBML variable-size integer of the smallest length.
fn size_bytes(n: u64) -> Vec<u8> {
    let len = (1..=8).find(|&l| n < (1u64 << (7 * l)) - 1).unwrap_or(8);
    let mut v = n | (1u64 << (7 * len));
    let mut out = vec![0u8; len];
    for i in (0..len).rev() {
        out[i] = (v & 0xff) as u8;
        v >>= 8;
    }
    out
}

fn element(id: u32, body: &[u8]) -> Vec<u8> {
    let mut e = id_bytes(id);
    e.extend(size_bytes(body.len() as u64));
    e.extend_from_slice(body);
    e
}

fn uint(id: u32, n: u64) -> Vec<u8> {
    let b = n.to_be_bytes();
    let skip = b.iter().take_while(|&&x| x == 0).count().min(7);
    element(id, &b[skip..])
}

fn float(id: u32, x: f64) -> Vec<u8> {
    element(id, &x.to_be_bytes())
}

fn string(id: u32, s: &str) -> Vec<u8> {
    element(id, s.as_bytes())
}

/// The Opus identification header Matroska wants as CodecPrivate (RFC 7845 5.1).
fn opus_head() -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1); // version
    h.push(2); // channels
    h.extend(312u16.to_le_bytes()); // pre-skip, as libopus encoders set it
    h.extend(48_000u32.to_le_bytes());
    h.extend(0i16.to_le_bytes()); // output gain
    h.push(0); // channel mapping family
    h
}

/// The NAL units of an AVC (4-byte length-prefixed) frame; stops at a malformed length.
fn avc_units(frame: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = frame;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let unit = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        Some(unit)
    })
}

/// The AVCDecoderConfigurationRecord (ISO 14496-15) Matroska wants as CodecPrivate:
/// profile and level from the SPS, 4-byte lengths, one SPS and one PPS.
fn avc_config(sps: &[u8], pps: &[u8]) -> Vec<u8> {
    let mut c = vec![
        1,
        sps.get(1).copied().unwrap_or(0x42),
        sps.get(2).copied().unwrap_or(0xE0),
        sps.get(3).copied().unwrap_or(0x1F),
        0xFF,
        0xE1,
    ];
    c.extend((sps.len() as u16).to_be_bytes());
    c.extend_from_slice(sps);
    c.push(1);
    c.extend((pps.len() as u16).to_be_bytes());
    c.extend_from_slice(pps);
    c
}

impl<W: Write + Seek> WebmWriter<W> {
    /// A writer for `tracks` into `out` (written from its current position).
    pub fn new(out: W, tracks: Tracks) -> Self {
        Self {
            out,
            tracks,
            started: false,
            segment_at: 0,
            duration_at: 0,
            cluster: None,
            last_ms: 0,
            video: Track {
                waiting_for_key: true,
                ..Track::default()
            },
            audio: Track::default(),
            first_arrival: None,
            sps: None,
            pps: None,
        }
    }

    fn start(&mut self, size: Option<(u16, u16)>) -> std::io::Result<()> {
        let header = [
            uint(0x4286, 1),
            uint(0x42F7, 1),
            uint(0x42F2, 4),
            uint(0x42F3, 8),
            string(0x4282, if self.tracks.h264 { "matroska" } else { "webm" }),
            uint(0x4287, 4),
            uint(0x4285, 2),
        ]
        .concat();
        self.out.write_all(&element(EBML, &header))?;
        self.out.write_all(&id_bytes(SEGMENT))?;
        self.segment_at = self.out.stream_position()?;
        // Unknown size until `finish`: a reader plays what is there.
        self.out
            .write_all(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])?;
        let app = concat!("camerata ", env!("CARGO_PKG_VERSION"));
        let info_head = [
            uint(0x2AD7B1, 1_000_000),
            string(0x4D80, app),
            string(0x5741, app),
        ]
        .concat();
        // Duration last, so its offset is known.
        let duration = float(0x4489, 0.0);
        let mut info = id_bytes(INFO);
        info.extend(size_bytes((info_head.len() + duration.len()) as u64));
        let info_at = self.out.stream_position()?;
        self.out.write_all(&info)?;
        self.out.write_all(&info_head)?;
        self.duration_at = info_at + (info.len() + info_head.len() + duration.len() - 8) as u64;
        self.out.write_all(&duration)?;
        let mut entries = Vec::new();
        if self.tracks.video {
            let (w, h) = size.unwrap_or((640, 480));
            let video = [uint(0xB0, u64::from(w)), uint(0xBA, u64::from(h))].concat();
            let codec = match (&self.sps, &self.pps, self.tracks.h264) {
                (Some(sps), Some(pps), true) => [
                    string(0x86, "V_MPEG4/ISO/AVC"),
                    element(0x63A2, &avc_config(sps, pps)),
                ]
                .concat(),
                _ => string(0x86, "V_VP8"),
            };
            entries.push(element(
                TRACK_ENTRY,
                &[
                    uint(0xD7, VIDEO_TRACK),
                    uint(0x73C5, VIDEO_TRACK),
                    uint(0x83, 1),
                    codec,
                    element(0xE0, &video),
                ]
                .concat(),
            ));
        }
        if self.tracks.audio {
            let audio = [float(0xB5, 48_000.0), uint(0x9F, 2)].concat();
            entries.push(element(
                TRACK_ENTRY,
                &[
                    uint(0xD7, AUDIO_TRACK),
                    uint(0x73C5, AUDIO_TRACK),
                    uint(0x83, 2),
                    string(0x86, "A_OPUS"),
                    element(0x63A2, &opus_head()),
                    uint(0x56AA, 6_500_000),
                    uint(0x56BB, 80_000_000),
                    element(0xE1, &audio),
                ]
                .concat(),
            ));
        }
        self.out.write_all(&element(TRACKS, &entries.concat()))?;
        self.started = true;
        Ok(())
    }

    /// Writes the open cluster, whole.
    fn close_cluster(&mut self) -> std::io::Result<()> {
        if let Some(c) = self.cluster.take() {
            let mut body = uint(0xE7, c.start_ms);
            body.extend(c.body);
            self.out.write_all(&element(CLUSTER, &body))?;
            self.out.flush()?;
        }
        Ok(())
    }

    fn block(&mut self, track: u64, at_ms: u64, key: bool, frame: &[u8]) -> std::io::Result<()> {
        let fresh = match &self.cluster {
            None => true,
            Some(c) => {
                at_ms < c.start_ms
                    || at_ms - c.start_ms > CLUSTER_SPAN_MS
                    || (key && track == VIDEO_TRACK && at_ms > c.start_ms)
            }
        };
        if fresh {
            self.close_cluster()?;
            self.cluster = Some(Cluster {
                start_ms: at_ms,
                body: Vec::new(),
            });
        }
        let Some(c) = self.cluster.as_mut() else {
            return Ok(());
        };
        let relative = i16::try_from(at_ms - c.start_ms).unwrap_or(i16::MAX);
        let mut body = size_bytes(track);
        body.extend(relative.to_be_bytes());
        body.push(if key { 0x80 } else { 0x00 });
        body.extend_from_slice(frame);
        c.body.extend(element(SIMPLE_BLOCK, &body));
        self.last_ms = self.last_ms.max(at_ms);
        Ok(())
    }

    /// Takes one RTP packet of the video track, arrived at `now`.
    pub fn video(&mut self, packet: &rtc::rtp::Packet, now: Instant) -> std::io::Result<()> {
        if !self.tracks.video {
            return Ok(());
        }
        let first = *self.first_arrival.get_or_insert(now);
        let seq = packet.header.sequence_number;
        let t = &mut self.video;
        if t.next_seq.is_some_and(|n| n != seq) {
            t.frame_broken = true;
        }
        t.next_seq = Some(seq.wrapping_add(1));
        if t.frame_ts != Some(packet.header.timestamp) {
            // A new frame: the previous one never saw its last packet.
            t.frame.clear();
            t.frame_ts = Some(packet.header.timestamp);
            t.frame_broken = false;
            t.frame_key = false;
            t.h264 = rtc::rtp::codec::h264::H264Packet::default();
            t.h264.is_avc = true;
        }
        if self.tracks.h264 {
            return self.h264_video(packet, first, now);
        }
        let t = &mut self.video;
        let mut vp8 = rtc::rtp::codec::vp8::Vp8Packet::default();
        let Ok(data) = vp8.depacketize(&packet.payload) else {
            t.frame_broken = true;
            return Ok(());
        };
        let starts = vp8.s == 1 && vp8.pid == 0;
        if starts {
            t.frame.clear();
            t.frame_key = data.first().is_some_and(|b| b & 0x01 == 0);
        } else if t.frame.is_empty() {
            t.frame_broken = true;
        }
        t.frame.extend_from_slice(&data);
        if !packet.header.marker {
            return Ok(());
        }
        let frame: Bytes = t.frame.split().freeze();
        let (broken, key) = (t.frame_broken, t.frame_key);
        t.frame_ts = None;
        if broken {
            t.waiting_for_key = true;
            return Ok(());
        }
        let size = vp8_keyframe_size(&frame);
        self.video_frame(
            packet.header.timestamp,
            &frame,
            key,
            key,
            size,
            (first, now),
        )
    }

    /// Writes a whole video frame of RTP timestamp `ts`. After a broken frame (and at the
    /// start) nothing is written until a keyframe that `can_start` the file; the header is
    /// written before the first frame, with `size`. `arrival`: the stream's first packet and
    /// this one.
    fn video_frame(
        &mut self,
        ts: u32,
        frame: &[u8],
        key: bool,
        can_start: bool,
        size: Option<(u16, u16)>,
        (first, now): (Instant, Instant),
    ) -> std::io::Result<()> {
        let t = &mut self.video;
        if t.waiting_for_key {
            if !can_start {
                return Ok(());
            }
            t.waiting_for_key = false;
        }
        if t.first_ts.is_none() {
            t.first_ts = Some(ts);
            t.offset_ms = now.duration_since(first).as_millis() as u64;
        }
        let at = t.ms(ts, 90_000);
        if !self.started {
            self.start(size)?;
        }
        self.block(VIDEO_TRACK, at, key, frame)
    }

    /// One packet of an H.264 track: NAL units appended, length-prefixed, to the frame of
    /// its timestamp; the frame is written when the marker packet completes it.
    fn h264_video(
        &mut self,
        packet: &rtc::rtp::Packet,
        first: Instant,
        now: Instant,
    ) -> std::io::Result<()> {
        let t = &mut self.video;
        match t.h264.depacketize(&packet.payload) {
            Ok(data) => t.frame.extend_from_slice(&data),
            Err(_) => t.frame_broken = true,
        }
        if !packet.header.marker {
            return Ok(());
        }
        let frame: Bytes = t.frame.split().freeze();
        t.frame_ts = None;
        if t.frame_broken || frame.is_empty() {
            t.waiting_for_key = true;
            return Ok(());
        }
        let mut key = false;
        for nal in avc_units(&frame) {
            match nal.first().map(|b| b & 0x1f) {
                Some(5) => key = true,
                Some(7) => self.sps = Some(frame.slice_ref(nal)),
                Some(8) => self.pps = Some(frame.slice_ref(nal)),
                _ => {}
            }
        }
        // The header needs the parameter sets: the file starts at a keyframe that brings
        // them (browsers send them with every keyframe).
        let can_start = key && self.sps.is_some() && self.pps.is_some();
        let size = self.tracks.size;
        self.video_frame(
            packet.header.timestamp,
            &frame,
            key,
            can_start,
            size,
            (first, now),
        )
    }

    /// Takes one RTP packet of the audio track (one Opus frame), arrived at `now`.
    pub fn audio(&mut self, packet: &rtc::rtp::Packet, now: Instant) -> std::io::Result<()> {
        if !self.tracks.audio || packet.payload.is_empty() {
            return Ok(());
        }
        let first = *self.first_arrival.get_or_insert(now);
        // With video, the file starts at its first keyframe.
        if !self.started {
            if self.tracks.video {
                return Ok(());
            }
            self.start(None)?;
        }
        let t = &mut self.audio;
        if t.first_ts.is_none() {
            t.first_ts = Some(packet.header.timestamp);
            t.offset_ms = now.duration_since(first).as_millis() as u64;
        }
        let at = t.ms(packet.header.timestamp, 48_000);
        let payload = packet.payload.clone();
        self.block(AUDIO_TRACK, at, true, &payload)
    }

    /// Writes the last cluster and fills in the duration and the segment size; returns the
    /// duration in seconds.
    pub fn finish(mut self) -> std::io::Result<f64> {
        if !self.started {
            self.start(None)?;
        }
        self.close_cluster()?;
        let end = self.out.stream_position()?;
        let seconds = self.last_ms as f64 / 1000.0;
        self.out.seek(SeekFrom::Start(self.duration_at))?;
        self.out.write_all(&(self.last_ms as f64).to_be_bytes())?;
        self.out.seek(SeekFrom::Start(self.segment_at))?;
        let size = end - self.segment_at - 8;
        self.out.write_all(&(size | (1u64 << 56)).to_be_bytes())?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        Ok(seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_ebml_variable_integers() {
        assert_eq!(size_bytes(0), [0x80]);
        assert_eq!(size_bytes(126), [0xFE]);
        assert_eq!(size_bytes(127), [0x40, 0x7F], "0xFF would mean unknown");
        assert_eq!(size_bytes(300), [0x41, 0x2C]);
        assert_eq!(id_bytes(SEGMENT), [0x18, 0x53, 0x80, 0x67]);
        assert_eq!(uint(0xD7, 1), [0xD7, 0x81, 0x01]);
    }

    #[test]
    fn keyframe_headers_give_the_frame_size() {
        let key = [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
        assert_eq!(vp8_keyframe_size(&key), Some((640, 480)));
        let mut inter = key;
        inter[0] |= 1;
        assert_eq!(vp8_keyframe_size(&inter), None);
    }
}
