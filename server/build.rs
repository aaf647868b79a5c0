//! Build script: embeds the openvidu-browser bundle from the npm package (installed by
//! `npm install` at the repository root) for the demo page; without it, the demo page says
//! how to get it.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let bundle = root
        .join("..")
        .join("node_modules")
        .join("openvidu-browser")
        .join("static")
        .join("js")
        .join("openvidu-browser-2.32.2.min.js");
    println!("cargo:rerun-if-changed={}", bundle.display());
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("openvidu-browser.js");
    let text = std::fs::read(&bundle).unwrap_or_else(|_| {
        b"window.CAMERATA_NO_OPENVIDU_BROWSER = 'openvidu-browser was not found when this server was built: run npm install at the repository root, then build again.';".to_vec()
    });
    std::fs::write(&out, text).expect("OUT_DIR is writable");
}
