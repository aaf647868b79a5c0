//! # camerata-node
//!
//! The npm package `camerata`: Node bindings over the server crate, built with napi-rs.
//! This crate holds conversions only; the logic lives in `camerata-server`. Its bindings
//! (the OpenVidu SDK classes and the embedded server) arrive with issue 3.
