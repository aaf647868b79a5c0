//! Datagrams reaching the media port from a connected peer: the input is one datagram sent
//! from the address a publisher of the fuzz session claimed (see `Connected`), so it goes
//! to that peer connection's ICE, DTLS and SRTP handling rather than the stranger path.
#![no_main]
use camerata_fuzz::{Connected, connected, world};
use std::sync::Mutex;

/// Chromium's offer from the seed capture.
const OFFER: &str = include_str!("../corpus/sdp_offers/offer-0");

static PEER: Mutex<Option<Connected>> = Mutex::new(None);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut peer = PEER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    w.rt.block_on(async {
        if peer
            .as_ref()
            .is_none_or(|p| p.since.elapsed().as_secs() >= 5)
        {
            // A publisher the server refuses five times over is a broken world, not a
            // finding about datagrams: say so rather than fuzz the stranger path unawares.
            let mut tries = 0;
            *peer = loop {
                tries += 1;
                match connected(w, OFFER).await {
                    Some(p) => break Some(p),
                    None if tries < 5 => {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await
                    }
                    None => panic!("the fuzz session refused a publisher {tries} times"),
                }
            };
        }
        if let Some(p) = peer.as_ref() {
            let _ = p.socket.send_to(data, w.media).await;
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    });
});
