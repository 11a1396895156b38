//! Runs a parameter's discovery for the request form: the read-only command or GET the
//! runbook declares, bounded by its timeout, read into choices by `domain::discovery`.
use super::Engine;
use super::preflight::run_reading;
use crate::domain::StepOutcome;
use crate::domain::discovery::{self, Offer};
use crate::outbound::HttpClient;

/// How much of a discovery's output is read: enough for a hundred entries of JSON.
const OUTPUT_BYTES: usize = 256 * 1024;

/// Discoveries and loss counts running at once in this process; more wait their turn, so
/// that many people opening forms at once cannot start programs without bound.
pub(super) static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

impl Engine {
    /// Whether `actor` may file requests here, and so have a form's discoveries run for them.
    pub fn may_request(&self, actor: &crate::domain::Actor) -> bool {
        crate::domain::decide::may_request(actor, &self.config.policy).is_ok()
    }

    /// What the form shows for `param` while discovery runs; `None` when it declares none.
    pub fn discovery_pending(&self, service: &str, runbook: &str, param: &str) -> Option<Offer> {
        let found = self.config.catalog.discovery(service, runbook, param)?;
        Some(match found {
            Ok((action, _, _)) => Offer::Looking {
                source: discovery::source_words(&action),
            },
            Err(why) => Offer::Failed {
                source: String::new(),
                why,
            },
        })
    }

    /// Recent values of `param` for a request of `service` with `runbook`, from the runbook's
    /// discovery; `None` when it declares none. Nothing it runs changes anything.
    pub async fn discover(&self, service: &str, runbook: &str, param: &str) -> Option<Offer> {
        let (action, spec, param_spec) = match self.config.catalog.discovery(service, runbook, param)? {
            Ok(found) => found,
            Err(why) => {
                return Some(Offer::Failed {
                    source: String::new(),
                    why,
                });
            }
        };
        let source = discovery::source_words(&action);
        let client = HttpClient::new().map_err(|e| format!("no HTTP client: {e:#}"));
        let about = [("ROLLBOT_SERVICE", service.to_owned())];
        let result = {
            let _turn = RUNNING.acquire().await.ok();
            run_reading(self, client.as_ref(), &about, &action, OUTPUT_BYTES).await
        };
        let offer = if result.outcome != StepOutcome::Succeeded {
            let said = result.output_tail.lines().last().unwrap_or_default().trim();
            let why = match (&result.detail, result.exit_code) {
                (Some(detail), _) => detail.clone(),
                (None, Some(code)) if said.is_empty() => format!("exited with code {code}"),
                (None, Some(code)) => format!("exited with code {code}: {said}"),
                (None, None) => format!("{:?}", result.outcome),
            };
            Offer::Failed {
                source,
                why: crate::text::truncate(&why, 300),
            }
        } else {
            match discovery::read_choices(spec, &result.output_tail, param_spec) {
                Ok(found) => Offer::Found { source, found },
                Err(why) => Offer::Failed { source, why },
            }
        };
        if let Offer::Failed { source, why } = &offer {
            tracing::warn!(service, runbook, param, source, why, "discovery found nothing to offer");
        }
        Some(offer)
    }
}
