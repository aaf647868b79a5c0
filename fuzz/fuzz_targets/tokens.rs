//! Token strings: the input as the token of a join (this server's grants and the OpenTok
//! forms), and as the JWT of an OpenTok REST call.
#![no_main]
use camerata_fuzz::{SESSION, request, rpc, world};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let w = world();
    let token = String::from_utf8_lossy(data).into_owned();
    w.rt.block_on(async {
        let url = format!("ws://{}?sessionId={SESSION}&token={token}", w.http);
        let join = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "joinRoom",
            "params": {"token": url, "session": SESSION, "platform": "fuzz", "metadata": ""}});
        rpc(w, &[join.to_string()]).await;
        let header = token.replace(['\r', '\n'], "");
        request(
            w.http,
            "GET",
            "/v2/project/47000001/archive",
            &[("x-opentok-auth", header)],
            b"",
        )
        .await;
    });
});
