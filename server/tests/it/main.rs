//! Integration tests: the real server on 127.0.0.1:0 with a throwaway database, driven
//! over HTTP as clients drive it.

mod support;

mod janus;
mod legacy;
mod media;
mod opentok;
mod recording;
mod rest;
mod rpc;
mod store;
mod tls;
mod videoroom;
mod webhook;
