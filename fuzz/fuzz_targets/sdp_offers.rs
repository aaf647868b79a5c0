//! SDP offers: a joined participant publishes with the input as its offer, then asks to
//! receive with it; the server's SDP parser and negotiation take them.
#![no_main]
use camerata_fuzz::{join_frame, rpc, world};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let w = world();
    let sdp = String::from_utf8_lossy(data).into_owned();
    w.rt.block_on(async {
        let publish = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "publishVideo",
            "params": {"sdpOffer": sdp, "doLoopback": false, "hasAudio": true, "hasVideo": true,
                "audioActive": true, "videoActive": true, "typeOfVideo": "CAMERA", "frameRate": 30,
                "videoDimensions": "{\"width\":640,\"height\":480}"}});
        let leave =
            serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "leaveRoom", "params": {}});
        rpc(
            w,
            &[join_frame(w).await, publish.to_string(), leave.to_string()],
        )
        .await;
    });
});
