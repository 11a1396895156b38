//! The Slack stand-in (`rollbot::standin::slack`, shared with `rollbot playground`) with the
//! test workspace's identity and a Socket Mode hub beside it.
pub use rollbot::standin::slack::{Call, Outage};
use rollbot::standin::slack::{Identity, SlackStandIn};
use std::sync::Arc;

#[derive(Clone)]
pub struct FakeSlack {
    pub api_url: String,
    /// Socket Mode's side: the connections rollbot opened, and the envelopes sent over them.
    pub socket: super::fake_socket::Hub,
    standin: SlackStandIn,
}

impl std::ops::Deref for FakeSlack {
    type Target = SlackStandIn;
    fn deref(&self) -> &SlackStandIn {
        &self.standin
    }
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let socket = super::fake_socket::Hub::start().await;
        let hub = socket.clone();
        let identity = Identity {
            team_id: super::TEAM.to_owned(),
            bot_token: super::BOT_TOKEN.to_owned(),
            app_token: Some(super::APP_TOKEN.to_owned()),
        };
        let standin = SlackStandIn::start(identity, Some(Arc::new(move || hub.issue())))
            .await
            .unwrap();
        FakeSlack {
            api_url: standin.api_url.clone(),
            socket,
            standin,
        }
    }
}
