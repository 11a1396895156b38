//! Targets from history: a runbook parameter may name a read-only command or GET whose output
//! lists the values people pick from (`kubectl rollout history`, `helm history -o json`,
//! `git log --oneline`). What is run and how its output reads are the configuration's; this
//! module turns an output into the choices the request form offers, and nothing here runs.
use super::plan::{Catalog, ParamSpec, StepTemplate};
use super::{StepAction, plan::MAX_PARAM_CHARS};
use regex::Regex;
use std::collections::BTreeMap;

/// Most choices a form offers (Slack's static select takes 100 options).
pub const MAX_CHOICES: usize = 100;
/// Longest option label Slack shows (`plain_text` of an option: 75 characters).
pub const MAX_LABEL_CHARS: usize = 75;

/// `[runbooks.X.params.Y.discover]`, checked.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// A command or a GET, rendered with the service's name and vars only: discovery runs
    /// before anything is typed, so no value from a person reaches it.
    pub source: StepTemplate,
    pub reading: Reading,
    /// The value an entry gives the parameter, a template over `entry`.
    pub value: String,
    /// What people read in the select, a template over `entry`; the value when absent.
    pub label: Option<String>,
    /// The output lists its newest entry last (`kubectl rollout history`, `helm history`).
    pub oldest_first: bool,
    /// The newest entry is what runs now, which a rollback cannot go back to: left out.
    pub skip_newest: bool,
    pub limit: usize,
}

/// How the output is read into entries.
#[derive(Debug, Clone)]
pub enum Reading {
    /// One entry per line that matches; its named groups are the entry's fields.
    Lines(Regex),
    /// A JSON array at this pointer (`""` for the whole document); its items are the entries.
    Json(String),
}

/// One value people may pick, and how it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// What a discovery found: the choices, newest first, and how many entries were left out
/// because their value is not one the parameter accepts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Found {
    pub choices: Vec<Choice>,
    pub not_accepted: usize,
}

/// What the request form knows of a parameter's history while it is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// The discovery is running; the form offers a text field meanwhile.
    Looking {
        source: String,
    },
    Found {
        source: String,
        found: Found,
    },
    Failed {
        source: String,
        why: String,
    },
}

/// Values from discovery, by parameter name, for the form being drawn.
pub type Offers = BTreeMap<String, Offer>;

/// The entries of `output`, in the order the output lists them.
fn entries(reading: &Reading, output: &str) -> Result<Vec<serde_json::Value>, String> {
    match reading {
        Reading::Lines(pattern) => Ok(output
            .lines()
            .filter_map(|line| {
                let captures = pattern.captures(line.trim_end())?;
                let fields: serde_json::Map<String, serde_json::Value> = pattern
                    .capture_names()
                    .flatten()
                    .filter_map(|name| Some((name.to_owned(), captures.name(name)?.as_str().trim().into())))
                    .collect();
                Some(serde_json::Value::Object(fields))
            })
            .collect()),
        Reading::Json(pointer) => {
            // Tools print warnings on stderr, which arrives in the same output: the document
            // starts at the first line that opens one.
            let start = output
                .lines()
                .scan(0, |offset, line| {
                    let at = *offset;
                    *offset += line.len() + 1;
                    Some((at, line))
                })
                .find(|(_, line)| line.trim_start().starts_with(['[', '{']))
                .map(|(at, _)| at)
                .ok_or("the output holds no JSON document")?;
            let mut stream = serde_json::Deserializer::from_str(&output[start..]).into_iter::<serde_json::Value>();
            let document = stream
                .next()
                .ok_or("the output holds no JSON document")?
                .map_err(|e| format!("the output is not JSON: {e}"))?;
            let list = document
                .pointer(pointer)
                .ok_or_else(|| format!("the JSON has nothing at `{pointer}`"))?;
            list.as_array()
                .cloned()
                .ok_or_else(|| format!("the JSON at `{pointer}` is not a list"))
        }
    }
}

/// A JSON value as the template language holds it.
fn template_value(value: &serde_json::Value) -> minijinja::Value {
    use serde_json::Value;
    match value {
        Value::Null => minijinja::Value::from(()),
        Value::Bool(b) => minijinja::Value::from(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => minijinja::Value::from(i),
            None => minijinja::Value::from(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => minijinja::Value::from(s.as_str()),
        Value::Array(items) => minijinja::Value::from(items.iter().map(template_value).collect::<Vec<_>>()),
        Value::Object(map) => minijinja::Value::from(
            map.iter()
                .map(|(k, v)| (k.clone(), template_value(v)))
                .collect::<BTreeMap<String, minijinja::Value>>(),
        ),
    }
}

fn render_entry(template: &str, entry: &serde_json::Value) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.render_str(template, minijinja::context! { entry => template_value(entry) })
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("`{template}`: {e}"))
}

/// The choices `output` offers for `param`: newest first, each value one the parameter
/// accepts (its pattern, its choices, its length), no value twice, at most the limit.
pub fn read_choices(discovery: &Discovery, output: &str, param: &ParamSpec) -> Result<Found, String> {
    let mut listed = entries(&discovery.reading, output)?;
    if discovery.oldest_first {
        listed.reverse();
    }
    if discovery.skip_newest && !listed.is_empty() {
        listed.remove(0);
    }
    let mut found = Found::default();
    for entry in &listed {
        let value = render_entry(&discovery.value, entry)?;
        let accepted = !value.is_empty()
            && value.chars().count() <= MAX_PARAM_CHARS
            && param.pattern.is_match(&value)
            && (param.choices.is_empty() || param.choices.contains(&value));
        if !accepted {
            found.not_accepted += 1;
            continue;
        }
        if found.choices.iter().any(|c| c.value == value) || found.choices.len() >= discovery.limit {
            continue;
        }
        let label = match &discovery.label {
            Some(template) => render_entry(template, entry)?,
            None => value.clone(),
        };
        let label = if label.is_empty() { value.clone() } else { label };
        found.choices.push(Choice {
            value,
            label: crate::text::truncate(&label, MAX_LABEL_CHARS),
        });
    }
    Ok(found)
}

impl Catalog {
    /// What discovering `param` of `runbook` for `service` runs, rendered for that service;
    /// `None` when the parameter declares no discovery.
    pub fn discovery(
        &self,
        service: &str,
        runbook: &str,
        param: &str,
    ) -> Option<Result<(StepAction, &Discovery, &ParamSpec), String>> {
        let service = self.services.get(service)?;
        let runbook = self
            .runbooks
            .get(runbook)
            .filter(|_| service.runbooks.iter().any(|r| r == runbook))?;
        let spec = runbook.params.get(param)?;
        let discovery = spec.discover.as_ref()?;
        let no_params = BTreeMap::new();
        let render = |t: &str| super::plan::render_template(t, &service.name, &service.vars, &no_params);
        let render_url = |t: &str| {
            super::plan::render_url(
                t,
                &service.name,
                &service.vars,
                &no_params,
                self.allowed_hosts.as_deref(),
            )
        };
        Some(
            discovery
                .source
                .kind
                .render(&render, &render_url)
                .map(|action| (action, discovery, spec)),
        )
    }
}

/// The words a form shows for where the choices come from: the command as typed, or the URL.
pub fn source_words(action: &StepAction) -> String {
    match action {
        StepAction::Command { argv, .. } => argv.join(" "),
        StepAction::Http { url, .. } | StepAction::Health { url, .. } => format!("GET {url}"),
        other => other.kind().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::StepKind;
    use std::time::Duration;

    fn discovery(reading: Reading, value: &str, label: Option<&str>) -> Discovery {
        Discovery {
            source: StepTemplate {
                name: "discover".into(),
                kind: StepKind::Command {
                    run: vec!["true".into()],
                    env: BTreeMap::new(),
                    workdir: None,
                    timeout: Duration::from_secs(5),
                },
                confirm: None,
                retries: 0,
                retry_delay: Duration::ZERO,
                on_failure: Default::default(),
                skippable: false,
                drill: None,
                backup: false,
                verify: false,
                loses: None,
            },
            reading,
            value: value.into(),
            label: label.map(str::to_owned),
            oldest_first: true,
            skip_newest: true,
            limit: 10,
        }
    }

    fn revision() -> ParamSpec {
        ParamSpec {
            pattern: Regex::new("^(?:[0-9]+)$").unwrap(),
            pattern_source: "[0-9]+".into(),
            help: None,
            choices: vec![],
            default: None,
            required: true,
            discover: None,
        }
    }

    const KUBECTL: &str = "deployment.apps/checkout-api \nREVISION  CHANGE-CAUSE\n39        <none>\n40        image checkout:1.4.1\n41        image checkout:1.4.2\n42        image checkout:1.5.0\n\n";

    #[test]
    fn kubectl_history_reads_newest_first_without_the_running_revision() {
        let d = discovery(
            Reading::Lines(Regex::new(r"^(?P<revision>[0-9]+)\s+(?P<cause>.*)$").unwrap()),
            "{{ entry.revision }}",
            Some("{{ entry.revision }} · {{ entry.cause }}"),
        );
        let found = read_choices(&d, KUBECTL, &revision()).unwrap();
        let labels: Vec<&str> = found.choices.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            ["41 · image checkout:1.4.2", "40 · image checkout:1.4.1", "39 · <none>"]
        );
        assert_eq!(found.choices[0].value, "41");
        assert_eq!(found.not_accepted, 0);
    }

    #[test]
    fn helm_history_json_after_a_warning_reads_its_fields() {
        let output = "WARNING: Kubernetes configuration file is group-readable.\n[{\"revision\":11,\"updated\":\"2026-11-30T10:00:00.1+00:00\",\"status\":\"superseded\",\"chart\":\"search-2.3.0\"},{\"revision\":12,\"updated\":\"2026-12-01T09:30:00.1+00:00\",\"status\":\"deployed\",\"chart\":\"search-2.4.0\"}]\n";
        let mut d = discovery(
            Reading::Json(String::new()),
            "{{ entry.revision }}",
            Some("{{ entry.revision }} · {{ entry.chart }} · {{ entry.updated[:16] }}"),
        );
        d.skip_newest = false;
        let found = read_choices(&d, output, &revision()).unwrap();
        assert_eq!(
            found.choices,
            [
                Choice {
                    value: "12".into(),
                    label: "12 · search-2.4.0 · 2026-12-01T09:30".into()
                },
                Choice {
                    value: "11".into(),
                    label: "11 · search-2.3.0 · 2026-11-30T10:00".into()
                }
            ]
        );
    }

    #[test]
    fn values_the_parameter_refuses_are_left_out_and_counted_never_offered() {
        let d = discovery(
            Reading::Lines(Regex::new(r"^(?P<v>\S+)").unwrap()),
            "{{ entry.v }}",
            None,
        );
        let mut d = d;
        d.oldest_first = false;
        d.skip_newest = false;
        d.limit = 2;
        let found = read_choices(&d, "7\n$(rm -rf /)\n7\n8\n9\n", &revision()).unwrap();
        assert_eq!(
            found.choices.iter().map(|c| c.value.as_str()).collect::<Vec<_>>(),
            ["7", "8"],
            "no value twice, at most the limit"
        );
        assert_eq!(found.not_accepted, 1);
    }

    #[test]
    fn output_that_is_not_what_was_declared_says_so() {
        let d = discovery(Reading::Json("/items".into()), "{{ entry.v }}", None);
        assert_eq!(
            read_choices(&d, "error: the server doesn't have a resource type", &revision()),
            Err("the output holds no JSON document".into())
        );
        assert_eq!(
            read_choices(&d, "{\"kind\": \"List\"}", &revision()),
            Err("the JSON has nothing at `/items`".into())
        );
    }
}
