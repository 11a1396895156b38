//! The Slack edge: signatures, inbound payloads, the Web API client, delivery of the outbox
//! and every message a person reads.
pub mod client;
pub mod delivery;
pub mod directory;
pub mod inbound;
pub mod messages;
pub mod signature;
pub mod wire;
