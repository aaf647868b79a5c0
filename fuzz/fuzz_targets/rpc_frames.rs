//! JSON-RPC frames of the signaling socket: each input line is one frame sent on one
//! WebSocket; `@TOKEN@` becomes a fresh valid token URL, so frames after a join reach the
//! joined methods.
#![no_main]
use camerata_fuzz::{rpc, token, world};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let w = world();
    let text = String::from_utf8_lossy(data).into_owned();
    w.rt.block_on(async {
        let t = if text.contains("@TOKEN@") {
            token(w).await
        } else {
            String::new()
        };
        let frames: Vec<String> = text
            .lines()
            .take(16)
            .map(|l| l.replace("@TOKEN@", &t))
            .collect();
        rpc(w, &frames).await;
    });
});
