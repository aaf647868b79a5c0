//! Datagrams reaching the media port from a stranger (STUN, DTLS, RTP, RTCP or noise): the
//! input is one datagram, sent from a fresh socket.
#![no_main]
use camerata_fuzz::world;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let w = world();
    w.rt.block_on(async {
        let Ok(socket) = tokio::net::UdpSocket::bind("127.0.0.1:0").await else {
            return;
        };
        let _ = socket.send_to(data, w.media).await;
        // Let the media loop take it before the next input.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    });
});
