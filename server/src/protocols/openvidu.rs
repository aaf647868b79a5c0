//! The OpenVidu 2.x adapter: the REST API (`/openvidu/api`, and the legacy paths) with its
//! JSON shapes, identifiers, token URLs and error table; the JSON-RPC signaling at
//! `/openvidu`; the client half the Node SDK uses; the demo page; webhook events and CDR.

mod body;
pub mod client;
mod demo;
mod error;
mod ice;
pub mod recordings;
mod rest;
mod rpc;
pub mod webhook;
mod wire;

pub use error::RestError;
pub use ice::parse_ice_server_config;
pub use rest::{RestState, router};
pub use wire::{WireEnum, parse_video_codec};
