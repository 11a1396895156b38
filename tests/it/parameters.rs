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
