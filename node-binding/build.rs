//! Build script: the link settings a Node addon needs.

fn main() {
    napi_build::setup();
}
