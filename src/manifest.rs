//! The Slack app manifest (`manifest/slack-app.yaml`) with rollbot's request URLs filled in.
const TEMPLATE: &str = include_str!("../manifest/slack-app.yaml");
const PLACEHOLDER: &str = "https://rollbot.example.com";

/// The manifest for a rollbot reachable at `base_url` (scheme and host, optionally a path).
pub fn for_base_url(base_url: &str) -> Result<String, String> {
    let base = base_url.trim().trim_end_matches('/');
    let valid = (base.starts_with("https://") || base.starts_with("http://"))
        && base.split("://").nth(1).is_some_and(|rest| !rest.is_empty())
        && !base.contains(char::is_whitespace)
        && !base.contains(['"', '\'', '#', '?']);
    if !valid {
        return Err(format!(
            "`{base_url}` is not a base URL; give where Slack reaches rollbot, e.g. --base-url https://rollbot.example.com"
        ));
    }
    if base.starts_with("http://") {
        // Slack requires https for request URLs; allow http only so local tunnels can be tried.
        eprintln!("warning: Slack only calls https:// request URLs");
    }
    Ok(TEMPLATE.replace(PLACEHOLDER, base))
}

/// The manifest for Socket Mode: no request URLs (Slack reaches rollbot over the socket rollbot
/// opens), `socket_mode_enabled: true`.
pub fn for_socket_mode() -> String {
    TEMPLATE
        .lines()
        .filter(|line| !(line.contains(PLACEHOLDER) && line.trim_start().starts_with(['u', 'r'])))
        .map(|line| {
            if line.trim() == "socket_mode_enabled: false" {
                line.replace("false", "true")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_mode_variant_has_no_request_urls() {
        let manifest = for_socket_mode();
        assert!(!manifest.contains("rollbot.example.com/slack"), "{manifest}");
        assert!(manifest.contains("socket_mode_enabled: true"));
        assert!(!manifest.contains("socket_mode_enabled: false"));
        assert!(manifest.contains("command: /rollback"));
        assert!(manifest.contains("is_enabled: true"));
    }

    #[test]
    fn urls_are_filled_in_and_bad_input_is_refused() {
        let manifest = for_base_url("https://bots.acme.io/rollbot/").unwrap();
        assert!(manifest.contains("url: https://bots.acme.io/rollbot/slack/commands"));
        assert!(manifest.contains("request_url: https://bots.acme.io/rollbot/slack/interactions"));
        assert!(!manifest.contains(PLACEHOLDER));
        for bad in ["rollbot.acme.io", "https://", "https://a b", "ftp://x", "https://x\"y"] {
            assert!(for_base_url(bad).is_err(), "{bad}");
        }
    }
}
