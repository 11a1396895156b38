//! The Slack edge: signatures, inbound payloads, typed wire formats, the Web API client and
//! every message a person reads.
pub mod client;
pub mod directory;
pub mod inbound;
pub mod limits;
pub mod messages;
pub mod signature;
pub mod socket_mode;
pub mod wire;
