//! `${env:NAME}` references in a plan are resolved only when a step runs, so plans, cards, the
//! database and logs hold the reference, never the value. Whatever a step sends back (output,
//! response excerpts, errors) is scrubbed of the resolved values before it is recorded.
pub use crate::secret::scrub_values;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The variables rollbot itself is configured with. Runbooks may never reference them: a step
/// could otherwise send the bot token or the signing secret anywhere.
pub const ROLLBOT_OWN: [&str; 8] = [
    "SLACK_SIGNING_SECRET",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "ROLLBOT_API_TOKEN",
    "ROLLBOT_ALERTMANAGER_TOKEN",
    "DATABASE_URL",
    "STATUSPAGE_API_KEY",
    "STATUSPAGE_WEBHOOK_SECRET",
];

/// Where values come from: the process environment in production, a map in tests.
#[derive(Clone)]
pub enum SecretSource {
    Process,
    Fixed(Arc<BTreeMap<String, String>>),
}

impl SecretSource {
    /// Whether `${env:NAME}` would resolve, without handing out the value.
    pub fn is_set(&self, name: &str) -> bool {
        self.lookup(name).is_some()
    }

    fn lookup(&self, name: &str) -> Option<String> {
        match self {
            SecretSource::Process => std::env::var(name).ok(),
            SecretSource::Fixed(map) => map.get(name).cloned(),
        }
    }
}

/// The names referenced as `${env:NAME}` in `text`, in order.
pub fn references(text: &str) -> Vec<&str> {
    let mut names = vec![];
    let mut rest = text;
    while let Some(start) = rest.find("${env:") {
        let after = &rest[start + 6..];
        match after.find('}') {
            Some(end) => {
                names.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    names
}

/// Why a reference can never be resolved, for `rollbot check`.
pub fn invalid_reference(name: &str) -> Option<String> {
    let well_formed = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !well_formed {
        return Some(format!("`${{env:{name}}}` is not a valid variable name (A-Z, 0-9, _)"));
    }
    let base = name.strip_suffix("_FILE").unwrap_or(name);
    if ROLLBOT_OWN.contains(&base) {
        return Some(format!(
            "`${{env:{name}}}` is one of rollbot's own secrets; give the step its own credential"
        ));
    }
    None
}

/// Values resolved for one step, remembered so they can be scrubbed from what it returns.
#[derive(Default, Clone)]
pub struct Resolved {
    values: Vec<(String, String)>,
}

impl Resolved {
    /// Replaces every `${env:NAME}` in `text` with its value.
    pub fn resolve(&mut self, source: &SecretSource, text: &str) -> Result<String, String> {
        let mut out = text.to_owned();
        for name in references(text) {
            if let Some(problem) = invalid_reference(name) {
                return Err(problem);
            }
            let value = source
                .lookup(name)
                .ok_or_else(|| format!("`${{env:{name}}}` is not set in rollbot's environment"))?;
            out = out.replace(&format!("${{env:{name}}}"), &value);
            if !value.is_empty() {
                self.values.push((name.to_owned(), value));
            }
        }
        Ok(out)
    }

    /// `text` with every resolved value replaced by its reference: as it is, and as the
    /// encodings that echo it back most often write it (percent-encoded, base64, JSON-escaped).
    /// A tail cut from a longer output that begins inside a value loses that part too.
    pub fn scrub(&self, text: &str) -> String {
        scrub_values(
            text,
            self.values.iter().map(|(name, value)| (name.as_str(), value.as_str())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SecretSource {
        SecretSource::Fixed(Arc::new(BTreeMap::from([
            ("FLAG_TOKEN".to_owned(), "s3cr3t-token".to_owned()),
            ("ORDERS_DB".to_owned(), "postgres://u:pw@db/orders".to_owned()),
        ])))
    }

    #[test]
    fn references_are_resolved_and_scrubbed_back() {
        let mut resolved = Resolved::default();
        let header = resolved.resolve(&source(), "Bearer ${env:FLAG_TOKEN}").unwrap();
        assert_eq!(header, "Bearer s3cr3t-token");
        assert_eq!(
            resolved.scrub("echo: Bearer s3cr3t-token"),
            "echo: Bearer ${env:FLAG_TOKEN}"
        );
    }

    #[test]
    fn unset_and_forbidden_references_are_refused_by_name_only() {
        let mut resolved = Resolved::default();
        assert_eq!(
            resolved.resolve(&source(), "${env:MISSING}").unwrap_err(),
            "`${env:MISSING}` is not set in rollbot's environment"
        );
        assert!(
            resolved
                .resolve(&source(), "${env:SLACK_BOT_TOKEN}")
                .unwrap_err()
                .contains("rollbot's own secrets")
        );
        assert!(invalid_reference("lower").is_some());
        assert_eq!(references("a ${env:A} b ${env:B_2} ${env:"), ["A", "B_2"]);
        assert!(
            invalid_reference("ROLLBOT_ALERTMANAGER_TOKEN").is_some(),
            "Alertmanager's token is rollbot's own too"
        );
    }

    #[test]
    fn echoes_of_a_secret_in_common_encodings_are_scrubbed() {
        let mut resolved = Resolved::default();
        resolved.resolve(&source(), "${env:ORDERS_DB}").unwrap();
        for echo in [
            "postgres%3A%2F%2Fu%3Apw%40db%2Forders",
            "cG9zdGdyZXM6Ly91OnB3QGRiL29yZGVycw==",
            "cG9zdGdyZXM6Ly91OnB3QGRiL29yZGVycw",
        ] {
            assert_eq!(
                resolved.scrub(&format!("seen: {echo}!")),
                "seen: ${env:ORDERS_DB}!",
                "{echo}"
            );
        }
        let mut quoted = Resolved::default();
        let source = SecretSource::Fixed(Arc::new(BTreeMap::from([("Q".to_owned(), "pa\"ss\\word".to_owned())])));
        quoted.resolve(&source, "${env:Q}").unwrap();
        assert_eq!(quoted.scrub(r#"{"token":"pa\"ss\\word"}"#), r#"{"token":"${env:Q}"}"#);
    }

    #[test]
    fn a_tail_cut_inside_a_secret_loses_the_piece() {
        let mut resolved = Resolved::default();
        resolved.resolve(&source(), "${env:FLAG_TOKEN}").unwrap();
        // The output was `token=s3cr3t-token done`, and its tail was cut after `token=s3c`.
        assert_eq!(resolved.scrub("r3t-token done"), "${env:FLAG_TOKEN} done");
        assert_eq!(resolved.scrub("oken done"), "${env:FLAG_TOKEN} done");
        assert_eq!(
            resolved.scrub("ken done"),
            "ken done",
            "three characters are too few to tell apart"
        );
    }
}
