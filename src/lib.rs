//! rollbot: Slack chat-ops for incident rollbacks. The core (`domain`, `engine`) knows
//! rollbacks, actors, plans and steps; `slack` knows Slack's wire format; `store` keeps state.
pub mod alertmanager;
pub mod app;
pub mod clock;
pub mod config;
pub mod doctor;
pub mod domain;
pub mod engine;
pub mod grammar;
pub mod http;
pub mod manifest;
pub mod metrics;
pub mod outbound;
pub mod pagerduty;
pub mod playground;
pub mod postgres_tls;
pub mod postmortem;
pub mod report;
pub mod secret;
pub mod shutdown;
pub mod slack;
pub mod standin;
pub mod statuspage;
pub mod store;
pub mod templates;
pub mod text;
