use super::*;
use crate::domain::Refusal;

fn errors(source: &str) -> Vec<String> {
    Config::parse("rollbot.toml", source)
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

const MINIMAL: &str = r#"
[slack]
channels = ["C0INCIDENTS"]
anyone_may_request = true
[roles]
on_call = ["U0BOB"]
team_lead = ["U0CAROL"]
[runbooks.k8s]
params.target = { pattern = "[0-9]+" }
[[runbooks.k8s.steps]]
name = "Undo"
run = ["kubectl", "rollout", "undo", "deployment/{{ vars.deployment }}", "--to-revision={{ params.target }}"]
[services.api]
runbooks = ["k8s"]
vars = { deployment = "api" }
"#;

#[test]
fn a_word_of_the_grammar_cannot_name_a_service() {
    assert_eq!(
        errors(&MINIMAL.replace("[services.api]", "[services.status]")),
        [
            "rollbot.toml:14:12: `status` cannot be a service name: it is a word of the /rollback grammar\n  hint: `/rollback <name> …` would read it as that word; rename the service"
        ]
    );
}

#[test]
fn the_alertmanager_section_is_checked_and_defaulted() {
    let config = Config::parse(
        "rollbot.toml",
        &format!(
            "{MINIMAL}\n[alertmanager]\ntarget_label = \"previous_release\"\nseverities = {{ page = \"critical\" }}\n"
        ),
    )
    .unwrap();
    let settings = config.alertmanager.unwrap();
    assert_eq!(
        settings.channel,
        ChannelId("C0INCIDENTS".into()),
        "the first incident channel"
    );
    assert_eq!(settings.token_env, DEFAULT_ALERTMANAGER_TOKEN_ENV);
    assert_eq!(
        (settings.service_label.as_str(), settings.severity_label.as_str()),
        ("service", "severity")
    );
    assert_eq!(settings.severity_of(Some("page")), Severity::Critical);
    assert_eq!(
        settings.severity_of(Some("sev3")),
        Severity::Medium,
        "rollbot's own names work too"
    );
    assert_eq!(
        settings.severity_of(Some("warning")),
        Severity::High,
        "unmapped: the default"
    );
    assert_eq!(settings.severity_of(None), Severity::High);

    assert_eq!(
        errors(&format!(
            "{MINIMAL}\n[alertmanager]\nchannel = \"C0RANDOM\"\ndefault_severity = \"urgent\"\n"
        )),
        [
            "rollbot.toml:18:11: `C0RANDOM` is not one of the incident channels\n  hint: proposals are requests in waiting: post them where requests are accepted ([slack] channels)"
        ]
    );
    assert_eq!(
        errors(&format!("{MINIMAL}\n[alertmanager]\ndefault_severity = \"urgent\"\n")),
        ["rollbot.toml:18:20: `urgent` is not a severity\n  hint: severities are critical, high, medium and low"]
    );
    assert_eq!(
        errors(&MINIMAL.replace("[services.api]\n", "[services.api]\nauto_request = true\n")),
        [
            "rollbot.toml:14:16: service `api` sets auto_request, but [alertmanager] is not configured\n  hint: configure [alertmanager] (docs/alerts.md), or remove auto_request"
        ]
    );
}

#[test]
fn every_example_passes_check() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut checked = vec![];
    for dir in [root.to_owned(), format!("{root}/runbooks")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
                checked.push(path.file_stem().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    checked.sort();
    // One file per rollback family in DESIGN.md; a missing one is a gap in the library.
    assert_eq!(
        checked,
        [
            "argo-rollouts",
            "argocd",
            "blue-green",
            "canary",
            "cloud-snapshot",
            "configuration",
            "database-full-restore",
            "database-partial-restore",
            "database-schema",
            "docker-compose",
            "feature-flags",
            "git-revert",
            "git-revert-pr",
            "helm",
            "kubernetes",
            "maintenance",
            "nginx-upstream",
            "playground",
            "pm2-systemd",
            "rollbot",
        ]
    );
}

#[test]
fn defaults_fill_in_the_severity_policy() {
    let config = Config::parse("rollbot.toml", MINIMAL).unwrap();
    let high = config.policy.severity(Severity::High);
    assert_eq!(
        (high.approvals, high.approvers.as_slice()),
        (1, ["on_call".to_owned()].as_slice())
    );
    assert!(config.policy.severity(Severity::Low).require_reason);
    assert_eq!(config.policy.severity(Severity::Critical).approvals, 0);
    assert!(matches!(
        config.catalog.runbooks["k8s"].steps[0].kind,
        StepKind::Command { timeout, .. } if timeout == DEFAULT_STEP_TIMEOUT
    ));
}

#[test]
fn mistakes_are_reported_with_file_line_and_column() {
    assert_eq!(
        errors(&MINIMAL.replace("[runbooks.k8s]", "[runbooks.k8s]\ntimout = \"1m\"")),
        [
            "rollbot.toml:9:1: unknown field `timout`, expected one of `description`, `expected_duration`, `lock`, `fallback`, `params`, `steps`, `preflight`, `checklists`\n  hint: every key is documented in docs/configuration.md; unknown keys are errors so typos cannot pass silently"
        ]
    );
    assert_eq!(
        errors(&MINIMAL.replace("runbooks = [\"k8s\"]", "runbooks = [\"k9s\"]")),
        ["rollbot.toml:14:13: runbook `k9s` is not defined\n  hint: defined runbooks: k8s"]
    );
    assert_eq!(
        errors(&MINIMAL.replace("{{ vars.deployment }}", "{{ vars.deploymnet }}")),
        [
            "rollbot.toml:14:13: service `api` does not define `vars.deploymnet`, which runbook `k8s` step `Undo` uses in `deployment/{{ vars.deploymnet }}`\n  hint: add it to [services.api] vars (defined: deployment)"
        ]
    );
    assert_eq!(
        errors(&MINIMAL.replace("params.target }}", "params.revision }}")),
        [
            "rollbot.toml:11:8: step `Undo`: `--to-revision={{ params.revision }}` uses `params.revision`, which is neither vars.<name> nor a declared parameter (params: target)"
        ]
    );
    assert_eq!(
        errors(&MINIMAL.replace("pattern = \"[0-9]+\"", "pattern = \"[0-9\"")).len(),
        1,
        "a broken pattern is one error"
    );
    assert_eq!(
        errors(&format!("{MINIMAL}\n[severity.high]\napprovers = [\"oncall\"]\n")),
        ["rollbot.toml:18:14: role `oncall` is not defined in [roles]\n  hint: defined roles: on_call, team_lead"]
    );
    assert_eq!(
        errors(&MINIMAL.replace("on_call = [\"U0BOB\"]", "on_call = [\"bob\"]")),
        [
            "rollbot.toml:6:12: `bob` in role `on_call` is not a Slack user ID or user-group ID\n  hint: use IDs like U0123ABCD (user) or S0123ABCD (user group), from the profile's \"Copy member ID\", or a PagerDuty schedule: pagerduty:schedule:PABC123"
        ]
    );
    assert_eq!(
        errors(&MINIMAL.replace("on_call = [\"U0BOB\"]", "on_call = [\"pagerduty:schedule:primary\"]")),
        [
            "rollbot.toml:6:12: `pagerduty:schedule:primary` in role `on_call` is not a PagerDuty on-call source\n  hint: write `pagerduty:schedule:<ID>` or `pagerduty:escalation_policy:<ID>[:<level>]`, with the ID from the schedule's or policy's URL (P…)"
        ]
    );
    assert_eq!(
        errors(&format!(
            "{MINIMAL}\n[statuspage]\nprovider = \"atlassian\"\npage_id = \"p1\"\nattach = \"always\"\n"
        )),
        [
            "rollbot.toml:20:10: `always` is not a way to attach\n  hint: use \"components\" (carry on an open incident for the service's components) or \"never\""
        ]
    );
    assert_eq!(
        errors(&MINIMAL.replace("channels = [\"C0INCIDENTS\"]", "channels = [\"#incidents\"]")),
        [
            "rollbot.toml:3:13: `#incidents` is not a Slack channel ID\n  hint: channel IDs look like C0123ABCD: open the channel's details and copy the ID at the bottom"
        ]
    );
}

/// A role read from PagerDuty brings PagerDuty's settings (its API and the variable with its
/// key), and that key is rollbot's own: no step may reference it.
#[test]
fn a_role_read_from_pagerduty_needs_its_key_and_keeps_it_from_steps() {
    let source = MINIMAL.replace(
        "on_call = [\"U0BOB\"]",
        "on_call = [\"pagerduty:escalation_policy:PESC1:2\"]",
    );
    let config = Config::parse("rollbot.toml", &source).unwrap();
    assert_eq!(
        config.pagerduty,
        Some(PagerDutySettings {
            reads_on_call: true,
            api_url: "https://api.pagerduty.com".into(),
            token_env: "PAGERDUTY_API_TOKEN".into(),
            change_events: None,
        })
    );
    assert_eq!(Config::parse("rollbot.toml", MINIMAL).unwrap().pagerduty, None);
    let leaky = format!(
        "{source}\n[runbooks.leaky]\n[[runbooks.leaky.steps]]\nname = \"Page\"\nrun = [\"page\"]\nenv = {{ KEY = \"${{env:PAGERDUTY_API_TOKEN}}\" }}\n"
    );
    let refused = errors(&leaky);
    assert!(
        refused.iter().any(|e| e.contains("PagerDuty's API key")),
        "{refused:#?}"
    );
}

/// A rollback gets its severity's checklists, then its runbook's, each once; a name nobody
/// defined, a group Slack cannot show and an item Slack would cut are refused by check.
#[test]
fn checklists_come_from_the_severity_and_the_runbook_and_must_fit_slack() {
    let defined = r#"
[checklists.after]
title = "After the incident"
sections = [{ name = "Immediate", items = ["Document incident details"] }]
[checklists.data]
sections = [{ name = "Validation", items = ["Row counts match the backup", "Foreign keys intact"] }]
"#;
    let source = MINIMAL
        .replace(
            "[runbooks.k8s]\n",
            "[runbooks.k8s]\nchecklists = [\"data\", \"after\"]\n",
        )
        .replace("[roles]", "[severity.high]\nchecklists = [\"after\"]\n[roles]")
        + defined;
    let config = Config::parse("rollbot.toml", &source).unwrap();
    let names = |severity| -> Vec<String> {
        config
            .checklists
            .for_request("k8s", severity)
            .into_iter()
            .map(|c| c.name)
            .collect()
    };
    assert_eq!(names(Severity::High), ["after", "data"]);
    assert_eq!(names(Severity::Low), ["data", "after"]);
    assert_eq!(
        config.checklists.for_request("k8s", Severity::Low)[0].title,
        "data",
        "the name when no title"
    );

    let undefined = MINIMAL.replace("[runbooks.k8s]\n", "[runbooks.k8s]\nchecklists = [\"aftermath\"]\n") + defined;
    assert_eq!(
        errors(&undefined),
        [
            "rollbot.toml:9:15: checklist `aftermath` is not defined in [checklists]\n  hint: defined checklists: after, data"
        ]
    );
    let eleven: Vec<String> = (1..=11).map(|n| format!("\"item {n}\"")).collect();
    let crowded = format!(
        "{MINIMAL}\n[checklists.long]\nsections = [{{ name = \"All\", items = [{}] }}]\n",
        eleven.join(", ")
    );
    assert!(errors(&crowded)[0].contains("section `All` has 11 items; Slack shows 1 to 10 boxes in one group"));
    let wordy = format!(
        "{MINIMAL}\n[checklists.wordy]\nsections = [{{ name = \"All\", items = [\"{}\"] }}]\n",
        "x".repeat(76)
    );
    assert!(errors(&wordy)[0].contains("a checklist item has 76 characters; Slack shows 1 to 75"));
}

#[test]
fn a_duration_that_cannot_work_fails_check_instead_of_the_run() {
    // A zero lease used to pass check and then panic the run's task after its step was
    // recorded as started.
    assert_eq!(
        errors(&format!("{MINIMAL}\n[limits]\nexecution_lease = \"0s\"\n")),
        [
            "rollbot.toml:18:19: `0s` is too short for `execution_lease`: it must be between 2s and 1h\n  hint: it is renewed every third of it, and a renewal must fit a database round trip; past it, a dead process's run waits that long to be noticed; use 2s or more"
        ]
    );
    assert_eq!(
        errors(&MINIMAL.replace("name = \"Undo\"", "name = \"Undo\"\ntimeout = \"400d\"")),
        [
            "rollbot.toml:12:11: `400d` is too long for `timeout`: it must be between 1s and 1day\n  hint: a step is killed after this long; use 1day or less"
        ]
    );
    for (section, line) in [
        ("[limits]", "shutdown_grace = \"2h\""),
        ("[slack]", "group_cache = \"0s\""),
        ("[severity.high]", "expire_after = \"10s\""),
        ("[severity.high]", "respond_within = \"30d\""),
    ] {
        let source = if section == "[slack]" {
            MINIMAL.replace("[slack]\n", &format!("[slack]\n{line}\n"))
        } else {
            format!("{MINIMAL}\n{section}\n{line}\n")
        };
        let found = errors(&source);
        assert_eq!(found.len(), 1, "{line}: {found:?}");
        assert!(found[0].contains("is too"), "{line}: {found:?}");
    }
    for fine in ["2s", "30s", "1h"] {
        let config = Config::parse(
            "rollbot.toml",
            &format!("{MINIMAL}\n[limits]\nexecution_lease = \"{fine}\"\n"),
        )
        .unwrap();
        assert_eq!(config.execution_lease, humantime::parse_duration(fine).unwrap());
    }
}

#[test]
fn templates_with_unknown_variables_fail_check_not_an_incident() {
    let with = |extra: &str| format!("{MINIMAL}\n[templates]\n{extra}\n");
    assert!(
        Config::parse(
            "rollbot.toml",
            &with("started = \"Rolling back {{ service }} to {{ target }}\"")
        )
        .is_ok()
    );
    assert_eq!(
        errors(&with("succeeded = \"{{ servce }} is back\"")),
        [
            "rollbot.toml:18:13: template `succeeded` uses servce which is not a template variable\n  hint: variables are id, service, target, runbook, severity, reason, requester, approvers, started, expected_completion, duration, state, failed_step, failure_reason, cancelled_by, thread, steps, requested, finished (docs/configuration.md says what each holds)"
        ]
    );
    assert_eq!(
        errors(&with("finished = \"done\"")),
        [
            "rollbot.toml:18:1: unknown template `finished`\n  hint: templates are started, succeeded, failed, cancelled, customer_notice, page_opened, page_monitoring, page_still_investigating, page_resolved"
        ]
    );
}

/// Each mistake in a step of the new kinds, with the exact words `rollbot check` prints.
#[test]
fn step_kind_mistakes_are_explained() {
    let step = |body: &str| {
        let source = format!(
            "{MINIMAL}\n[databases.shop]\nurl_env = \"SHOP_DATABASE_URL\"\n[runbooks.extra]\n[[runbooks.extra.steps]]\nname = \"S\"\n{body}\n"
        );
        errors(&source).join("\n")
    };
    let cases = [
        r#"run = ["true"]
http = { url = "https://example.com" }"#,
        r#"sql = { database = "orders", snapshot = { schema = "public" } }"#,
        r#"sql = { database = "shop", snapshot = { schema = "public", tables = ["a"] } }"#,
        r#"sql = { database = "shop", compare = { drift = "lots" } }"#,
        r#"sql = { database = "shop", assert = { query = "select 1", expect = "about 1" } }"#,
        r#"sql = { database = "shop", snapshot = { tables = ["a"] }, read_only = false }"#,
        r#"http = { url = "https://flags.example.com", headers = { Authorization = "${env:SLACK_BOT_TOKEN}" } }"#,
        r#"http = { method = "FETCH", url = "ftp://example.com", expect_status = [42] }"#,
        r#"health = { url = "https://example.com/healthz", within = "5s", every = "10s" }"#,
        r#"statuspage = { status = "identified", message = "x" }"#,
        r##"notify = { channel = "#general", text = "x" }"##,
        r#"run = ["true"]
on_failure = "ignore"
retries = 11"#,
        r#"gate = "wait"
drill = { run = ["true"] }"#,
    ];
    let table: Vec<String> = cases.iter().map(|c| format!("{c}\n  => {}", step(c))).collect();
    insta::assert_snapshot!(table.join("\n\n"));
}

#[test]
fn a_step_cannot_borrow_the_status_pages_secret() {
    let source = format!(
        "{MINIMAL}\n[statuspage]\nprovider = \"atlassian\"\npage_id = \"p1\"\nsecret_env = \"PAGE_KEY\"\n[runbooks.extra]\n[[runbooks.extra.steps]]\nname = \"S\"\nhttp = {{ url = \"https://example.com\", headers = {{ Authorization = \"${{env:PAGE_KEY}}\" }} }}\n"
    );
    assert_eq!(
        errors(&source),
        [
            "rollbot.toml:23:8: step `S`: `${env:PAGE_KEY}` is the status page's secret; give the step its own credential"
        ]
    );
}

#[test]
fn sql_never_takes_request_parameters() {
    let source = format!(
        "{MINIMAL}\n[databases.shop]\nurl_env = \"SHOP_DATABASE_URL\"\n[runbooks.extra]\nparams.table = {{ pattern = \"[a-z]+\" }}\n[[runbooks.extra.steps]]\nname = \"S\"\nsql = {{ database = \"shop\", assert = {{ query = \"select count(*) from {{{{ params.table }}}}\", expect = \"> 0\" }} }}\n"
    );
    assert_eq!(
        errors(&source),
        [
            "rollbot.toml:22:8: step `S`: SQL may use `vars` but not request parameters, which come from Slack\n  hint: put the value in the service's vars, or use a `run` step with its own checks"
        ]
    );
}

#[test]
fn patterns_match_the_whole_value() {
    let config = Config::parse("rollbot.toml", MINIMAL).unwrap();
    let pattern = &config.catalog.runbooks["k8s"].params["target"].pattern;
    assert!(pattern.is_match("41"));
    assert!(
        !pattern.is_match("41; rm -rf /"),
        "an unanchored pattern would accept this"
    );
}

#[test]
fn nobody_may_run_a_rollback_alone_unless_the_file_says_so_in_so_many_words() {
    let open_door = MINIMAL.replace("anyone_may_request = true\n", "");
    assert_eq!(
        errors(&open_door),
        [
            "rollbot.toml:3:12: [slack] requesters is unset, so anyone in an incident channel may request, and `critical` and `low` need no approval: one person could start a rollback nobody else sees first\n  hint: name who may request (requesters = [\"on_call\", \"team_lead\"]), give the severity approvals, or write anyone_may_request = true under [slack]"
        ],
        "the default matrix runs critical and low without approval"
    );
    let named = open_door.replace("[roles]\n", "requesters = [\"on_call\"]\n[roles]\n");
    assert!(
        Config::parse("rollbot.toml", &named).is_ok(),
        "naming the requesters is enough"
    );
    let approved = format!(
        "{open_door}\n[severity.critical]\napprovals = 1\napprovers = [\"on_call\"]\n[severity.low]\napprovals = 1\napprovers = [\"team_lead\"]\n"
    );
    assert!(
        Config::parse("rollbot.toml", &approved).is_ok(),
        "so is giving every severity an approval"
    );
}

#[test]
fn the_two_person_rule_is_on_unless_turned_off_and_check_says_so_loudly() {
    let on = Config::parse("rollbot.toml", MINIMAL).unwrap();
    assert!(on.policy.two_person_rule);
    assert!(crate::report::check(&on).contains("two-person rule: on"));
    let off = Config::parse(
        "rollbot.toml",
        &format!("{MINIMAL}\n[safety]\ntwo_person_rule = false\n"),
    )
    .unwrap();
    assert!(!off.policy.two_person_rule);
    assert!(
        crate::report::check(&off).contains("⚠️  TWO-PERSON RULE OFF ([safety] two_person_rule = false)"),
        "{}",
        crate::report::check(&off)
    );
}

#[test]
fn abort_roles_name_defined_roles() {
    let config = Config::parse(
        "rollbot.toml",
        &format!("{MINIMAL}\n[safety]\nabort_roles = [\"team_lead\"]\n"),
    )
    .unwrap();
    assert_eq!(config.policy.abort_roles, ["team_lead"]);
    assert_eq!(
        errors(&format!("{MINIMAL}\n[safety]\nabort_roles = [\"commander\"]\n")),
        ["rollbot.toml:18:16: role `commander` is not defined in [roles]\n  hint: defined roles: on_call, team_lead"]
    );
}

#[test]
fn an_alert_label_alone_never_makes_a_rollback_critical() {
    let plain = Config::parse("rollbot.toml", &format!("{MINIMAL}\n[alertmanager]\n")).unwrap();
    let settings = plain.alertmanager.as_ref().unwrap();
    assert_eq!(
        settings.severity_of(Some("critical")),
        Severity::High,
        "the Prometheus convention `severity=\"critical\"` is capped at high"
    );
    assert_eq!(settings.severity_of(Some("low")), Severity::Low);
    let mapped = Config::parse(
        "rollbot.toml",
        &format!("{MINIMAL}\n[alertmanager]\nseverities = {{ critical = \"critical\" }}\n"),
    )
    .unwrap();
    assert_eq!(
        mapped.alertmanager.as_ref().unwrap().severity_of(Some("critical")),
        Severity::Critical,
        "only an explicit mapping makes it critical"
    );
}

/// A runbook whose `http` step calls `url`, with a free-text `flag` parameter.
fn calling(url: &str, safety: &str) -> String {
    format!(
        "{MINIMAL}\n{safety}\n[runbooks.flags]\nparams.flag = {{ pattern = \".+\" }}\n[[runbooks.flags.steps]]\nname = \"Flip\"\nhttp = {{ method = \"POST\", url = \"{url}\" }}\n[services.shop]\nrunbooks = [\"flags\"]\nvars = {{ host = \"flags.internal\" }}\n"
    )
}

fn frozen_url(source: &str, flag: &str) -> Result<String, Refusal> {
    let config = Config::parse("rollbot.toml", source).unwrap_or_else(|e| panic!("{e}"));
    let plan = config.catalog.freeze(&crate::domain::plan::PlanRequest {
        service: "shop".into(),
        params: [("flag".to_owned(), flag.to_owned())].into(),
        ..Default::default()
    })?;
    match &plan.steps[0].action {
        crate::domain::plan::StepAction::Http { url, .. } => Ok(url.clone()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_request_parameter_cannot_steer_where_a_step_calls() {
    for steered in [
        "https://{{ params.flag }}/api",
        "https://flags.internal:{{ params.flag }}/api",
        "{{ params.flag }}/api",
    ] {
        let found = errors(&calling(steered, ""));
        assert_eq!(found.len(), 1, "{steered}: {found:?}");
        assert!(
            found[0].contains("takes its scheme, host or port from a request parameter"),
            "{steered}: {found:?}"
        );
    }
    let source = calling(
        "https://{{ vars.host }}/api/v2/flags/{{ params.flag }}?env={{ params.flag }}",
        "",
    );
    assert_eq!(
        frozen_url(&source, "new checkout/../admin?x=1#y").unwrap(),
        "https://flags.internal/api/v2/flags/new%20checkout%2F..%2Fadmin%3Fx%3D1%23y?env=new%20checkout%2F..%2Fadmin%3Fx%3D1%23y",
        "a value fills its place and no more"
    );
    for dots in ["..", "."] {
        let refused = frozen_url(&source, dots).unwrap_err();
        assert!(
            matches!(&refused, Refusal::PlanTemplate { detail, .. } if detail.contains("`.` or `..` path segment")),
            "{dots}: {refused:?}"
        );
    }
}

#[test]
fn allowed_hosts_bound_where_steps_may_call() {
    let source = calling(
        "https://{{ vars.host }}/api/{{ params.flag }}",
        "[safety]\nallowed_hosts = [\"flags.internal\"]",
    );
    assert_eq!(frozen_url(&source, "on").unwrap(), "https://flags.internal/api/on");
    let elsewhere = source.replace(
        "vars = { host = \"flags.internal\" }",
        "vars = { host = \"evil.example\" }",
    );
    let refused = frozen_url(&elsewhere, "on").unwrap_err();
    assert!(
        matches!(&refused, Refusal::PlanTemplate { detail, .. } if detail.contains("`evil.example`, which is not in [safety] allowed_hosts")),
        "{refused:?}"
    );
}

#[test]
fn a_step_cannot_borrow_any_secret_rollbot_itself_reads() {
    let borrowing = |reference: &str, alertmanager: &str| {
        format!(
            "{MINIMAL}\n{alertmanager}\n[runbooks.extra]\n[[runbooks.extra.steps]]\nname = \"S\"\nhttp = {{ url = \"https://example.com\", headers = {{ Authorization = \"${{env:{reference}}}\" }} }}\n"
        )
    };
    for (reference, alertmanager) in [
        ("ROLLBOT_ALERTMANAGER_TOKEN", ""),
        ("ROLLBOT_ALERTMANAGER_TOKEN_FILE", ""),
        ("AM_TOKEN", "[alertmanager]\ntoken_env = \"AM_TOKEN\""),
    ] {
        let found = errors(&borrowing(reference, alertmanager));
        assert_eq!(found.len(), 1, "{reference}: {found:?}");
        assert!(
            found[0].contains(&format!("`${{env:{reference}}}` is"))
                && found[0].contains("give the step its own credential"),
            "{found:?}"
        );
    }
}

#[test]
fn request_parameters_cannot_spell_out_a_secret_reference() {
    let source = format!(
        "{MINIMAL}\n[runbooks.spell]\nparams.a = {{ pattern = \".+\" }}\nparams.b = {{ pattern = \".+\" }}\n[[runbooks.spell.steps]]\nname = \"S\"\nrun = [\"echo\", \"{{{{ params.a }}}}{{{{ params.b }}}}\"]\n[services.shop]\nrunbooks = [\"spell\"]\n"
    );
    let config = Config::parse("rollbot.toml", &source).unwrap_or_else(|e| panic!("{e}"));
    let freeze = |a: &str, b: &str| {
        config.catalog.freeze(&crate::domain::plan::PlanRequest {
            service: "shop".into(),
            params: [("a".to_owned(), a.to_owned()), ("b".to_owned(), b.to_owned())].into(),
            ..Default::default()
        })
    };
    let refused = freeze("$", "{env:SLACK_BOT_TOKEN}").unwrap_err();
    assert!(
        matches!(&refused, Refusal::PlanTemplate { detail, .. } if detail.contains("only the configuration may name a secret")),
        "{refused:?}"
    );
    assert!(freeze("plain", "words").is_ok());
}

#[test]
fn check_warns_of_a_secret_passed_on_the_command_line() {
    let source = format!(
        "{MINIMAL}\n[runbooks.leaky]\n[[runbooks.leaky.steps]]\nname = \"Deploy\"\nrun = [\"deploy\", \"--token\", \"${{env:DEPLOY_TOKEN}}\"]\n"
    );
    let report = crate::report::check(&Config::parse("rollbot.toml", &source).unwrap());
    assert!(
        report.contains("⚠️  runbook `leaky`, step `Deploy` passes `${env:DEPLOY_TOKEN}` in its argv, which other local users can read in /proc; pass it in the step's env instead: env = { DEPLOY_TOKEN = \"${env:DEPLOY_TOKEN}\" }"),
        "{report}"
    );
}

/// A step with its own `env.PATH` starts its program from there: found there is no warning,
/// missing there is, even when rollbot's own PATH has it.
#[test]
fn check_looks_for_a_program_on_the_path_its_step_sets() {
    let own = tempfile::tempdir().unwrap();
    let tool = own.path().join("nginx");
    std::fs::write(&tool, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let source = format!(
        "{MINIMAL}\n[runbooks.tools]\n[[runbooks.tools.steps]]\nname = \"Reload\"\nrun = [\"nginx\", \"-s\", \"reload\"]\nenv = {{ PATH = \"{}\" }}\n\n[[runbooks.tools.steps]]\nname = \"Shell\"\nrun = [\"sh\", \"-c\", \"true\"]\nenv = {{ PATH = \"{}\" }}\n",
        own.path().display(),
        own.path().display()
    );
    let config = Config::parse("rollbot.toml", &source).unwrap();
    let warnings = super::super::report::programs_not_found_for_tests(&config, std::ffi::OsStr::new("/usr/bin:/bin"));
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].starts_with("runbook `tools`, step `Shell` runs `sh`, which is not on PATH here ("),
        "{}",
        warnings[0]
    );
}

#[test]
fn check_warns_of_a_program_that_is_not_on_path() {
    let bin = tempfile::tempdir().unwrap();
    let tool = bin.path().join("kubectl");
    std::fs::write(&tool, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let source = format!(
        "{MINIMAL}\n[runbooks.tools]\n[[runbooks.tools.steps]]\nname = \"Undo\"\nrun = [\"kubectl\", \"rollout\", \"undo\"]\n\n[[runbooks.tools.steps]]\nname = \"Chart\"\nrun = [\"helm\", \"rollback\", \"api\"]\n\n[[runbooks.tools.steps]]\nname = \"Script\"\nrun = [\"/opt/nowhere/undo.sh\"]\n"
    );
    let config = Config::parse("rollbot.toml", &source).unwrap();
    let warnings = super::super::report::programs_not_found_for_tests(&config, bin.path().as_os_str());
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings[0].starts_with("runbook `tools`, step `Chart` runs `helm`, which is not on PATH here (")
            && warnings[0].ends_with("install it where rollbot runs (or set PATH), or the step cannot start"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[1].contains("`/opt/nowhere/undo.sh`, which is not an executable file here"),
        "{}",
        warnings[1]
    );
}

#[test]
fn update_reminders_default_to_the_communication_plan_and_can_be_set_per_severity() {
    let plain = Config::parse("rollbot.toml", MINIMAL).unwrap();
    let high = plain.policy.severity(Severity::High).reminders;
    assert_eq!(
        (high.marks_secs, high.then_every_secs),
        (vec![900, 1800, 3600], Some(3600))
    );
    let set = Config::parse(
        "rollbot.toml",
        &format!("{MINIMAL}\n[severity.critical]\nupdate_reminders = [\"10m\", \"20m\"]\nupdate_reminders_then_every = \"never\"\n"),
    )
    .unwrap();
    let critical = set.policy.severity(Severity::Critical).reminders;
    assert_eq!((critical.marks_secs, critical.then_every_secs), (vec![600, 1200], None));
    assert_eq!(
        errors(&format!(
            "{MINIMAL}\n[severity.high]\nupdate_reminders = [\"30m\", \"15m\"]\n"
        )),
        [
            "rollbot.toml:18:28: `15m` is not after the reminder before it\n  hint: list the reminders in the order they come due, e.g. [\"15m\", \"30m\", \"1h\"]"
        ]
    );
    assert_eq!(
        errors(&format!("{MINIMAL}\n[severity.high]\nupdate_reminders = [\"10s\"]\n")).len(),
        1,
        "a reminder every few seconds would flood the thread"
    );
}

#[test]
fn a_fallback_is_another_runbook_the_same_services_offer() {
    let with_full = MINIMAL.to_owned()
        + r#"
[runbooks.full]
[[runbooks.full.steps]]
name = "Restore"
run = ["true"]
"#;
    let fine = with_full
        .replace("[runbooks.k8s]\n", "[runbooks.k8s]\nfallback = \"full\"\n")
        .replace("runbooks = [\"k8s\"]", "runbooks = [\"k8s\", \"full\"]");
    let config = Config::parse("rollbot.toml", &fine).unwrap();
    assert_eq!(config.catalog.runbooks["k8s"].fallback.as_deref(), Some("full"));
    assert_eq!(config.catalog.runbooks["full"].fallback, None);

    let not_offered = with_full.replace("[runbooks.k8s]\n", "[runbooks.k8s]\nfallback = \"full\"\n");
    assert_eq!(
        errors(&not_offered),
        [
            "rollbot.toml:15:13: service `api` offers runbook `k8s`, whose fallback `full` it does not offer\n  hint: add \"full\" to [services.api] runbooks"
        ]
    );
    let itself = MINIMAL.replace("[runbooks.k8s]\n", "[runbooks.k8s]\nfallback = \"k8s\"\n");
    assert!(
        errors(&itself)[0].contains("runbook `k8s` names itself as its fallback"),
        "{:?}",
        errors(&itself)
    );
    let undefined = MINIMAL.replace("[runbooks.k8s]\n", "[runbooks.k8s]\nfallback = \"ful\"\n");
    assert!(
        errors(&undefined)[0].contains("runbook `k8s`: fallback `ful` is not defined\n  hint: defined runbooks: k8s"),
        "{:?}",
        errors(&undefined)
    );
}

fn with_params(params: &str) -> String {
    MINIMAL.replace(
        "params.target = { pattern = \"[0-9]+\" }",
        &format!("params.target = {{ pattern = \"[0-9]+\" }}\n{params}"),
    )
}

fn freeze(config: &Config, params: &[(&str, &str)]) -> Result<crate::domain::plan::Plan, Refusal> {
    config.catalog.freeze(&crate::domain::plan::PlanRequest {
        service: "api".into(),
        runbook: None,
        target: Some("41".into()),
        params: params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    })
}

#[test]
fn parameters_take_choices_defaults_and_may_be_optional() {
    let config = Config::parse(
        "rollbot.toml",
        &with_params(
            "params.region = { choices = [\"eu-west-1\", \"us-east-1\"], default = \"eu-west-1\" }\n\
             params.note = { pattern = \"[a-z ]*\", required = false }\n\
             params.tables = { pattern = \"[a-z_,]+\", help = \"comma-separated\" }",
        ),
    )
    .unwrap();
    let plan = freeze(&config, &[("tables", "orders")]).unwrap();
    assert_eq!(
        plan.params,
        [
            ("note".to_owned(), String::new()),
            ("region".to_owned(), "eu-west-1".to_owned()),
            ("tables".to_owned(), "orders".to_owned())
        ]
        .into(),
        "the default and the empty optional are what the steps see, and what people approve"
    );
    assert_eq!(
        freeze(&config, &[("tables", "orders"), ("region", "eu-west1")]),
        Err(Refusal::NotAChoice {
            name: "region".into(),
            value: "eu-west1".into(),
            suggestion: Some("eu-west-1".into()),
            choices: vec!["eu-west-1".into(), "us-east-1".into()],
        })
    );
    assert_eq!(
        freeze(&config, &[]),
        Err(Refusal::MissingParam {
            runbook: "k8s".into(),
            name: "tables".into(),
            help: Some("comma-separated".into()),
        })
    );
    assert_eq!(
        freeze(&config, &[("tabels", "orders")]),
        Err(Refusal::UnknownParam {
            runbook: "k8s".into(),
            name: "tabels".into(),
            suggestion: Some("tables".into()),
            known: vec!["note".into(), "region".into(), "tables".into(), "target".into()],
        })
    );
}

#[test]
fn a_parameter_that_cannot_be_typed_or_checked_is_refused() {
    let found = errors(&with_params(
        "params.Tables = { pattern = \"x\" }\n\
         params.loose = { help = \"anything\" }\n\
         params.region = { choices = [\"eu\", \"us\"], pattern = \"[a-z]{2}-[0-9]\", default = \"mars\" }\n\
         params.both = { pattern = \"x\", default = \"x\", required = true }",
    ));
    let found = found.join("\n");
    for expected in [
        "parameter `Tables` cannot be typed as `Tables=…` in Slack",
        "parameter `loose` has neither a `pattern` nor `choices`",
        "choice `eu` of parameter `region` does not match its pattern `[a-z]{2}-[0-9]`",
        "the default `mars` of parameter `region` is not a value it accepts",
        "parameter `both` has a default and `required = true`",
    ] {
        assert!(found.contains(expected), "{expected}\nin\n{found}");
    }
}

const RESTORE: &str = r#"
[slack]
channels = ["C0INCIDENTS"]
anyone_may_request = true
[roles]
on_call = ["U0BOB"]
team_lead = ["U0CAROL"]
[runbooks.restore]
[[runbooks.restore.steps]]
name = "Copy"
run = ["pg_dump", "--file=/backups/before.dump"]
[[runbooks.restore.steps]]
name = "Restore"
run = ["pg_restore", "--clean", "/backups/predeploy.dump"]
destructive = true
[[runbooks.restore.steps]]
name = "Check"
health = { url = "https://api.example.com/healthz", expect_status = 200 }
[services.api]
runbooks = ["restore"]
"#;

#[test]
fn a_destructive_step_needs_a_backup_before_it_or_a_reason_why_not() {
    assert_eq!(
        errors(RESTORE),
        [
            "rollbot.toml:13:8: runbook `restore`: destructive step `Restore` has no backup step before it\n  hint: add a step that keeps a copy (pg_dump, a snapshot) with backup = true before it, or say why none is needed: no_backup_because = \"…\""
        ]
    );
    let backed_up = RESTORE.replace("name = \"Copy\"\n", "name = \"Copy\"\nbackup = true\n");
    assert!(Config::parse("rollbot.toml", &backed_up).is_ok());
    let reasoned = RESTORE.replace(
        "destructive = true\n",
        "destructive = true\nno_backup_because = \"the dump is the copy; the database is rebuilt nightly\"\n",
    );
    assert!(Config::parse("rollbot.toml", &reasoned).is_ok());
    // A backup after the destructive step is no backup for it.
    let late = RESTORE.replace("name = \"Check\"\n", "name = \"Check\"\nbackup = true\n");
    assert_eq!(errors(&late), errors(RESTORE));
    let misplaced = backed_up.replace("name = \"Copy\"\n", "name = \"Copy\"\nno_backup_because = \"x\"\n");
    assert!(
        errors(&misplaced)[0].contains("step `Copy` says why it needs no backup but is not `destructive = true`"),
        "{:?}",
        errors(&misplaced)
    );
}

/// `loses`: what a destructive step would undo, counted read-only when its confirmation opens,
/// with the request's parameters; only on a destructive step, and only a command or a GET.
#[test]
fn a_destructive_step_may_count_what_it_would_undo() {
    let backed_up = RESTORE
        .replace("name = \"Copy\"\n", "name = \"Copy\"\nbackup = true\n")
        .replace(
            "[runbooks.restore]\n",
            "[runbooks.restore]\nparams.target = { pattern = \"[0-9]+\" }\n",
        );
    let counting = |table: &str| backed_up.replace("destructive = true\n", &format!("destructive = true\n{table}\n"));
    let config = Config::parse(
        "rollbot.toml",
        &counting("loses = { run = [\"count-since\", \"/backups/{{ params.target }}.dump\"] }"),
    )
    .unwrap();
    let plan = freeze(&config, &[]).unwrap();
    assert!(
        matches!(plan.steps[1].loses.as_deref(), Some(crate::domain::StepAction::Command { argv, timeout_secs: 10, .. }) if argv[1] == "/backups/41.dump"),
        "frozen with the plan, 10 s unless it says: {:?}",
        plan.steps[1]
    );
    assert!(plan.steps[0].loses.is_none());
    for (loses, expected) in [
        (
            "loses = { env = { A = \"b\" } }",
            "step `Restore`: `loses` needs one of `run` and `http`",
        ),
        (
            "loses = { run = [\"x\"], http = { url = \"https://api.example.com/n\" } }",
            "step `Restore`: `loses` needs one of `run` and `http`",
        ),
        ("loses = { run = [\"x\"], method = \"POST\" }", "unknown field `method`"),
        ("loses = { run = [\"x\"], timeout = \"soon\" }", "soon"),
    ] {
        let found = errors(&counting(loses)).join("\n");
        assert!(found.contains(expected), "{loses}: {expected}\nin\n{found}");
    }
    let misplaced = backed_up.replace(
        "name = \"Check\"\n",
        "name = \"Check\"\nloses = { run = [\"count\"] }\n",
    );
    assert!(
        errors(&misplaced)
            .join("\n")
            .contains("step `Check` counts what it `loses` but is not `destructive = true`"),
        "{:?}",
        errors(&misplaced)
    );
    let preflight = backed_up.replace(
        "[[runbooks.restore.steps]]\nname = \"Copy\"",
        "[[runbooks.restore.preflight]]\nname = \"P\"\nrun = [\"true\"]\nloses = { run = [\"count\"] }\n\n[[runbooks.restore.steps]]\nname = \"Copy\"",
    );
    assert!(
        errors(&preflight)
            .join("\n")
            .contains("preflight check `P` takes no `loses`"),
        "{:?}",
        errors(&preflight)
    );
}

#[test]
fn check_warns_of_a_runbook_whose_last_change_nothing_checks() {
    let backed_up = RESTORE.replace("name = \"Copy\"\n", "name = \"Copy\"\nbackup = true\n");
    let unchecked = backed_up.replace(
        "health = { url = \"https://api.example.com/healthz\", expect_status = 200 }",
        "run = [\"kubectl\", \"rollout\", \"restart\", \"deployment/api\"]",
    );
    let warning = "runbook `restore`: nothing checks the result after its last change (step `Check`)";
    let report = crate::report::check(&Config::parse("rollbot.toml", &unchecked).unwrap());
    assert!(report.contains(warning), "{report}");
    for checked in [
        unchecked.replace("name = \"Check\"\n", "name = \"Check\"\nverify = true\n"),
        backed_up.clone(),
    ] {
        let report = crate::report::check(&Config::parse("rollbot.toml", &checked).unwrap());
        assert!(!report.contains("nothing checks the result"), "{report}");
    }
}

#[test]
fn a_preflight_check_may_only_read() {
    let with = |check: &str| {
        MINIMAL.replace(
            "[[runbooks.k8s.steps]]",
            &format!("[[runbooks.k8s.preflight]]\nname = \"Check\"\n{check}\n\n[[runbooks.k8s.steps]]"),
        )
    };
    let config = Config::parse(
        "rollbot.toml",
        &with("run = [\"test\", \"-f\", \"/backups/{{ params.target }}.dump\"]"),
    )
    .unwrap();
    let plan = freeze(&config, &[]).unwrap();
    assert_eq!(plan.preflight.len(), 1);
    assert!(
        matches!(&plan.preflight[0].action, crate::domain::StepAction::Command { argv, timeout_secs: 10, .. } if argv[2] == "/backups/41.dump"),
        "rendered with the request's parameters, 10 s unless it says: {:?}",
        plan.preflight[0]
    );
    for (check, expected) in [
        (
            "run = [\"true\"]\ndestructive = true",
            "preflight check `Check` takes no `destructive`",
        ),
        (
            "http = { method = \"POST\", url = \"https://api.example.com/warm\", expect_status = [200] }",
            "preflight check `Check` would change something",
        ),
        ("gate = \"Ready?\"", "preflight check `Check` takes no `gate`"),
    ] {
        let found = errors(&with(check)).join("\n");
        assert!(found.contains(expected), "{expected}\nin\n{found}");
    }
}

#[test]
fn a_discovery_is_checked_before_anyone_opens_a_form() {
    let with = |discover: &str| {
        MINIMAL.replace(
            "params.target = { pattern = \"[0-9]+\" }",
            &format!(
                "[runbooks.k8s.params.target]\npattern = \"[0-9]+\"\n[runbooks.k8s.params.target.discover]\n{discover}"
            ),
        )
    };
    let kubectl = "run = [\"kubectl\", \"rollout\", \"history\", \"deployment/{{ vars.deployment }}\"]";
    let good = with(&format!(
        "{kubectl}\nlines = '^(?P<revision>[0-9]+)\\s+(?P<cause>.*)$'\nvalue = \"{{{{ entry.revision }}}}\"\nlisted = \"oldest-first\"\nskip_newest = true"
    ));
    let config = Config::parse("rollbot.toml", &good).unwrap();
    let discovery = config.catalog.runbooks["k8s"].params["target"]
        .discover
        .as_ref()
        .unwrap();
    assert!(discovery.oldest_first && discovery.skip_newest);
    assert_eq!(discovery.limit, 10, "ten unless it says");
    assert!(
        matches!(&discovery.source.kind, crate::domain::plan::StepKind::Command { timeout, .. } if timeout.as_secs() == 5),
        "5 s unless it says: someone is looking at the form"
    );
    let read = "lines = '^(?P<revision>[0-9]+)'\nvalue = \"{{ entry.revision }}\"";
    for (discover, expected) in [
        (
            read.to_owned(),
            "parameter `target` discovers with neither or both of `run` and `http`",
        ),
        (
            format!("{kubectl}\nhttp = {{ url = \"https://deploys.example.com/api\" }}\n{read}"),
            "discovers with neither or both",
        ),
        (
            format!("{kubectl}\nvalue = \"{{{{ entry.revision }}}}\""),
            "discovering `target` needs one of `lines` (a regular expression) or `json` (a pointer)",
        ),
        (
            format!("{kubectl}\nlines = '^[0-9]+'\nvalue = \"x\""),
            "`lines` of discovering `target` has no named group",
        ),
        (
            format!("{kubectl}\njson = \"items\"\nvalue = \"x\""),
            "`json` of discovering `target` is not a JSON pointer",
        ),
        (
            format!("{kubectl}\n{read}\nlisted = \"by date\""),
            "`listed = \"by date\"` is neither \"oldest-first\" nor \"newest-first\"",
        ),
        (
            format!("{kubectl}\n{read}\nlimit = 500"),
            "`limit` of discovering `target` must be 1 to 100",
        ),
        (
            format!("{kubectl}\n{read}\ntimeout = \"2m\""),
            "discovering `target` may take at most 30 s",
        ),
        (
            format!("run = [\"git\", \"log\", \"{{{{ params.target }}}}\"]\n{read}"),
            "discovering `target` uses a parameter, and runs before any is given",
        ),
        (
            format!("{kubectl}\n{read}\nlabel = \"{{{{ entry.revision \""),
            "is not a valid template",
        ),
    ] {
        let found = errors(&with(&discover)).join("\n");
        assert!(found.contains(expected), "{expected}\nin\n{found}\nfor\n{discover}");
    }
}
