//! Integration tests: rollbot served on loopback against real PostgreSQL and a fake Slack,
//! driven as Slack drives it — signed HTTP requests from named users.
mod support;

mod alert_flood;
mod alerts;
mod approvals;
mod checklists;
mod contract;
mod control;
mod examples;
mod fallback;
mod faults;
mod pagerduty;
mod parameters;
mod playground;
mod process;
mod runbooks;
mod security;
mod socket_mode;
mod statuspage;
mod store;
mod stories;
mod tls;
mod updates;
