//! REST bodies: the first byte picks a route of one of the doors (OpenVidu, OpenTok,
//! Janus), the rest is the body, sent with that route's credentials and content type.
#![no_main]
use camerata_fuzz::{SESSION, basic, opentok_auth, request, world};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let w = world();
    let ov = basic();
    let ot = opentok_auth();
    let json = ("content-type", "application/json".to_owned());
    let form = (
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    );
    let with = |mut h: Vec<(&'static str, String)>, c: (&'static str, String)| {
        h.push(c);
        h
    };
    let sessions = format!("/openvidu/api/sessions/{SESSION}");
    let routes: Vec<(&str, String, Vec<(&str, String)>)> = vec![
        (
            "POST",
            "/openvidu/api/sessions".into(),
            with(ov.clone(), json.clone()),
        ),
        (
            "POST",
            format!("{sessions}/connection"),
            with(ov.clone(), json.clone()),
        ),
        (
            "POST",
            "/openvidu/api/tokens".into(),
            with(ov.clone(), json.clone()),
        ),
        (
            "POST",
            "/openvidu/api/signal".into(),
            with(ov.clone(), json.clone()),
        ),
        (
            "POST",
            "/openvidu/api/recordings/start".into(),
            with(ov.clone(), json.clone()),
        ),
        (
            "PATCH",
            format!("{sessions}/connection/con_x"),
            with(ov.clone(), json.clone()),
        ),
        ("POST", "/session/create".into(), with(ot.clone(), form)),
        (
            "POST",
            "/v2/project/47000001/archive".into(),
            with(ot.clone(), json.clone()),
        ),
        (
            "POST",
            format!("/v2/project/47000001/session/{SESSION}/mute"),
            with(ot.clone(), json.clone()),
        ),
        (
            "PUT",
            format!("/v2/project/47000001/session/{SESSION}/stream"),
            with(ot, json.clone()),
        ),
        ("POST", "/janus".into(), vec![json]),
    ];
    let (method, path, headers) = &routes[usize::from(pick) % routes.len()];
    w.rt.block_on(request(w.http, method, path, headers, body));
    // Sessions the inputs create are real and stay (an OpenTok session never expires): the
    // server is emptied now and then, so a long run measures leaks, not what it was asked
    // to keep.
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 5000 == 4999 {
        w.rt.block_on(camerata_fuzz::close_sessions(w));
    }
});
