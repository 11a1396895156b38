//! A secret value: shown as `****` in every debug print, handed out only by `expose`; and how
//! secret values are scrubbed from text that may echo them. A leaf.
use std::fmt;

/// A secret that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// The forms a secret's value is echoed in.
fn echoes(value: &str) -> Vec<String> {
    use base64::Engine;
    let mut forms = vec![value.to_owned()];
    let percent = percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string();
    forms.push(percent);
    forms.push(base64::engine::general_purpose::STANDARD.encode(value));
    forms.push(base64::engine::general_purpose::STANDARD_NO_PAD.encode(value));
    forms.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value));
    if let Ok(json) = serde_json::to_string(value) {
        forms.push(json.trim_matches('"').to_owned());
    }
    forms.sort();
    forms.dedup();
    forms
}

/// The shortest piece of a value a cut may leave at the start of a tail and still be scrubbed:
/// shorter pieces are too common in ordinary text to tell apart.
const SHORTEST_PIECE: usize = 4;

/// `text` with each `(name, value)` scrubbed as [`Resolved::scrub`] does.
pub fn scrub_values<'a>(text: &str, values: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut forms: Vec<(String, &str)> = values
        .filter(|(_, value)| !value.is_empty())
        .flat_map(|(name, value)| echoes(value).into_iter().map(move |form| (form, name)))
        .collect();
    // Longest first, so a value that contains another is replaced whole.
    forms.sort_by_key(|(form, _)| std::cmp::Reverse(form.len()));
    let mut out = text.to_owned();
    for (form, name) in &forms {
        out = out.replace(form.as_str(), &format!("${{env:{name}}}"));
    }
    for (form, name) in &forms {
        let longest = form.len().saturating_sub(1);
        let cut_inside = (SHORTEST_PIECE..=longest)
            .rev()
            .filter(|n| form.is_char_boundary(form.len() - n))
            .find(|n| out.starts_with(&form[form.len() - n..]));
        if let Some(n) = cut_inside {
            out = format!("${{env:{name}}}{}", &out[n..]);
        }
    }
    out
}
