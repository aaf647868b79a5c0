//! The protocol-neutral room core: ids, roles, room options and the `Room` state machine.
//!
//! This module is a plain state machine. It takes a command and the current time and returns
//! the outcome and the events that happened; it never awaits, never reads the clock and never
//! does I/O. No tokio, axum, sqlx or webrtc names appear here (a test in `lib.rs` enforces it).

mod ids;
mod options;
mod participant;
mod state;

pub use ids::{ParticipantId, RoomId, StreamId};
pub use options::{
    MediaMode, OptionsError, OutputMode, RecordingDefaults, RecordingLayout, RecordingMode,
    RecordingValueError, RoomOptions, VideoCodec,
};
pub use participant::{
    ActiveInfo, Dimensions, IceServer, MAX_DATA_CHARS, MediaLimits, Participant, ParticipantState,
    Role, StreamChange, StreamInfo, Subscription, VideoSource,
};
pub use state::{EndReason, JoinError, MediaError, Room, RoomError, RoomEvent, SignalError};
