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
            },
        );
    }
    params
}
