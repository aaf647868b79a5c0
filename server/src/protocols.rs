//! Protocol adapters at the edge: each speaks one outside protocol, owns that protocol's
//! wire types and error table, and maps them to the room core through `rooms`.

pub mod openvidu;
