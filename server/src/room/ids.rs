//! Identifier newtypes of the core; adapters own their external spelling.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an id string as given by an adapter or read from the store.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// Identifies a room (an OpenVidu session, a Janus room, an OpenTok session).
    RoomId
);
id_type!(
    /// Identifies a participant inside one room (an OpenVidu connection, a Janus publisher or
    /// subscriber handle's participant, an OpenTok connection).
    ParticipantId
);
id_type!(
    /// Identifies a published stream inside one room; a participant may publish several (a
    /// camera and a screen, a Janus multistream publisher, two OpenTok publishers).
    StreamId
);
