//! The `/rollback` command language:
//! `help | <service> [to <target>] [runbook <name>] [severity <level>] [reason "<text>"]
//!  [incident <status page incident id or URL>] [<param>=<value>…]
//!  | plan … | drill … | status [RB-n] | list [drills] | cancel RB-n | postmortem RB-n
//!  | note RB-n <text>`.
use crate::domain::plan::nearest;
use crate::domain::{RollbackId, Severity};

/// Longest command text accepted; Slack itself allows about 4,000 characters.
pub const MAX_COMMAND_CHARS: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Request(RequestArgs),
    Plan(RequestArgs),
    Status(Option<RollbackId>),
    /// Recent rollbacks in the channel; `drills`: only drills.
    List {
        drills: bool,
    },
    Cancel(RollbackId),
    Postmortem(RollbackId),
    /// `note RB-n <text>`: a note on the rollback's timeline, for the post-mortem.
    Note {
        id: RollbackId,
        text: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestArgs {
    /// `/rollback drill …`: rehearse, do not execute.
    pub drill: bool,
    pub service: String,
    pub target: Option<String>,
    pub runbook: Option<String>,
    pub severity: Option<Severity>,
    pub reason: Option<String>,
    /// `incident <id>`: the status page incident to carry on instead of opening one.
    pub status_incident: Option<String>,
    /// `name=value` words: the runbook's parameters (`target=41` is `to 41`).
    pub params: std::collections::BTreeMap<String, String>,
}

impl RequestArgs {
    /// What was typed, as the engine takes it.
    pub fn ask(&self) -> crate::domain::plan::Ask {
        crate::domain::plan::Ask {
            plan: crate::domain::plan::PlanRequest {
                service: self.service.clone(),
                runbook: self.runbook.clone(),
                target: self.target.clone(),
                params: self.params.clone(),
            },
            severity: self.severity,
            reason: self.reason.clone(),
            status_incident: self.status_incident.clone(),
            fallback_of: None,
            drill: self.drill,
            detected: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    TooLong {
        max: usize,
    },
    UnterminatedQuote,
    /// A control character (a NUL byte, an escape sequence pasted from a terminal).
    ControlCharacter,
    MissingService {
        found: Option<String>,
    },
    BadServiceName {
        word: String,
    },
    UnknownWord {
        word: String,
        suggestion: Option<String>,
    },
    MissingValue {
        keyword: &'static str,
    },
    Repeated {
        keyword: &'static str,
    },
    /// `tables=` with nothing after the `=`.
    MissingParamValue {
        name: String,
    },
    RepeatedParam {
        name: String,
    },
    BadSeverity {
        word: String,
        suggestion: Option<String>,
    },
    BadId {
        command: &'static str,
        word: Option<String>,
    },
    UnexpectedAfter {
        command: &'static str,
        word: String,
    },
    /// `incident` followed by neither an incident's id nor its address.
    BadIncident {
        word: String,
    },
}

pub const OPTION_KEYWORDS: [&str; 5] = ["to", "runbook", "severity", "reason", "incident"];
pub const SUBCOMMANDS: [&str; 7] = ["help", "plan", "status", "list", "cancel", "drill", "postmortem"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    quoted: bool,
    /// Typed right after the previous token, with no space: `tables="a b"` is `tables=` and a
    /// glued quoted `a b`.
    glued: bool,
}

/// Slack escapes `&`, `<` and `>` in command text; undo it so the words are what was typed.
/// Everything is escaped again whenever it is shown.
fn unescape_slack(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let mut tokens = vec![];
    let mut chars = text.chars().peekable();
    let mut after_space = true;
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            after_space = true;
            continue;
        }
        let glued = !std::mem::replace(&mut after_space, false);
        // Slack clients turn " into “ ” as people type, so accept both.
        if matches!(c, '"' | '“' | '”') {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next() {
                    None => return Err(ParseError::UnterminatedQuote),
                    Some('"' | '“' | '”') => break,
                    Some(ch) => text.push(ch),
                }
            }
            tokens.push(Token {
                text,
                quoted: true,
                glued,
            });
            continue;
        }
        let mut word = String::new();
        while let Some(&ch) = chars.peek() {
            if ch.is_whitespace() || matches!(ch, '"' | '“' | '”') {
                break;
            }
            word.push(ch);
            chars.next();
        }
        tokens.push(Token {
            text: word,
            quoted: false,
            glued,
        });
    }
    Ok(tokens)
}

pub fn parse(text: &str) -> Result<Command, ParseError> {
    if text.chars().count() > MAX_COMMAND_CHARS {
        return Err(ParseError::TooLong { max: MAX_COMMAND_CHARS });
    }
    if text.chars().any(crate::text::is_unprintable) {
        return Err(ParseError::ControlCharacter);
    }
    let tokens = tokenize(&unescape_slack(text))?;
    let Some(first) = tokens.first() else {
        return Ok(Command::Help);
    };
    let rest = &tokens[1..];
    let head = if first.quoted {
        String::new()
    } else {
        first.text.to_lowercase()
    };
    match head.as_str() {
        "help" => Ok(Command::Help),
        "list" => match rest {
            [] => Ok(Command::List { drills: false }),
            [word] if !word.quoted && word.text.eq_ignore_ascii_case("drills") => Ok(Command::List { drills: true }),
            [extra, ..] => Err(ParseError::UnexpectedAfter {
                command: "list",
                word: extra.text.clone(),
            }),
        },
        "status" => match rest {
            [] => Ok(Command::Status(None)),
            [id] => parse_id("status", id).map(|id| Command::Status(Some(id))),
            [_, extra, ..] => Err(ParseError::UnexpectedAfter {
                command: "status",
                word: extra.text.clone(),
            }),
        },
        "cancel" => match rest {
            [] => Err(ParseError::BadId {
                command: "cancel",
                word: None,
            }),
            [id] => parse_id("cancel", id).map(Command::Cancel),
            [_, extra, ..] => Err(ParseError::UnexpectedAfter {
                command: "cancel",
                word: extra.text.clone(),
            }),
        },
        "plan" => parse_request(rest).map(Command::Plan),
        // A drill is a request that says so (docs/drills.md); everything else is the same path.
        "drill" => parse_request(rest).map(|args| Command::Request(RequestArgs { drill: true, ..args })),
        "postmortem" => match rest {
            [] => Err(ParseError::BadId {
                command: "postmortem",
                word: None,
            }),
            [id] => parse_id("postmortem", id).map(Command::Postmortem),
            [_, extra, ..] => Err(ParseError::UnexpectedAfter {
                command: "postmortem",
                word: extra.text.clone(),
            }),
        },
        "note" => match rest {
            [] => Err(ParseError::BadId {
                command: "note",
                word: None,
            }),
            [id, words @ ..] => parse_id("note", id).map(|id| Command::Note {
                id,
                text: words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" "),
            }),
        },
        _ => parse_request(&tokens).map(Command::Request),
    }
}

fn parse_id(command: &'static str, token: &Token) -> Result<RollbackId, ParseError> {
    token.text.parse().map_err(|_| ParseError::BadId {
        command,
        word: Some(token.text.clone()),
    })
}

fn is_keyword(token: &Token) -> Option<&'static str> {
    if token.quoted {
        return None;
    }
    let lower = token.text.to_lowercase();
    OPTION_KEYWORDS.into_iter().find(|k| *k == lower)
}

/// `name=value` (or `name=` before a glued quoted value): a runbook parameter. The name is an
/// identifier, so a reason or target with an `=` in it is never read as one when quoted.
fn param_assignment(token: &Token) -> Option<(String, &str)> {
    if token.quoted {
        return None;
    }
    let (name, value) = token.text.split_once('=')?;
    // Phones capitalise the first letter of a word: `Tables=` is `tables=`.
    let name = name.to_ascii_lowercase();
    is_param_name(&name).then_some((name, value))
}

/// What a parameter may be called: the configuration is checked against the same rule.
pub fn is_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !OPTION_KEYWORDS.contains(&name)
}

fn parse_request(tokens: &[Token]) -> Result<RequestArgs, ParseError> {
    let Some((service, options)) = tokens.split_first() else {
        return Err(ParseError::MissingService { found: None });
    };
    if is_keyword(service).is_some() {
        return Err(ParseError::MissingService {
            found: Some(service.text.clone()),
        });
    }
    if service.quoted
        || service.text.len() > 100
        || !service
            .text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ParseError::BadServiceName {
            word: service.text.clone(),
        });
    }
    let mut args = RequestArgs {
        service: service.text.clone(),
        ..Default::default()
    };
    let mut i = 0;
    while i < options.len() {
        let token = &options[i];
        if let Some((name, inline)) = param_assignment(token) {
            i += 1;
            let value = if !inline.is_empty() {
                inline.to_owned()
            } else if let Some(quoted) = options.get(i).filter(|t| t.quoted && t.glued) {
                i += 1;
                quoted.text.clone()
            } else {
                return Err(ParseError::MissingParamValue { name });
            };
            let taken = if name == "target" {
                args.target.replace(value).is_some()
            } else {
                args.params.insert(name.clone(), value).is_some()
            };
            if taken {
                return Err(ParseError::RepeatedParam { name });
            }
            continue;
        }
        let Some(keyword) = is_keyword(token) else {
            let suggestion = if token.quoted {
                None
            } else {
                nearest(&token.text, OPTION_KEYWORDS)
            };
            return Err(ParseError::UnknownWord {
                word: token.text.clone(),
                suggestion,
            });
        };
        let value = options
            .get(i + 1)
            .filter(|t| is_keyword(t).is_none() && param_assignment(t).is_none());
        let Some(value) = value else {
            return Err(ParseError::MissingValue { keyword });
        };
        i += 2;
        let slot_taken = match keyword {
            "to" => args.target.replace(value.text.clone()).is_some(),
            "runbook" => args.runbook.replace(value.text.clone()).is_some(),
            "severity" => {
                let severity = value.text.parse::<Severity>().map_err(|_| ParseError::BadSeverity {
                    word: value.text.clone(),
                    suggestion: nearest(&value.text, Severity::ALL.map(Severity::as_str)),
                })?;
                args.severity.replace(severity).is_some()
            }
            "reason" => {
                // An unquoted reason runs to the next keyword, so `reason bad deploy` works too.
                let mut reason = value.text.clone();
                if !value.quoted {
                    while let Some(next) = options
                        .get(i)
                        .filter(|t| is_keyword(t).is_none() && param_assignment(t).is_none())
                    {
                        reason.push(' ');
                        reason.push_str(&next.text);
                        i += 1;
                    }
                }
                args.reason.replace(reason).is_some()
            }
            "incident" => {
                let id = incident_id(&value.text).ok_or_else(|| ParseError::BadIncident {
                    word: value.text.clone(),
                })?;
                args.status_incident.replace(id).is_some()
            }
            _ => unreachable!("is_keyword only returns option keywords"),
        };
        if slot_taken {
            return Err(ParseError::Repeated { keyword });
        }
    }
    Ok(args)
}

/// The id of a status page incident, typed as itself or pasted as its address: Statuspage's
/// manage page (`…/pages/<page>/incidents/<id>`) or the public one (`…/incidents/<id>`), bare or
/// as Slack wraps a link (`<https://…|label>`).
pub fn incident_id(word: &str) -> Option<String> {
    let word = word.trim_start_matches('<').trim_end_matches('>');
    let word = word.split('|').next().unwrap_or_default();
    let id = match word.split_once("/incidents/") {
        Some((_, rest)) => rest.split(['/', '?', '#']).next().unwrap_or_default(),
        None => word,
    };
    let plausible =
        !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    plausible.then(|| id.to_owned())
}

impl RequestArgs {
    /// The canonical text of these arguments, which parses back to the same value.
    pub fn to_text(&self) -> String {
        let mut text = if self.drill {
            format!("drill {}", self.service)
        } else {
            self.service.clone()
        };
        let quote = |v: &str| {
            if v.is_empty()
                || v.contains(char::is_whitespace)
                || v.contains('=')
                || OPTION_KEYWORDS.contains(&v.to_lowercase().as_str())
            {
                format!("\"{v}\"")
            } else {
                v.to_owned()
            }
        };
        if let Some(t) = &self.target {
            text += &format!(" to {}", quote(t));
        }
        if let Some(r) = &self.runbook {
            text += &format!(" runbook {}", quote(r));
        }
        if let Some(s) = &self.severity {
            text += &format!(" severity {s}");
        }
        for (name, value) in &self.params {
            if value.is_empty() || value.contains(char::is_whitespace) || value.contains('=') {
                text += &format!(" {name}=\"{value}\"");
            } else {
                text += &format!(" {name}={value}");
            }
        }
        if let Some(incident) = &self.status_incident {
            text += &format!(" incident {incident}");
        }
        if let Some(r) = &self.reason {
            text += &format!(" reason \"{r}\"");
        }
        text
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// What Slack does to command text before sending it.
    fn slack_escaped(text: &str) -> String {
        text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    }

    fn service() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9._-]{0,40}".prop_filter("a reserved word is not a service name", |s| {
            !SUBCOMMANDS.contains(&s.as_str()) && !OPTION_KEYWORDS.contains(&s.as_str())
        })
    }

    /// Any text a person can type inside quotes: everything but the quote characters and the
    /// control characters rollbot refuses (tested apart).
    fn value() -> impl Strategy<Value = String> {
        "[^\"“”\\p{Cc}]{0,60}"
    }

    fn param_name() -> impl Strategy<Value = String> {
        "[a-z_][a-z0-9_]{0,12}".prop_filter("a parameter name, not `target`", |s| is_param_name(s) && s != "target")
    }

    fn args() -> impl Strategy<Value = RequestArgs> {
        (
            any::<bool>(),
            service(),
            proptest::option::of(value()),
            proptest::option::of(value()),
            proptest::option::of(proptest::sample::select(Severity::ALL.to_vec())),
            proptest::option::of(value()),
            proptest::collection::btree_map(param_name(), value(), 0..4),
            proptest::option::of("[a-z0-9]{1,16}"),
        )
            .prop_map(
                |(drill, service, target, runbook, severity, reason, params, status_incident)| RequestArgs {
                    drill,
                    service,
                    target,
                    runbook,
                    severity,
                    reason,
                    status_incident,
                    params,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Printing a request and reading it back, as Slack delivers it, gives the same request.
        #[test]
        fn print_then_parse_is_the_identity(args in args()) {
            let parsed = parse(&slack_escaped(&args.to_text()));
            prop_assert_eq!(parsed, Ok(Command::Request(args.clone())), "text: {}", args.to_text());
        }

        /// A control character anywhere is refused before anything else is read.
        #[test]
        fn a_control_character_anywhere_is_refused(before in "[a-z ]{0,20}", c in "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]", after in "[a-z ]{0,20}") {
            prop_assert_eq!(parse(&format!("{before}{c}{after}")), Err(ParseError::ControlCharacter));
        }

        /// Whatever is typed, the parser answers: a command or a reason, never a panic.
        #[test]
        fn any_text_gets_an_answer(text in "\\PC{0,300}") {
            let _ = parse(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;

    /// Each input with its exact parse, or the exact words the user reads.
    #[test]
    fn grammar_table() {
        let inputs = [
            "",
            "help",
            "HELP me",
            "checkout-api to 41 severity high reason \"bad deploy\"",
            "checkout-api severity high to 41",
            "checkout-api to 41 runbook helm severity critical",
            "checkout-api to 41 severity sev2",
            "checkout-api to 41 severity high reason bad deploy at 3am",
            "checkout-api to 41 severity high reason “smart quotes from macOS”",
            "checkout-api to 41 severity high reason \"&lt;!channel&gt; &amp; co\"",
            "plan checkout-api to 41",
            "status",
            "status RB-12",
            "status rb-12",
            "status 12",
            "list",
            "cancel RB-3",
            "drill checkout-api to 41 severity high",
            "list drills",
            "postmortem RB-1",
            "note RB-4 the cache flush at 03:12 fixed it, not the rollback",
            "note RB-4 \"quoted words\" and <!channel>",
            "note RB-4",
            "note",
            "note RB-x words",
            "orders runbook partial-restore tables=orders,payments severity high",
            "orders tables=\"orders, payments\" to predeploy.dump",
            "orders tables=“orders, payments” target=predeploy.dump",
            "orders reason bad deploy since 10:02 tables=orders",
            "orders reason \"tables=orders is the cause\"",
            "plan orders tables=orders",
            "checkout-api to 41 incident p9x1k2lmn0qr severity high",
            "checkout-api to 41 incident https://manage.statuspage.io/pages/pg1/incidents/p9x1k2lmn0qr",
            "checkout-api to 41 incident <https://status.example.com/incidents/p9x1k2lmn0qr?u=1|status.example.com/incidents/p9x1k2lmn0qr>",
            // errors
            "checkout-api to 41 sevrity high",
            "checkout-api to 41 severity hihg",
            "checkout-api to 41 severity urgent",
            "checkout-api to",
            "checkout-api to 41 to 42",
            "checkout-api reason \"never closed",
            "to 41 severity high",
            "\"checkout api\" to 41",
            "checkout/api to 41",
            "cancel",
            "cancel RB-x",
            "cancel RB-1 RB-2",
            "list everything",
            "status RB-99999999999999999999",
            "plan",
            "orders tables=",
            "orders tables= orders",
            "orders tables=a tables=b",
            "orders to 41 target=42",
            "orders Tables=orders",
            "orders to tables=orders",
            "checkout-api to 41 incident",
            "checkout-api to 41 incident \"checkout errors\"",
            "checkout-api to 41 incident a incident b",
        ];
        let mut table = String::new();
        for input in inputs {
            let shown = match parse(input) {
                Ok(command) => format!("{command:?}"),
                Err(error) => format!(
                    "{error:?}\n    says: {}",
                    crate::slack::messages::parse_error(&error).text
                ),
            };
            let _ = writeln!(table, "{input:?}\n    => {shown}");
        }
        insta::assert_snapshot!(table);
    }

    #[test]
    fn overlong_commands_are_refused_before_parsing() {
        assert_eq!(
            parse(&"a ".repeat(MAX_COMMAND_CHARS)),
            Err(ParseError::TooLong { max: MAX_COMMAND_CHARS })
        );
    }

    #[test]
    fn canonical_text_parses_back_to_the_same_request() {
        let args = RequestArgs {
            drill: false,
            service: "checkout-api".into(),
            target: Some("41".into()),
            runbook: Some("helm".into()),
            severity: Some(Severity::Low),
            reason: Some("to roll back".into()),
            status_incident: Some("p9x1k2lmn0qr".into()),
            params: [("tables".to_owned(), "orders, payments".to_owned())].into(),
        };
        assert_eq!(parse(&args.to_text()), Ok(Command::Request(args.clone())));
        let drill = RequestArgs { drill: true, ..args };
        assert_eq!(parse(&drill.to_text()), Ok(Command::Request(drill)));
    }
}
