//! The node-to-node media relay's wire format: one published stream sent once from the node
//! that receives it (the owner) to another node (an edge) that fans it out to subscribers of
//! its own, on the media sockets both already have; keyframe requests and NACKs come back
//! the same way.
//!
//! A datagram is `MAGIC` (its first byte, 0xFF, is none of STUN, DTLS, TURN or RTP/RTCP by
//! RFC 7983, so the media socket tells it apart), the relay's id and a counter (big endian,
//! 8 bytes each, the AEAD's associated data), then AES-128-GCM of one kind byte and a body,
//! with its 16-byte tag. Each relay has two keys derived from the cluster key and its id (one
//! per direction), so no key travels; the nonce is the counter, never repeated under a key,
//! and the receiver refuses counters it saw (a 64-wide window) or that fell behind it.
//! Sealing and opening work in a buffer the loop keeps: nothing is allocated per packet.

use hmac::{Hmac, Mac};
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

/// The first bytes of every relay datagram.
pub(crate) const MAGIC: [u8; 4] = [0xFF, b'C', b'R', 1];
/// Bytes before the sealed part: magic, relay id, counter.
const HEADER: usize = 4 + 8 + 8;
/// The AEAD tag.
const TAG: usize = 16;
/// The largest datagram the relay sends or takes.
pub(crate) const MAX_DATAGRAM: usize = 2048;

/// What a relay datagram carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An RTP packet of the stream's audio (owner to edge).
    Audio,
    /// An RTP packet of its video (owner to edge).
    Video,
    /// The edge's subscribers want a keyframe (edge to owner).
    Keyframe,
    /// Video packets the edge lacks: sequence numbers, 2 bytes each (edge to owner).
    Nack,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Audio => 0,
            Kind::Video => 1,
            Kind::Keyframe => 2,
            Kind::Nack => 3,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Kind::Audio,
            1 => Kind::Video,
            2 => Kind::Keyframe,
            3 => Kind::Nack,
            _ => return None,
        })
    }
}

/// The two keys of one relay, the same on both nodes.
#[derive(Clone)]
pub struct RelayKeys {
    /// Seals media, owner to edge.
    media: [u8; 16],
    /// Seals feedback, edge to owner.
    feedback: [u8; 16],
}

impl std::fmt::Debug for RelayKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayKeys")
    }
}

impl RelayKeys {
    /// The keys of relay `relay` under the cluster's secret.
    pub fn derive(secret: &[u8], relay: u64) -> Self {
        let key = |direction: &[u8]| {
            let mut mac =
                Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
            mac.update(b"camerata media relay\0");
            mac.update(&relay.to_be_bytes());
            mac.update(direction);
            let mut k = [0u8; 16];
            k.copy_from_slice(&mac.finalize().into_bytes()[..16]);
            k
        };
        Self {
            media: key(b"media"),
            feedback: key(b"feedback"),
        }
    }

    /// The owner's halves: it seals media and opens feedback.
    pub(crate) fn owner(&self, relay: u64) -> (Sealer, Opener) {
        (
            Sealer::new(&self.media, relay),
            Opener::new(&self.feedback, relay),
        )
    }

    /// The edge's halves: it opens media and seals feedback.
    pub(crate) fn edge(&self, relay: u64) -> (Opener, Sealer) {
        (
            Opener::new(&self.media, relay),
            Sealer::new(&self.feedback, relay),
        )
    }
}

fn key(bytes: &[u8; 16]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_128_GCM, bytes).expect("a 16-byte AES key"))
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Seals the datagrams of one direction of one relay.
pub(crate) struct Sealer {
    key: LessSafeKey,
    relay: u64,
    counter: u64,
}

impl Sealer {
    fn new(k: &[u8; 16], relay: u64) -> Self {
        Self {
            key: key(k),
            relay,
            counter: 0,
        }
    }

    /// Seals `kind` with the body `write` puts in the slice it is given (returning its
    /// length) into `buf`; the datagram's length, `None` when it does not fit.
    pub(crate) fn seal(
        &mut self,
        kind: Kind,
        buf: &mut [u8; MAX_DATAGRAM],
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Option<usize> {
        self.counter += 1;
        buf[..4].copy_from_slice(&MAGIC);
        buf[4..12].copy_from_slice(&self.relay.to_be_bytes());
        buf[12..20].copy_from_slice(&self.counter.to_be_bytes());
        buf[HEADER] = kind.byte();
        let body = write(&mut buf[HEADER + 1..MAX_DATAGRAM - TAG])?;
        let end = HEADER + 1 + body;
        let (head, rest) = buf.split_at_mut(HEADER);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                nonce(self.counter),
                Aad::from(&head[..]),
                &mut rest[..1 + body],
            )
            .ok()?;
        buf[end..end + TAG].copy_from_slice(tag.as_ref());
        Some(end + TAG)
    }
}

/// Opens the datagrams of one direction of one relay, refusing replays.
pub(crate) struct Opener {
    key: LessSafeKey,
    relay: u64,
    /// The highest counter accepted, and which of the 64 below it were seen.
    highest: u64,
    seen: u64,
}

impl Opener {
    fn new(k: &[u8; 16], relay: u64) -> Self {
        Self {
            key: key(k),
            relay,
            highest: 0,
            seen: 0,
        }
    }

    /// Opens the datagram in `buf[..len]` in place: its kind and body, or `None` when it is
    /// not this relay's, was forged or altered, or was seen before.
    pub(crate) fn open<'a>(&mut self, buf: &'a mut [u8], len: usize) -> Option<(Kind, &'a [u8])> {
        let (relay, counter) = header(buf.get(..len)?)?;
        if relay != self.relay || len < HEADER + 1 + TAG {
            return None;
        }
        if counter + 64 <= self.highest
            || (counter <= self.highest && self.seen & (1 << (self.highest - counter)) != 0)
        {
            return None;
        }
        let (head, rest) = buf[..len].split_at_mut(HEADER);
        let plain = self
            .key
            .open_in_place(nonce(counter), Aad::from(&head[..]), rest)
            .ok()?;
        if counter > self.highest {
            let shift = counter - self.highest;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = counter;
        } else {
            self.seen |= 1 << (self.highest - counter);
        }
        let (kind, body) = plain.split_first()?;
        Some((Kind::from_byte(*kind)?, body))
    }
}

/// The relay id and counter of a relay datagram; `None` when it is not one.
pub(crate) fn header(datagram: &[u8]) -> Option<(u64, u64)> {
    if datagram.len() < HEADER || datagram[..4] != MAGIC {
        return None;
    }
    let relay = u64::from_be_bytes(datagram[4..12].try_into().ok()?);
    let counter = u64::from_be_bytes(datagram[12..20].try_into().ok()?);
    Some((relay, counter))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(s: &mut Sealer, kind: Kind, body: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = s
            .seal(kind, &mut buf, |out| {
                out.get_mut(..body.len())?.copy_from_slice(body);
                Some(body.len())
            })
            .expect("fits");
        buf[..n].to_vec()
    }

    #[test]
    fn sealed_datagrams_open_once_and_only_with_their_relays_keys() {
        let keys = RelayKeys::derive(b"cluster secret", 7);
        let (mut media, _) = keys.owner(7);
        let (mut edge_in, mut feedback) = keys.edge(7);
        let d = sealed(&mut media, Kind::Video, b"rtp bytes");
        assert_eq!(d[0], 0xFF, "outside the RFC 7983 ranges");
        let mut buf = d.clone();
        let (kind, body) = edge_in.open(&mut buf, d.len()).expect("opens");
        assert_eq!((kind, body), (Kind::Video, &b"rtp bytes"[..]));
        let mut again = d.clone();
        assert!(
            edge_in.open(&mut again, d.len()).is_none(),
            "a replay is refused"
        );
        // Altered, or under another relay's keys, or the other direction's key: refused.
        let mut altered = sealed(&mut media, Kind::Video, b"rtp bytes");
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(edge_in.open(&mut altered, d.len()).is_none());
        let (mut other, _) = RelayKeys::derive(b"cluster secret", 8).owner(7);
        let mut foreign = sealed(&mut other, Kind::Audio, b"x");
        assert!(edge_in.open(&mut foreign, 20 + 1 + 1 + 16).is_none());
        let mut wrong_way = sealed(&mut feedback, Kind::Keyframe, b"");
        assert!(edge_in.open(&mut wrong_way, 20 + 1 + 16).is_none());
        let (_, mut owner_in) = keys.owner(7);
        let (kind, body) = owner_in
            .open(&mut wrong_way, 20 + 1 + 16)
            .expect("the owner opens feedback");
        assert_eq!((kind, body.len()), (Kind::Keyframe, 0));
    }

    #[test]
    fn late_datagrams_within_the_window_open_and_older_ones_do_not() {
        let keys = RelayKeys::derive(b"k", 1);
        let (mut media, _) = keys.owner(1);
        let (mut edge_in, _) = keys.edge(1);
        let all: Vec<Vec<u8>> = (0..100)
            .map(|_| sealed(&mut media, Kind::Audio, b"a"))
            .collect();
        let mut newest = all[99].clone();
        assert!(edge_in.open(&mut newest, all[99].len()).is_some());
        let mut late = all[50].clone();
        assert!(
            edge_in.open(&mut late, all[50].len()).is_some(),
            "49 behind: in the window"
        );
        let mut too_late = all[10].clone();
        assert!(
            edge_in.open(&mut too_late, all[10].len()).is_none(),
            "89 behind: refused"
        );
        assert!(header(b"\x80\x60rtp").is_none());
    }
}
