//! ICE-TCP framing: the input written as-is on a TCP connection to the media port (RFC 4571
//! frames, or whatever a client sends), then closed.
#![no_main]
use camerata_fuzz::world;
use tokio::io::AsyncWriteExt;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let w = world();
    w.rt.block_on(async {
        let Ok(mut s) = tokio::net::TcpStream::connect(w.media).await else {
            return;
        };
        let _ = s.write_all(data).await;
        let _ = s.shutdown().await;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    });
});
