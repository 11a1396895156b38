//! `POST /hooks/alertmanager`: firing alerts become proposals people start or dismiss.
use super::*;

/// Alertmanager's webhook: each firing group becomes a proposal card (or updates its card).
/// Answered only once everything is recorded, so a 2xx means nothing is lost; alerts for
/// services rollbot does not know are logged, counted and answered 200 so Alertmanager does
/// not retry them forever.
pub(super) async fn alertmanager_hook(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let engine = &state.engine;
    let (Some(settings), Some(token)) = (&engine.config.alertmanager, &state.tokens.alertmanager) else {
        return (
            StatusCode::NOT_FOUND,
            "the Alertmanager hook is off: configure [alertmanager] (docs/alerts.md)\n",
        )
            .into_response();
    };
    if let Err(refused) = bearer(&headers, token) {
        tracing::warn!("refused an Alertmanager notification without the right bearer token");
        return refused;
    }
    let notification = match crate::alertmanager::parse(&body) {
        Ok(notification) => notification,
        Err(problem) => {
            tracing::warn!(%problem, "refused an Alertmanager notification");
            return (StatusCode::BAD_REQUEST, format!("{problem}; nothing was recorded\n")).into_response();
        }
    };
    let sorted = crate::alertmanager::sort(&notification, settings, &engine.config.catalog);
    let span = tracing::info_span!("alertmanager", group = %notification.group_key, status = %notification.status, receiver = %notification.receiver);
    async {
        let unlabelled = sorted.unknown.iter().filter(|s| s.is_none()).count() as u64;
        let unknown: Vec<&str> = sorted.unknown.iter().flatten().map(String::as_str).collect();
        if !unknown.is_empty() || unlabelled > 0 {
            tracing::warn!(
                unknown_services = ?unknown,
                without_service_label = unlabelled,
                label = %settings.service_label,
                "alerts for services rollbot does not know; no proposal"
            );
        }
        state.live.alerts("unknown_service", unknown.len() as u64);
        state.live.alerts("no_service_label", unlabelled);
        let matched: usize = sorted.groups.iter().map(|g| g.alerts.len()).sum();
        state.live.alerts("matched", matched as u64);
        let mut proposals = vec![];
        for group in &sorted.groups {
            match engine.observe_alerts(group).await {
                Ok(Some(proposal)) => proposals.push(proposal.id.to_string()),
                Ok(None) => {}
                Err(e) => {
                    let reference = new_reference();
                    tracing::error!(reference, error = format!("{e:#}"), service = %group.service, "recording an alert group failed");
                    // Alertmanager retries a 5xx; what was recorded is updated, not doubled.
                    return (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("internal error, reference {reference}\n"),
                    )
                        .into_response();
                }
            }
        }
        axum::Json(serde_json::json!({ "proposals": proposals, "unknown_services": unknown })).into_response()
    }
    .instrument(span)
    .await
}
