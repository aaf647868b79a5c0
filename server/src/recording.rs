//! Recording building blocks. So far: writing one published stream, as it arrives over RTP,
//! into a WebM file without transcoding (`webm`): the file of an INDIVIDUAL recording.
//!
//! Invariants: a file is always playable up to its last complete cluster (the segment is
//! written with an unknown size and each cluster whole), so a process killed mid-recording
//! leaves a usable file; `finish` makes it exact (duration and sizes). Nothing here is wired
//! to the REST API yet: `OPENVIDU_RECORDING=true` still refuses to start.

pub mod webm;
