//! Issue 28: every runbook parameter from Slack, in the command and in a form that knows the
//! runbook.
use crate::support::*;
use serde_json::Value;

/// The test configuration and a service `orders` whose second runbook takes a table list and
/// a region besides its target.
fn with_tables_runbook(marker: &str) -> String {
    format!(
        r#"{}
[runbooks.tables]
description = "Refill some tables from a dump"
expected_duration = "15m"
params.target = {{ pattern = "[a-z0-9.-]+\\.dump", help = "the dump's file name" }}
params.tables = {{ pattern = "[a-z_]+(,[a-z_]+)*", help = "the tables to refill, comma-separated" }}
params.region = {{ choices = ["eu-west-1", "us-east-1"], default = "eu-west-1" }}

[[runbooks.tables.steps]]
name = "Refill"
run = ["sh", "-c", 'echo "refill $2 $3 $4" >> "$1"', "step", "{{{{ vars.marker }}}}", "{{{{ params.target }}}}", "{{{{ params.tables }}}}", "{{{{ params.region }}}}"]
timeout = "10s"

[services.orders]
runbooks = ["app", "tables"]
vars = {{ marker = "{marker}" }}
"#,
        test_config(marker)
    )
}

/// The input blocks of a form: (block id, what it starts with: the initial value or option).
fn fields(view: &Value) -> Vec<(String, String)> {
    view["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "input")
        .map(|b| {
            let element = &b["element"];
            let initial = element["initial_value"]
                .as_str()
                .or(element["initial_option"]["value"].as_str())
                .unwrap_or_default();
            (b["block_id"].as_str().unwrap().to_owned(), initial.to_owned())
        })
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[tokio::test]
async fn a_partial_restore_given_its_tables_in_the_command_shows_them_on_the_card_and_runs_with_them() {
    let bot = Rollbot::start_with(with_tables_runbook).await;
    let said = bot
        .slash(
            ALICE,
            "orders runbook tables to predeploy.dump tables=orders,payments severity high",
        )
        .await;
    assert!(said.starts_with("Recorded *RB-1*"), "{said}");
    bot.settle().await;
    let card = bot.expect_card();
    assert!(
        card.text
            .contains("*Parameters*\n`region` = `eu-west-1`\n`tables` = `orders,payments`"),
        "the card shows every value the steps get, the default too: {}",
        card.text
    );
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(bot.marker(), ["refill predeploy.dump orders,payments eu-west-1"]);
    bot.thread(&card);
    assert!(bot.card_now(&card).text.contains("Succeeded"));
}

#[tokio::test]
async fn the_form_offers_the_services_runbooks_and_redraws_with_the_fields_of_the_one_picked() {
    let bot = Rollbot::start_with(with_tables_runbook).await;
    let said = bot.slash(ALICE, "orders tables=orders").await;
    assert!(said.starts_with("Opening a form"), "{said}");
    let form = bot.expect_modal();
    assert_eq!(
        fields(&form),
        owned(&[
            ("service", "orders"),
            ("severity", ""),
            ("runbook", "app"),
            ("target", ""),
            ("reason", "")
        ]),
        "the default runbook, with its one parameter"
    );
    let blocks = form["blocks"].to_string();
    assert!(
        blocks.contains("Not taken by this runbook, so left out: `tables=orders`"),
        "what was typed and does not fit is said, not dropped silently: {blocks}"
    );
    assert!(
        blocks.contains("Refill some tables from a dump · about 15 min"),
        "each runbook says what it does and how long it takes: {blocks}"
    );

    bot.pick(ALICE, &form, "runbook", "tables", &[("severity", "high")])
        .await;
    assert!(
        bot.slack
            .calls()
            .iter()
            .any(|c| c.method == "views.update" && c.body["hash"] == form["hash"]),
        "the redraw names the hash of the form it redraws, so Slack refuses it if the form moved on"
    );
    let redrawn = bot.expect_form_redrawn();
    assert_eq!(
        fields(&redrawn),
        owned(&[
            ("service", "orders"),
            ("severity", "high"),
            ("runbook", "tables"),
            ("target", ""),
            ("param.region", "eu-west-1"),
            ("param.tables", "orders"),
            ("reason", "")
        ]),
        "the picked runbook's fields, with what was typed in the command and the form kept"
    );
    let region = redrawn["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["block_id"] == "param.region")
        .unwrap();
    assert_eq!(region["element"]["type"], "static_select", "choices are a select");

    let refused = bot
        .submit(
            ALICE,
            &redrawn,
            &[
                ("service", "orders"),
                ("severity", "high"),
                ("runbook", "tables"),
                ("target", "predeploy.dump"),
                ("param.tables", "orders;drop"),
            ],
        )
        .await
        .expect("a field error");
    assert_eq!(
        refused["errors"]["param.tables"],
        "`orders;drop` is not a valid `tables` (it must match `[a-z_]+(,[a-z_]+)*`: the tables to refill, comma-separated). Nothing was requested; fix the value and run the command again.",
        "{refused}"
    );
    let closed = bot
        .submit(
            ALICE,
            &redrawn,
            &[
                ("service", "orders"),
                ("severity", "high"),
                ("runbook", "tables"),
                ("target", "predeploy.dump"),
                ("param.tables", "orders,payments"),
                ("param.region", "us-east-1"),
            ],
        )
        .await;
    assert_eq!(closed, None, "the form closes");
    bot.settle().await;
    assert!(bot.ephemerals(ALICE)[0].starts_with("Recorded *RB-1*"));
    let card = bot.expect_card();
    assert!(
        card.text
            .contains("*Parameters*\n`region` = `us-east-1`\n`tables` = `orders,payments`"),
        "{}",
        card.text
    );
}

/// A runbook whose plan needs a program that is not installed and a variable that is not set,
/// and whose declared check fails: the card says so before anyone approves.
fn with_preflight(marker: &str) -> String {
    format!(
        r#"{}
[runbooks.restore]
description = "Restore from a dump"
params.target = {{ pattern = "[a-z0-9.-]+", help = "the dump's file name" }}

[[runbooks.restore.preflight]]
name = "The dump file exists"
run = ["test", "-f", "/nonexistent/backups/{{{{ params.target }}}}"]

[[runbooks.restore.preflight]]
name = "The scratch directory is there"
run = ["test", "-d", "/tmp"]

[[runbooks.restore.steps]]
name = "Restore"
run = ["no-such-restore-tool", "--token", "${{env:RESTORE_TOKEN}}", "{{{{ params.target }}}}"]
destructive = true
no_backup_because = "a test"

[[runbooks.restore.steps]]
name = "Record"
run = ["sh", "-c", 'echo "restored" >> "$1"', "step", "{{{{ vars.marker }}}}"]

[services.ledger]
runbooks = ["restore"]
vars = {{ marker = "{marker}" }}
"#,
        test_config(marker)
    )
}

#[tokio::test]
async fn a_failed_preflight_is_on_the_card_and_approving_over_it_is_asked_and_recorded() {
    let bot = Rollbot::start_with(with_preflight).await;
    bot.slash(ALICE, "ledger to nightly.dump severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    let now = bot.card_now(&card);
    let preflight = now
        .text
        .lines()
        .skip_while(|l| !l.starts_with("*Preflight*"))
        .take_while(|l| !l.starts_with("*Plan*"))
        .collect::<Vec<_>>()
        .join("\n");
    let path_dirs = std::env::var("PATH").unwrap();
    let sh_at = path_dirs
        .split(':')
        .map(|d| format!("{d}/sh"))
        .find(|p| std::path::Path::new(p).exists())
        .unwrap();
    assert_eq!(
        preflight,
        format!(
            "*Preflight*: 3 check(s) failed. Fix them and request again, or approve knowing it (the approval records that).\n\
             ❌ `no-such-restore-tool` can be started: not found on rollbot's PATH: install it where rollbot runs\n\
             ✅ `sh` can be started: {sh_at}\n\
             ❌ 1 referenced variable(s) set: not set where rollbot runs: ${{env:RESTORE_TOKEN}}\n\
             ❌ The dump file exists: exited with code 1\n\
             ✅ The scratch directory is there"
        ),
        "{}",
        now.text
    );
    assert_eq!(
        now.buttons(),
        ["approve_despite_preflight", "reject", "escalate", "cancel"],
        "Approve asks first"
    );

    // A plain Approve (an old card, a client that skips the dialog) is refused and says why.
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(
        bot.ephemerals(BOB),
        [
            "A preflight check of *RB-1* failed: `no-such-restore-tool` can be started; 1 referenced variable(s) set; The dump file exists. If you have checked that it is safe to run anyway, click *Approve despite preflight…* on the card; the approval records that you did."
        ]
    );
    bot.click(BOB, Button::ApproveDespitePreflight(rb(1))).await;
    bot.settle().await;
    let approved = bot.card_now(&card);
    assert!(
        approved
            .text
            .contains("<@U0BOB> (`on_call`) at 03:00 UTC ⚠️ despite a failed preflight check"),
        "{}",
        approved.text
    );
    bot.thread(&card);
    let postmortem = bot.slash(ALICE, "postmortem RB-1").await;
    assert!(
        postmortem.contains("Preflight: `no-such-restore-tool` can be started FAILED")
            && postmortem.contains("despite a failed preflight check"),
        "{postmortem}"
    );
}

/// A stand-in `kubectl` that answers `rollout history` as the real one does (oldest first,
/// the running revision last) and records that it was asked.
fn fake_kubectl(dir: &std::path::Path) {
    let script = r#"echo "$@" >> "$(dirname "$0")/asked"
if [ "$1 $2" = "rollout history" ]; then
  echo "deployment.apps/checkout-api "
  echo "REVISION  CHANGE-CAUSE"
  echo "39        <none>"
  echo "40        image checkout:1.4.1"
  echo "41        image checkout:1.4.2"
  echo "42        image checkout:1.5.0"
  echo
  exit 0
fi
echo "error: unknown command \"$1\" for \"kubectl\"" >&2
exit 1
"#;
    fake_program(dir, "kubectl", script);
}

fn with_history(marker: &str, bin: &std::path::Path) -> String {
    format!(
        r#"{}
[runbooks.kube]
description = "Undo the rollout"

[runbooks.kube.params.target]
pattern = "[0-9]+"
help = "the revision to go back to"

[runbooks.kube.params.target.discover]
run = ["kubectl", "rollout", "history", "deployment/{{{{ vars.deployment }}}}", "-n", "shop"]
env = {{ PATH = "{bin}:/usr/bin:/bin" }}
timeout = "5s"
lines = '^(?P<revision>[0-9]+)\s+(?P<cause>.*)$'
value = "{{{{ entry.revision }}}}"
label = "{{{{ entry.revision }}}} · {{{{ entry.cause }}}}"
listed = "oldest-first"
skip_newest = true

[[runbooks.kube.steps]]
name = "Undo"
run = ["sh", "-c", 'echo "undo to $2" >> "$1"', "step", "{{{{ vars.marker }}}}", "{{{{ params.target }}}}"]

[services.storefront]
runbooks = ["kube"]
vars = {{ marker = "{marker}", deployment = "checkout-api" }}
"#,
        test_config(marker),
        bin = bin.display()
    )
}

/// The options of the select of `block` in `view`: (value, label).
fn options(view: &Value, block: &str) -> Vec<(String, String)> {
    let field = view["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["block_id"] == block)
        .unwrap();
    field["element"]["options"]
        .as_array()
        .unwrap_or_else(|| panic!("`{block}` is not a select: {field}"))
        .iter()
        .map(|o| {
            (
                o["value"].as_str().unwrap().to_owned(),
                o["text"]["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_form_opens_at_once_then_offers_the_revisions_kubectl_lists_newest_first() {
    let bin = tempfile::tempdir().unwrap();
    fake_kubectl(bin.path());
    let bot = Rollbot::start_with(|marker| with_history(marker, bin.path())).await;
    let said = bot.slash(ALICE, "storefront severity high").await;
    assert!(said.starts_with("Opening a form"), "{said}");
    let form = bot.expect_modal();
    let blocks = form["blocks"].to_string();
    assert!(
        blocks.contains("⏳ Looking up recent values with `kubectl rollout history deployment/checkout-api -n shop`…"),
        "the form does not wait for the lookup: it says one is running: {blocks}"
    );
    assert_eq!(
        form["blocks"][3]["element"]["type"], "plain_text_input",
        "meanwhile the target can be typed"
    );

    let offered = bot.await_form_redrawn().await;
    assert_eq!(
        options(&offered, "target"),
        owned(&[
            ("41", "41 · image checkout:1.4.2"),
            ("40", "40 · image checkout:1.4.1"),
            ("39", "39 · <none>"),
        ]),
        "newest first, without 42, which is what runs now"
    );
    assert!(
        offered["blocks"].to_string().contains(
            "🕘 3 recent values, newest first, from `kubectl rollout history deployment/checkout-api -n shop`. Another value: type `/rollback storefront to &lt;value&gt;`."
        ),
        "{offered}"
    );
    assert_eq!(
        std::fs::read_to_string(bin.path().join("asked")).unwrap(),
        "rollout history deployment/checkout-api -n shop\n",
        "discovery ran once, read-only, for the service's deployment"
    );

    let closed = bot
        .submit(
            ALICE,
            &offered,
            &[
                ("service", "storefront"),
                ("severity", "high"),
                ("runbook", "kube"),
                ("target", "40"),
            ],
        )
        .await;
    assert_eq!(closed, None, "the form closes");
    bot.settle().await;
    assert!(bot.ephemerals(ALICE)[0].starts_with("Recorded *RB-1*"));
    let card = bot.expect_card();
    assert!(
        card.text.starts_with("Rollback RB-1: storefront to 40"),
        "{}",
        card.text
    );
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert_eq!(bot.marker(), ["undo to 40"]);
    bot.thread(&card);
    assert!(bot.card_now(&card).text.contains("Succeeded"));
}

#[tokio::test]
async fn a_failing_discovery_says_why_and_leaves_the_target_to_type() {
    let bin = tempfile::tempdir().unwrap();
    // `kubectl` is there but the cluster is not: it fails as the real one does.
    fake_program(
        bin.path(),
        "kubectl",
        "echo 'The connection to the server localhost:8080 was refused - did you specify the right host or port?' >&2\nexit 1\n",
    );
    let bot = Rollbot::start_with(|marker| with_history(marker, bin.path())).await;
    bot.slash(ALICE, "storefront").await;
    let _looking = bot.expect_modal();
    let failed = bot.await_form_redrawn().await;
    let target = failed["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["block_id"] == "target")
        .unwrap();
    assert_eq!(target["element"]["type"], "plain_text_input");
    assert!(
        failed["blocks"].to_string().contains(
            "⚠️ Could not list recent values with `kubectl rollout history deployment/checkout-api -n shop` (exited with code 1: The connection to the server localhost:8080 was refused - did you specify the right host or port?). Type the value."
        ),
        "{failed}"
    );
}

#[tokio::test]
async fn a_form_changed_before_discovery_returns_is_left_as_the_person_left_it() {
    let bin = tempfile::tempdir().unwrap();
    fake_program(
        bin.path(),
        "kubectl",
        "sleep 0.5\necho '41 image-a'\necho '42 image-b'\n",
    );
    let bot = Rollbot::start_with(|marker| with_history(marker, bin.path())).await;
    bot.slash(ALICE, "storefront").await;
    let form = bot.expect_modal();
    // Alice picks the runbook again before kubectl answers: the form is redrawn, its hash moves on.
    bot.pick(ALICE, &form, "runbook", "kube", &[("severity", "high")]).await;
    let redrawn = bot.expect_form_redrawn();
    assert!(
        redrawn["blocks"].to_string().contains("⏳ Looking up"),
        "the redraw starts its own lookup"
    );
    // Both lookups answer. The one the first form started names its hash, which Slack refuses:
    // it would have put back the form as it was before the pick.
    let mut updates = bot.await_form_updates(2).await;
    updates.sort_by_key(|u| u["hash"] == redrawn["hash"]);
    let [stale, current] = &updates[..] else { unreachable!() };
    assert_eq!(stale["hash"], form["hash"]);
    assert!(
        stale["view"]["hash"].is_null(),
        "Slack refused the stale redraw: {stale}"
    );
    assert!(
        current["view"]["hash"].is_string(),
        "Slack took the current one: {current}"
    );
    assert_eq!(options(&current["view"], "target"), owned(&[("41", "41 · image-a")]));
}

#[tokio::test]
async fn a_drill_is_preflighted_for_what_it_runs() {
    let bot = Rollbot::start_with(|marker| {
        with_preflight(marker).replace(
            "no_backup_because = \"a test\"",
            "no_backup_because = \"a test\"\ndrill = { run = [\"also-not-installed\", \"--list\", \"{{ params.target }}\"] }",
        )
    })
    .await;
    bot.slash(ALICE, "drill ledger to nightly.dump severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    let text = bot.card_now(&card).text;
    let preflight: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("*Preflight*"))
        .take_while(|l| !l.starts_with("*Plan*"))
        .collect();
    assert_eq!(
        preflight[1..],
        [
            "❌ `also-not-installed` can be started: not found on rollbot's PATH: install it where rollbot runs",
            "❌ The dump file exists: exited with code 1",
            "✅ The scratch directory is there"
        ],
        "a drill checks the programs its overrides start (not the real steps' nor `sh` of a step it only shows), and the runbook's checks: {text}"
    );
}

#[tokio::test]
async fn a_form_opened_by_someone_who_may_not_request_starts_no_lookup() {
    let bin = tempfile::tempdir().unwrap();
    fake_kubectl(bin.path());
    let bot = Rollbot::start_with(|marker| {
        with_history(marker, bin.path()).replace(
            "anyone_may_request = true",
            "anyone_may_request = false\nrequesters = [\"on_call\"]",
        )
    })
    .await;
    bot.slash(MALLORY, "storefront").await;
    let form = bot.expect_modal();
    assert!(!form["blocks"].to_string().contains("Looking up"), "{form}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !bin.path().join("asked").exists(),
        "no program started for someone whose request would be refused"
    );
}

#[tokio::test]
async fn many_forms_at_once_run_at_most_eight_lookups_at_a_time_and_each_gets_its_values() {
    let bin = tempfile::tempdir().unwrap();
    // Each run notes how many runs are going on as it starts, and lasts long enough to overlap.
    fake_program(
        bin.path(),
        "kubectl",
        r#"here="$(dirname "$0")"
mkdir "$here/running.$$"
ls -d "$here"/running.* | wc -l >> "$here/seen"
sleep 0.4
rmdir "$here/running.$$"
echo '41 image-a'
echo '42 image-b'
"#,
    );
    let bot = Rollbot::start_with(|marker| with_history(marker, bin.path())).await;
    let forms = 12;
    futures_util::future::join_all((0..forms).map(|_| bot.slash(ALICE, "storefront"))).await;
    for form in bot.expect_modals(forms) {
        assert!(form["blocks"].to_string().contains("⏳ Looking up"), "{form}");
    }
    let offered = bot.await_form_updates(forms).await;
    for update in &offered {
        assert_eq!(options(&update["view"], "target"), owned(&[("41", "41 · image-a")]));
    }
    let peak = std::fs::read_to_string(bin.path().join("seen"))
        .unwrap()
        .lines()
        .map(|n| n.trim().parse::<usize>().unwrap())
        .max()
        .unwrap();
    assert!(
        (2..=8).contains(&peak),
        "lookups overlapped ({peak} at once at most), and never more than eight"
    );
}
