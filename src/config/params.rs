//! A runbook's parameters: what a request may give besides `to <target>`, and how each value is
//! checked before anything is frozen.
use super::*;

pub(super) fn check_params(
    c: &mut Checker,
    runbook: &str,
    raw: &BTreeMap<String, Spanned<RawParam>>,
) -> BTreeMap<String, ParamSpec> {
    let mut params = BTreeMap::new();
    for (name, spanned) in raw {
        let spec = spanned.get_ref();
        let span = spanned.span();
        if !crate::grammar::is_param_name(name) {
            c.error(
                span.clone(),
                format!("runbook `{runbook}`: parameter `{name}` cannot be typed as `{name}=…` in Slack"),
                Some(
                    "name parameters in lower case letters, digits and `_`, not `to`, `runbook`, `severity` or `reason`"
                        .into(),
                ),
            );
            continue;
        }
        let choices = spec.choices.clone().unwrap_or_default();
        if spec.choices.as_ref().is_some_and(Vec::is_empty) {
            c.error(
                span.clone(),
                format!("parameter `{name}` has an empty `choices` list"),
                None,
            );
            continue;
        }
        let pattern_source = match (&spec.pattern, choices.is_empty()) {
            (Some(pattern), _) => pattern.get_ref().clone(),
            (None, false) => choices.iter().map(|c| regex::escape(c)).collect::<Vec<_>>().join("|"),
            (None, true) => {
                c.error(
                    span.clone(),
                    format!("parameter `{name}` has neither a `pattern` nor `choices`"),
                    Some(
                        "a value typed in Slack reaches commands: say what it may be, e.g. pattern = \"[0-9]+\"".into(),
                    ),
                );
                continue;
            }
        };
        let pattern = match Regex::new(&format!("^(?:{pattern_source})$")) {
            Ok(pattern) => pattern,
            Err(e) => {
                let span = spec.pattern.as_ref().map_or(span.clone(), Spanned::span);
                c.error(
                    span,
                    format!("pattern of parameter `{name}` is not a valid regular expression: {e}"),
                    None,
                );
                continue;
            }
        };
        for choice in choices.iter().filter(|choice| !pattern.is_match(choice)) {
            c.error(
                span.clone(),
                format!("choice `{choice}` of parameter `{name}` does not match its pattern `{pattern_source}`"),
                None,
            );
        }
        let default = spec.default.as_ref().map(|d| d.get_ref().clone());
        if let Some(default) = &spec.default {
            let value = default.get_ref();
            if !pattern.is_match(value) || (!choices.is_empty() && !choices.contains(value)) {
                c.error(
                    default.span(),
                    format!("the default `{value}` of parameter `{name}` is not a value it accepts"),
                    None,
                );
            }
        }
        if spec.required == Some(true) && default.is_some() {
            c.error(
                span.clone(),
                format!("parameter `{name}` has a default and `required = true`; a parameter with a default is never missing"),
                Some("remove one of them".into()),
            );
        }
        params.insert(
            name.clone(),
            ParamSpec {
                pattern,
                pattern_source,
                help: spec.help.clone(),
                required: spec.required.unwrap_or(default.is_none()),
                choices,
                default,
                discover: None,
            },
        );
    }
    params
}

/// Each parameter's `discover`: a read-only command or GET (checked as a preflight check is,
/// with the service and its vars only), and a reading of its output that can work.
pub(super) fn check_discoveries(
    c: &mut Checker,
    runbook: &str,
    raw: &BTreeMap<String, Spanned<RawParam>>,
    params: &mut BTreeMap<String, ParamSpec>,
    databases: &BTreeMap<String, String>,
    own_secrets: &[(String, &str)],
) {
    for (name, spanned) in raw {
        let (Some(discover), Some(spec)) = (&spanned.get_ref().discover, params.get_mut(name)) else {
            continue;
        };
        let span = discover.span();
        let discover = discover.get_ref();
        let check_name = Spanned::new(span.clone(), format!("discover {name}"));
        if discover.run.is_some() == discover.http.is_some() {
            c.error(
                span.clone(),
                format!("runbook `{runbook}`: parameter `{name}` discovers with neither or both of `run` and `http`"),
                Some("give one: run = [\"kubectl\", \"rollout\", \"history\", …] or http = { url = \"…\" }".into()),
            );
            continue;
        }
        let raw_templates = (discover.run.iter().flat_map(|run| run.get_ref().iter()))
            .chain(discover.http.iter().map(|http| http.url.get_ref()))
            .chain(discover.http.iter().flat_map(|http| http.headers.values()))
            .chain(discover.env.values());
        if raw_templates
            .into_iter()
            .any(|t| t.contains("params.") || t.contains("params["))
        {
            c.error(
                span.clone(),
                format!("runbook `{runbook}`: discovering `{name}` uses a parameter, and runs before any is given"),
                Some("use the service's vars ({{ vars.deployment }}) and {{ service }}".into()),
            );
            continue;
        }
        let before = c.errors.len();
        let checked = check_preflight(
            c,
            runbook,
            &[discover.as_step(check_name)],
            databases,
            own_secrets,
            &BTreeMap::new(),
        );
        let Some(source) = checked.into_iter().next().filter(|_| c.errors.len() == before) else {
            continue;
        };
        if let Some(timeout) = &discover.timeout
            && let StepKind::Command { timeout: t, .. } | StepKind::Http { timeout: t, .. } = &source.kind
            && *t > MAX_DISCOVERY_TIMEOUT
        {
            c.error(
                timeout.span(),
                format!(
                    "runbook `{runbook}`: discovering `{name}` may take at most {} s",
                    MAX_DISCOVERY_TIMEOUT.as_secs()
                ),
                Some("someone is looking at the form while it runs".into()),
            );
            continue;
        }
        let Some(reading) = discovery_reading(c, runbook, name, &span, discover) else {
            continue;
        };
        let mut templates_valid = true;
        for template in std::iter::once(&discover.value).chain(discover.label.as_ref()) {
            if let Err(e) = minijinja::Environment::new().template_from_str(template.get_ref()) {
                c.error(
                    template.span(),
                    format!("`{}` is not a valid template: {e}", template.get_ref()),
                    None,
                );
                templates_valid = false;
            }
        }
        let oldest_first = match discover.listed.as_ref().map(|l| l.get_ref().as_str()) {
            None | Some("newest-first") => false,
            Some("oldest-first") => true,
            Some(other) => {
                c.error(
                    discover.listed.as_ref().map_or(span.clone(), Spanned::span),
                    format!("`listed = \"{other}\"` is neither \"oldest-first\" nor \"newest-first\""),
                    None,
                );
                continue;
            }
        };
        let limit = discover.limit.as_ref().map_or(10, |l| *l.get_ref());
        if !(1..=crate::domain::discovery::MAX_CHOICES).contains(&limit) {
            c.error(
                discover.limit.as_ref().map_or(span.clone(), Spanned::span),
                format!(
                    "`limit` of discovering `{name}` must be 1 to {}",
                    crate::domain::discovery::MAX_CHOICES
                ),
                Some("a Slack select shows at most 100 options".into()),
            );
            continue;
        }
        if !templates_valid {
            continue;
        }
        let mut source = source;
        if discover.timeout.is_none()
            && let StepKind::Command { timeout, .. } | StepKind::Http { timeout, .. } = &mut source.kind
        {
            *timeout = DISCOVERY_TIMEOUT;
        }
        spec.discover = Some(crate::domain::discovery::Discovery {
            source,
            reading,
            value: discover.value.get_ref().clone(),
            label: discover.label.as_ref().map(|l| l.get_ref().clone()),
            oldest_first,
            skip_newest: discover.skip_newest,
            limit,
        });
    }
}

/// How a discovery's output reads into entries: `lines` (a regular expression that names what
/// a line holds) or `json` (a pointer to a list); `None` after saying what is wrong.
fn discovery_reading(
    c: &mut Checker,
    runbook: &str,
    name: &str,
    span: &std::ops::Range<usize>,
    discover: &RawDiscover,
) -> Option<crate::domain::discovery::Reading> {
    Some(match (&discover.lines, &discover.json) {
        (Some(lines), None) => match Regex::new(lines.get_ref()) {
            Ok(pattern) if pattern.capture_names().flatten().next().is_some() => {
                crate::domain::discovery::Reading::Lines(pattern)
            }
            Ok(_) => {
                c.error(
                    lines.span(),
                    format!("`lines` of discovering `{name}` has no named group"),
                    Some("name what a line holds, e.g. '^(?P<revision>[0-9]+)\\s+(?P<cause>.*)$', and use it as {{ entry.revision }}".into()),
                );
                return None;
            }
            Err(e) => {
                c.error(
                    lines.span(),
                    format!("`lines` of discovering `{name}` is not a valid regular expression: {e}"),
                    None,
                );
                return None;
            }
        },
        (None, Some(pointer)) if pointer.get_ref().is_empty() || pointer.get_ref().starts_with('/') => {
            crate::domain::discovery::Reading::Json(pointer.get_ref().clone())
        }
        (None, Some(pointer)) => {
            c.error(
                pointer.span(),
                format!("`json` of discovering `{name}` is not a JSON pointer"),
                Some("\"\" for the whole output, or a path like \"/items\"".into()),
            );
            return None;
        }
        _ => {
            c.error(
                span.clone(),
                format!("runbook `{runbook}`: discovering `{name}` needs one of `lines` (a regular expression) or `json` (a pointer)"),
                None,
            );
            return None;
        }
    })
}

/// How long a discovery runs unless it says, and at most: the form waits for it.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);
