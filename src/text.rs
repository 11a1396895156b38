//! Text helpers every message, template and page shares: mrkdwn escaping, visible
//! truncation, and how durations read. A leaf: it imports nothing of rollbot's.

/// Escapes the three characters mrkdwn gives meaning to, so user text can never become a
/// mention (`<!channel>`), a link or a user reference.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A character no message, record or page can carry: a control character other than a line
/// break or a tab (PostgreSQL's `jsonb` refuses NUL outright).
pub fn is_unprintable(c: char) -> bool {
    c.is_control() && !matches!(c, '\n' | '\t' | '\r')
}

/// `text` with every unprintable character replaced by `�`, for text rollbot relays but did not
/// ask for (an alert's summary), where refusing would lose the whole notification.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(is_unprintable) {
        text.chars()
            .map(|c| if is_unprintable(c) { '\u{FFFD}' } else { c })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// Cuts text to `max` characters, leaving a visible marker when it did.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    const MARKER: &str = "… (truncated)";
    let keep = max.saturating_sub(MARKER.chars().count());
    let mut kept: String = text.chars().take(keep).collect();
    // Escaped text must not be cut inside an entity: a stray `&` would be live markup.
    if let Some(amp) = kept.rfind('&') {
        let tail = &kept[amp..];
        if ["&amp;", "&lt;", "&gt;"]
            .iter()
            .any(|e| e.starts_with(tail) && *e != tail)
        {
            kept.truncate(amp);
        }
    }
    kept + MARKER
}

/// How long something took, as people read it: `4.2s`, `42s`, `3m 07s`.
pub fn duration_text(ms: u64) -> String {
    match ms {
        0..=9_999 => format!("{:.1}s", ms as f64 / 1000.0),
        10_000..=119_999 => format!("{}s", ms / 1000),
        _ => format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60),
    }
}
