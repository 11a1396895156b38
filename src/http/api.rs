//! `/api/v1`: read-only JSON and the post-mortem draft, behind a bearer token.
use super::*;

pub(super) fn api_authorized(state: &HttpState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(token) = &state.tokens.api else {
        return Err((
            StatusCode::NOT_FOUND,
            "the API is off: set ROLLBOT_API_TOKEN to turn it on\n",
        )
            .into_response());
    };
    bearer(headers, token)
}

pub(super) fn internal(e: anyhow::Error) -> Response {
    let reference = new_reference();
    tracing::error!(reference, error = format!("{e:#}"), "an API request failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("internal error, reference {reference}\n"),
    )
        .into_response()
}

pub(super) async fn api_list(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    if let Err(refused) = api_authorized(&state, &headers) {
        return refused;
    }
    match state.engine.recent(None, false, 100).await {
        Ok(rollbacks) => axum::Json(serde_json::json!({ "rollbacks": rollbacks })).into_response(),
        Err(e) => internal(e),
    }
}

/// The rollback an API path names, with its events; `Err` is the response to send instead.
pub(super) async fn api_record(
    state: &HttpState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(crate::domain::Rollback, Vec<crate::domain::Recorded>), Response> {
    api_authorized(state, headers)?;
    let Ok(id) = id.parse::<RollbackId>() else {
        return Err((StatusCode::NOT_FOUND, "not a rollback id; ids look like RB-12\n").into_response());
    };
    match state.engine.record(id).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err((StatusCode::NOT_FOUND, format!("there is no rollback {id}\n")).into_response()),
        Err(e) => Err(internal(e)),
    }
}

pub(super) async fn api_rollback(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match api_record(&state, &headers, &id).await {
        Ok((rollback, events)) => {
            axum::Json(serde_json::json!({ "rollback": rollback, "events": events })).into_response()
        }
        Err(response) => response,
    }
}

pub(super) async fn api_postmortem(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match api_record(&state, &headers, &id).await {
        Ok((rollback, events)) => (
            [("content-type", "text/markdown; charset=utf-8")],
            crate::postmortem::draft(&rollback, &events),
        )
            .into_response(),
        Err(response) => response,
    }
}
