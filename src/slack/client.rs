//! The Slack Web API, through slack-morphism, at a base URL that tests point at a fake.
use super::messages::Message;
use super::wire::CardStamp;
use crate::metrics::Live;
use crate::secret::Secret;
use anyhow::Result;
use hyper_rustls::HttpsConnector;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_API_URL: &str = "https://slack.com/api/";

type Connector = SlackClientHyperConnector<HttpsConnector<crate::outbound::Egress>>;

/// Where a reply goes: the thread of the message `ts`, also shown in the channel if `broadcast`.
#[derive(Clone, Copy)]
pub struct Thread<'a> {
    pub ts: &'a str,
    pub broadcast: bool,
}

/// A view rollbot built, in Slack's model: refused here if the model rejects it, before any call.
fn slack_view(view: &serde_json::Value) -> Result<SlackView, CallError> {
    serde_json::from_value(view.clone())
        .map_err(|e| CallError::Permanent(format!("rollbot built a view Slack's model rejects: {e}")))
}

/// A form as Slack holds it: what a redraw names.
#[derive(Debug, Clone)]
pub struct OpenView {
    pub id: String,
    /// Changes with every redraw; a redraw naming an old one is refused (`hash_conflict`).
    pub hash: String,
}

impl OpenView {
    fn of(view: &slack_morphism::prelude::SlackStatefulView) -> OpenView {
        OpenView {
            id: view.state_params.id.0.clone(),
            hash: view.state_params.hash.clone(),
        }
    }
}

pub struct SlackApi {
    client: SlackClient<Connector>,
    token: SlackApiToken,
    /// Where failed calls are counted, by method and code.
    metrics: Arc<Live>,
}

pub use crate::outbound::CallError;

/// The bot a token belongs to, as `auth.test` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    pub user_id: String,
    pub team_id: String,
    pub team: String,
}

const TRANSIENT_API_ERRORS: [&str; 6] = [
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
];

/// The code a failed call is counted under: Slack's own error code when it gave one.
fn error_code(error: &SlackClientError) -> String {
    match error {
        SlackClientError::RateLimitError(_) => "ratelimited".to_owned(),
        SlackClientError::ApiError(e) => e.code.clone(),
        SlackClientError::HttpError(e) => format!("http_{}", e.status_code.as_u16()),
        _ => "transport".to_owned(),
    }
}

fn classify(error: SlackClientError) -> CallError {
    match error {
        SlackClientError::RateLimitError(e) => CallError::RateLimited {
            retry_after: e.retry_after,
        },
        SlackClientError::ApiError(e) if TRANSIENT_API_ERRORS.contains(&e.code.as_str()) => {
            CallError::Transient(e.code)
        }
        SlackClientError::ApiError(e) => CallError::Permanent(e.code),
        SlackClientError::HttpError(e) if e.status_code.is_server_error() => {
            CallError::Transient(format!("HTTP {}", e.status_code))
        }
        SlackClientError::HttpError(e) => CallError::Permanent(format!("HTTP {}", e.status_code)),
        other => CallError::Transient(other.to_string()),
    }
}

/// The longest a Slack call may take. The outbox claims a message for longer than this, so a
/// claim never lapses while its call could still be under way (no double posts).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How many pages of a channel's newest messages a lost card is looked for in: a retry comes
/// within seconds to minutes of the post, and an alert flood folds into few cards.
const CARD_SEARCH_PAGES: usize = 3;

fn content(message: &Message) -> Result<SlackMessageContent, CallError> {
    serde_json::from_value(serde_json::to_value(message).expect("messages serialize"))
        .map_err(|e| CallError::Permanent(format!("rollbot built a message Slack's model rejects: {e}")))
}

impl SlackApi {
    /// Runs one API call within `limit`, counting its failure under `method`.
    async fn bounded<T>(
        &self,
        method: &'static str,
        limit: Duration,
        call: impl std::future::Future<Output = Result<T, SlackClientError>>,
    ) -> Result<T, CallError> {
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => {
                self.metrics.slack_error(method, &error_code(&error));
                Err(classify(error))
            }
            Err(_) => {
                self.metrics.slack_error(method, "timeout");
                Err(CallError::Transient(format!(
                    "Slack did not answer {method} within {}s",
                    limit.as_secs()
                )))
            }
        }
    }

    /// Counts this client's failed calls into `metrics` (the process's shared figures).
    pub fn reporting_to(mut self, metrics: Arc<Live>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn new(api_url: &str, token: &Secret) -> Result<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::outbound::system_roots()?)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(crate::outbound::Egress::from_env());
        let connector =
            SlackClientHyperConnector::with_connector(https).with_slack_api_url(api_url.trim_end_matches('/'));
        Ok(SlackApi {
            client: SlackClient::new(connector),
            token: SlackApiToken::new(SlackApiTokenValue(token.expose().to_owned())),
            metrics: Default::default(),
        })
    }

    /// Posts to a channel, or into a thread when `thread_ts` is given; returns the message ts.
    pub async fn post(
        &self,
        channel: &str,
        message: &Message,
        thread: Option<Thread<'_>>,
    ) -> Result<String, CallError> {
        let mut request = SlackApiChatPostMessageRequest::new(channel.into(), content(message)?);
        if let Some(thread) = thread {
            request.thread_ts = Some(SlackTs(thread.ts.to_owned()));
            request.reply_broadcast = thread.broadcast.then_some(true);
        }
        let session = self.client.open_session(&self.token);
        let response = self
            .bounded("chat.postMessage", CALL_TIMEOUT, session.chat_post_message(&request))
            .await?;
        Ok(response.ts.0)
    }

    /// Posts a card stamped with `stamp` (message metadata), so it can be found again by
    /// `find_card`; returns the message ts.
    pub async fn post_card(&self, channel: &str, message: &Message, stamp: &CardStamp) -> Result<String, CallError> {
        let mut content = content(message)?;
        let metadata = stamp.metadata();
        content.metadata = Some(SlackMessageMetadata {
            event_type: CardStamp::EVENT_TYPE.to_owned(),
            event_payload: serde_json::from_value(metadata["event_payload"].clone()).ok(),
        });
        let request = SlackApiChatPostMessageRequest::new(channel.into(), content);
        let session = self.client.open_session(&self.token);
        let response = self
            .bounded("chat.postMessage", CALL_TIMEOUT, session.chat_post_message(&request))
            .await?;
        Ok(response.ts.0)
    }

    /// The ts of the card stamped `stamp` among the channel's newest messages, if it is there:
    /// an earlier attempt's post may have reached Slack although its answer never reached us.
    /// Reads up to `CARD_SEARCH_PAGES` pages of 200, newest first (`conversations.history`,
    /// which needs `channels:history`, or `groups:history` in a private channel).
    pub async fn find_card(&self, channel: &str, stamp: &CardStamp) -> Result<Option<String>, CallError> {
        let session = self.client.open_session(&self.token);
        let mut cursor = None;
        for _ in 0..CARD_SEARCH_PAGES {
            let request = SlackApiConversationsHistoryRequest {
                channel: Some(channel.into()),
                cursor: cursor.take(),
                latest: None,
                limit: Some(200),
                oldest: None,
                inclusive: None,
                include_all_metadata: Some(true),
            };
            let page = self
                .bounded(
                    "conversations.history",
                    CALL_TIMEOUT,
                    session.conversations_history(&request),
                )
                .await?;
            let found = page.messages.iter().find(|m| {
                m.content.metadata.as_ref().is_some_and(|meta| {
                    meta.event_payload
                        .as_ref()
                        .and_then(|payload| CardStamp::decode(&meta.event_type, payload))
                        .is_some_and(|found| found == *stamp)
                })
            });
            if let Some(message) = found {
                return Ok(Some(message.origin.ts.0.clone()));
            }
            cursor = page
                .response_metadata
                .and_then(|m| m.next_cursor)
                .filter(|c| !c.0.is_empty());
            if cursor.is_none() || page.has_more == Some(false) {
                break;
            }
        }
        Ok(None)
    }

    pub async fn update(&self, channel: &str, ts: &str, message: &Message) -> Result<(), CallError> {
        let request = SlackApiChatUpdateRequest::new(channel.into(), content(message)?, SlackTs(ts.to_owned()));
        self.bounded(
            "chat.update",
            CALL_TIMEOUT,
            self.client.open_session(&self.token).chat_update(&request),
        )
        .await?;
        Ok(())
    }

    /// Redraws an open form (`views.update`). With `hash`, Slack refuses (`hash_conflict`) when
    /// the form changed meanwhile, so a slow redraw never overwrites a newer one.
    pub async fn update_view(
        &self,
        view_id: &str,
        hash: Option<&str>,
        view: &serde_json::Value,
    ) -> Result<OpenView, CallError> {
        let view = slack_view(view)?;
        let request = SlackApiViewsUpdateRequest {
            view,
            external_id: None,
            hash: hash.map(str::to_owned),
            view_id: Some(SlackViewId(view_id.to_owned())),
        };
        // Like views.open: the person is looking at the form now.
        let updated = self
            .bounded(
                "views.update",
                Duration::from_secs(2),
                self.client.open_session(&self.token).views_update(&request),
            )
            .await?;
        Ok(OpenView::of(&updated.view))
    }

    /// Opens a form on `trigger_id`; answers its id and hash, for redrawing it later.
    pub async fn open_view(&self, trigger_id: &str, view: &serde_json::Value) -> Result<OpenView, CallError> {
        let view = slack_view(view)?;
        let request = SlackApiViewsOpenRequest::new(SlackTriggerId(trigger_id.to_owned()), view);
        // Slack's trigger lives 3 s and we are answering a request meanwhile: no point waiting longer.
        let opened = self
            .bounded(
                "views.open",
                Duration::from_secs(2),
                self.client.open_session(&self.token).views_open(&request),
            )
            .await?;
        Ok(OpenView::of(&opened.view))
    }

    /// A Socket Mode address to dial (`apps.connections.open`), with the app-level token
    /// (`xapp-…`); each address is good for one connection.
    pub async fn open_socket(&self, app_token: &Secret) -> Result<String, CallError> {
        let token = SlackApiToken::new(SlackApiTokenValue(app_token.expose().to_owned()));
        let opened = self
            .bounded(
                "apps.connections.open",
                CALL_TIMEOUT,
                self.client
                    .open_session(&token)
                    .apps_connections_open(&SlackApiAppsConnectionOpenRequest::new()),
            )
            .await?;
        Ok(opened.url.0.to_string())
    }

    /// Whom the bot token belongs to (`auth.test`), for `rollbot doctor`.
    pub async fn who_am_i(&self) -> Result<BotIdentity, CallError> {
        let me = self
            .bounded(
                "auth.test",
                CALL_TIMEOUT,
                self.client.open_session(&self.token).auth_test(),
            )
            .await?;
        Ok(BotIdentity {
            user_id: me.user_id.0,
            team_id: me.team_id.0,
            team: me.team,
        })
    }

    /// Whether the bot may read `channel`'s messages, which it needs to find a card an earlier
    /// attempt posted; reading them fails with `not_in_channel` when the bot was never invited.
    pub async fn can_read(&self, channel: &str) -> Result<(), CallError> {
        let request = SlackApiConversationsHistoryRequest {
            channel: Some(channel.into()),
            cursor: None,
            latest: None,
            limit: Some(1),
            oldest: None,
            inclusive: None,
            include_all_metadata: None,
        };
        self.bounded(
            "conversations.history",
            CALL_TIMEOUT,
            self.client.open_session(&self.token).conversations_history(&request),
        )
        .await?;
        Ok(())
    }

    /// The members of a user group (`usergroups.users.list`).
    pub async fn group_members(&self, group: &str) -> Result<Vec<String>, CallError> {
        let request = SlackApiUserGroupsUsersListRequest::new(SlackUserGroupId(group.to_owned()));
        let response = self
            .bounded(
                "usergroups.users.list",
                CALL_TIMEOUT,
                self.client.open_session(&self.token).usergroups_users_list(&request),
            )
            .await?;
        Ok(response.users.into_iter().map(|u| u.0).collect())
    }

    /// The active Slack user with this email (`users.lookupByEmail`), or `None` when the
    /// workspace has none (or only a deactivated one).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<String>, CallError> {
        let request = SlackApiUsersLookupByEmailRequest::new(EmailAddress(email.to_owned()));
        let answer = self
            .bounded(
                "users.lookupByEmail",
                CALL_TIMEOUT,
                self.client.open_session(&self.token).users_lookup_by_email(&request),
            )
            .await;
        match answer {
            Ok(found) if found.user.deleted == Some(true) => Ok(None),
            Ok(found) => Ok(Some(found.user.id.0)),
            Err(CallError::Permanent(code)) if code == "users_not_found" => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub async fn ephemeral(&self, channel: &str, user: &str, message: &Message) -> Result<(), CallError> {
        let request = SlackApiChatPostEphemeralRequest::new(channel.into(), user.into(), content(message)?);
        self.bounded(
            "chat.postEphemeral",
            CALL_TIMEOUT,
            self.client.open_session(&self.token).chat_post_ephemeral(&request),
        )
        .await?;
        Ok(())
    }
}
