//! Issue 5: step kinds against real local targets, the full-restore example executed for real,
//! and drills.
use crate::support::fake_service::*;
use crate::support::*;
use std::time::Duration;

const FLAG_TOKEN: &str = "flag-token-s3cr3t-4471";

fn steps_config(marker: &str, service: &str) -> String {
    test_config(marker).replace(
        r#"runbooks = ["app", "broken", "database"]"#,
        r#"runbooks = ["app", "broken", "database", "flag-off"]"#,
    ) + &format!(
        r#"
[runbooks.flag-off]
description = "Turn a flag off, then check"
params.target = {{ pattern = "[a-z-]+" }}

[[runbooks.flag-off.steps]]
name = "Turn the flag off"
http = {{ method = "PATCH", url = "{service}/flags/{{{{ params.target }}}}", headers = {{ Authorization = "Bearer ${{env:FLAG_TOKEN}}" }}, json = {{ enabled = false, flag = "{{{{ params.target }}}}" }}, expect_status = [200] }}
retries = 2
retry_delay = "100ms"

[[runbooks.flag-off.steps]]
name = "Tell the stakeholders"
notify = {{ channel = "C0STATUS", text = "flag {{{{ params.target }}}} is off" }}

[[runbooks.flag-off.steps]]
name = "Slow audit hook"
http = {{ method = "POST", url = "{service}/slow", expect_status = [200] }}
timeout = "1s"
on_failure = "continue"

[[runbooks.flag-off.steps]]
name = "Health check"
health = {{ url = "{service}/health", expect_status = 200, body_contains = "ok", within = "5s", every = "200ms" }}

[[runbooks.flag-off.steps]]
name = "Never healthy"
health = {{ url = "{service}/never", within = "1s", every = "300ms" }}
on_failure = "continue"
"#
    )
}

#[tokio::test]
async fn http_and_health_steps_retry_time_out_and_keep_the_secret_out_of_every_record() {
    captured_logs();
    let service = FakeService::start().await;
    service.script(
        "/flags/new-checkout",
        Script {
            echo_authorization: true,
            ..answers(&[503, 503, 200], "flag updated")
        },
    );
    service.script(
        "/slow",
        Script {
            delay: Duration::from_secs(3),
            ..answers(&[200], "late")
        },
    );
    service.script("/health", answers(&[503, 200, 200], "status: ok"));
    service.script("/never", answers(&[500], "down"));
    let url = service.url.clone();
    let bot = Rollbot::builder()
        .config(|m| steps_config(m, &url))
        .secrets(&[("FLAG_TOKEN", FLAG_TOKEN)])
        .start()
        .await;

    let plan = bot
        .slash(ALICE, "plan checkout-api to new-checkout runbook flag-off")
        .await;
    assert!(
        plan.contains("PATCH ") && plan.contains("-H 'Authorization: Bearer ${env:FLAG_TOKEN}'"),
        "the plan shows the reference: {plan}"
    );
    assert!(
        plan.contains(r#"-d '{"enabled":false,"flag":"new-checkout"}' → expect HTTP 200"#),
        "{plan}"
    );

    bot.slash(ALICE, "checkout-api to new-checkout runbook flag-off severity critical")
        .await;
    bot.settle().await;
    let card = bot.expect_card();
    assert!(card.text.contains("Bearer ${env:FLAG_TOKEN}"), "{}", card.text);

    let calls = service.received("/flags/new-checkout");
    assert_eq!(calls.len(), 3, "two 503s, then the retry that worked");
    for call in &calls {
        assert_eq!(call.method, "PATCH");
        assert_eq!(call.authorization.as_deref(), Some(&*format!("Bearer {FLAG_TOKEN}")));
        assert_eq!(call.content_type.as_deref(), Some("application/json"));
        assert_eq!(call.body, r#"{"enabled":false,"flag":"new-checkout"}"#);
    }
    assert_eq!(service.received("/health").len(), 2, "polled until healthy");
    assert!(service.received("/never").len() >= 3, "polled until the deadline");

    let thread = bot.thread(&card);
    let finished: Vec<&String> = thread
        .iter()
        .filter(|m| m.contains(" Step ") && !m.starts_with("▶️"))
        .collect();
    assert_eq!(finished.len(), 5, "{thread:#?}");
    assert!(
        finished[0].starts_with("✅ Step 1/5 *Turn the flag off* succeeded after")
            && finished[0].contains(", 3 attempts"),
        "{}",
        finished[0]
    );
    assert!(
        finished[0].contains("HTTP 200\nflag updated (you sent: Bearer ${env:FLAG_TOKEN})"),
        "an echoed secret is shown as its reference: {}",
        finished[0]
    );
    assert!(finished[1].contains("posted to C0STATUS"), "{}", finished[1]);
    assert!(
        finished[2].starts_with("⏱️ Step 3/5 *Slow audit hook* timed out")
            && finished[2].contains("no answer within 1s")
            && finished[2].contains("the run goes on"),
        "{}",
        finished[2]
    );
    assert!(
        finished[3].starts_with("✅ Step 4/5 *Health check* succeeded")
            && finished[3].contains("healthy after 2 attempt(s)"),
        "{}",
        finished[3]
    );
    assert!(
        finished[4].starts_with("⏱️ Step 5/5 *Never healthy* timed out")
            && finished[4].contains("not healthy within 1s")
            && finished[4].contains("last answer: HTTP 500 (wrong status)"),
        "{}",
        finished[4]
    );
    assert!(
        thread.iter().any(|m| m.contains("*ROLLBACK COMPLETE*")),
        "steps allowed to fail do not fail the run"
    );
    assert_eq!(
        bot.posts_in("C0STATUS"),
        ["📣 RB-1 (checkout-api): flag new-checkout is off"]
    );
    let done = bot.card_now(&card);
    assert!(done.text.contains("Succeeded"), "{}", done.text);

    for call in bot.slack.calls() {
        assert!(
            !call.body.to_string().contains(FLAG_TOKEN),
            "Slack got the secret: {call:?}"
        );
    }
    let leaks = bot
        .count(&format!(
            "SELECT (SELECT count(*) FROM rollback_events WHERE event::text LIKE '%{FLAG_TOKEN}%')
                  + (SELECT count(*) FROM outbox WHERE payload::text LIKE '%{FLAG_TOKEN}%')"
        ))
        .await;
    assert_eq!(leaks, 0, "the secret is in the database");
    let logs = captured_logs();
    assert!(
        logs.contains("step failed; retrying"),
        "the capture saw this test's run:\n{logs}"
    );
    assert!(!logs.contains(FLAG_TOKEN), "the secret is in the logs");
}

fn sql_config(marker: &str) -> String {
    test_config(marker).replace(
        r#"runbooks = ["app", "broken", "database"]"#,
        r#"runbooks = ["app", "broken", "database", "checks"]"#,
    ) + r#"
[databases.shop]
url_env = "SHOP_DATABASE_URL"

[runbooks.checks]
description = "Snapshot, break, compare, mend, compare, assert"

[[runbooks.checks.steps]]
name = "Snapshot"
sql = { database = "shop", snapshot = { tables = ["orders", "items"] } }

[[runbooks.checks.steps]]
name = "Break the data"
run = ["psql", "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--dbname=${env:SHOP_DATABASE_URL}", "--command=DELETE FROM items WHERE id > 6"]
timeout = "30s"

[[runbooks.checks.steps]]
name = "Compare after the damage"
sql = { database = "shop", compare = { drift = "0", tables = { orders = "10%" } } }
on_failure = "continue"

[[runbooks.checks.steps]]
name = "Mend the data"
run = ["psql", "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--dbname=${env:SHOP_DATABASE_URL}", "--command=INSERT INTO items SELECT g, 1 + g % 3 FROM generate_series(7, 9) g"]
timeout = "30s"

[[runbooks.checks.steps]]
name = "Compare after the repair"
sql = { database = "shop", compare = { drift = "0" } }

[[runbooks.checks.steps]]
name = "Foreign keys are there"
sql = { database = "shop", assert = { query = "SELECT count(*) FROM pg_constraint WHERE contype = 'f'", expect = ">= 1" } }

[[runbooks.checks.steps]]
name = "Snapshot steps cannot write"
sql = { database = "shop", assert = { query = "SELECT current_setting('transaction_read_only')", expect = "= on" } }
"#
}

#[tokio::test]
async fn sql_steps_snapshot_compare_and_assert_against_a_scratch_database() {
    let scratch = scratch_database().await;
    connect(&scratch.url)
        .await
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY);
             CREATE TABLE items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders(id));
             INSERT INTO orders SELECT generate_series(1, 3);
             INSERT INTO items SELECT g, 1 + g % 3 FROM generate_series(1, 9) g;",
        )
        .await
        .unwrap();
    let bot = Rollbot::builder()
        .config(sql_config)
        .secrets(&[("SHOP_DATABASE_URL", &scratch.url)])
        .start()
        .await;

    bot.slash(ALICE, "checkout-api runbook checks severity critical").await;
    bot.settle().await;
    let card = bot.expect_card();
    assert!(
        card.text
            .contains("sql shop (${env:SHOP_DATABASE_URL}, read-only): snapshot row counts of orders, items"),
        "{}",
        card.text
    );
    let thread = bot.thread(&card);
    let results: Vec<&String> = thread.iter().filter(|m| m.contains(" Step")).collect();
    // Steps that passed before the thread's next slot share a message; a failure has its own.
    assert_eq!(results.len(), 3, "{thread:#?}");
    assert!(
        results[0].starts_with("✅ Steps 1–2 of 7 passed") && results[0].contains("items: 9 rows\norders: 3 rows"),
        "{}",
        results[0]
    );
    assert!(
        results[1].starts_with("❌ Step 3/7 *Compare after the damage* failed"),
        "{}",
        results[1]
    );
    assert!(
        results[1].contains("row counts moved beyond the allowed drift: items")
            && results[1].contains("✗ items: 9 → 6 (-3; allowed 0 rows)")
            && results[1].contains("✓ orders: 3 → 3 (+0; allowed 10%)"),
        "{}",
        results[1]
    );
    let rest = results[2];
    assert!(rest.starts_with("✅ Steps 4–7 of 7 passed"), "{rest}");
    assert!(
        rest.contains("5. *Compare after the repair* — ✅") && rest.contains("✓ items: 9 → 9 (+0; allowed 0 rows)"),
        "{rest}"
    );
    assert!(
        rest.contains("6. *Foreign keys are there* — ✅") && rest.contains("1 meets &gt;= 1"),
        "{rest}"
    );
    assert!(
        rest.contains("7. *Snapshot steps cannot write* — ✅") && rest.contains("on meets = on"),
        "{rest}"
    );
    bot.card_now(&card);
    let items: i64 = connect(&scratch.url)
        .await
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(items, 9);
}

/// One of the library's database runbooks, unchanged but for who approves and where its dumps
/// are, against a real scratch database: `before` sets the data up, a real `pg_dump` takes
/// `predeploy.dump`, then `bad_deploy` damages the data. Answers the database, the backup
/// directory (kept alive by the `TempDir`) and rollbot.
async fn database_example(runbook_file: &str, before: &str, bad_deploy: &str) -> (TestDb, tempfile::TempDir, Rollbot) {
    let scratch = scratch_database().await;
    let db = connect(&scratch.url).await;
    db.batch_execute(before).await.unwrap();
    let backups = tempfile::tempdir().unwrap();
    let dump = std::process::Command::new("pg_dump")
        .args(["--format=custom", &format!("--dbname={}", scratch.url)])
        .arg(format!("--file={}/predeploy.dump", backups.path().display()))
        .status()
        .expect("pg_dump must be installed (.ci/run installs postgresql-client)");
    assert!(dump.success());
    db.batch_execute(bad_deploy).await.unwrap();
    let example = std::fs::read_to_string(format!(
        "{}/examples/runbooks/{runbook_file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let dir = backups.path().display().to_string();
    let config = example
        .replace(r#"on_call = ["S0ONCALL"]"#, &format!(r#"on_call = ["{BOB}"]"#))
        .replace(r#"team_lead = ["U0LEAD1"]"#, &format!(r#"team_lead = ["{ALICE}"]"#))
        .replace(
            r#"backup_dir = "/var/backups/orders""#,
            &format!(r#"backup_dir = "{dir}""#),
        );
    assert_ne!(config, example);
    let bot = Rollbot::builder()
        .config(|_| config)
        .secrets(&[("ORDERS_DATABASE_URL", &scratch.url)])
        .start()
        .await;
    (scratch, backups, bot)
}

/// The library's full-restore runbook, unchanged but for where its files are, against a real
/// database: data broken after the backup is back after the rollback.
#[tokio::test]
async fn the_full_restore_example_brings_back_data_broken_after_the_backup() {
    let (scratch, backups, bot) = database_example(
        "database-full-restore.toml",
        "CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL, created_at timestamptz NOT NULL);
         CREATE TABLE order_items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders(id), sku text NOT NULL);
         INSERT INTO orders SELECT g, g * 10, now() - interval '1 day' FROM generate_series(1, 100) g;
         INSERT INTO order_items SELECT g, 1 + g % 100, 'sku-' || g FROM generate_series(1, 300) g;",
        // The bad deploy: half the orders gone, the rest zeroed; and 12 orders taken since,
        // which the restore will undo.
        "DELETE FROM order_items WHERE order_id > 50; DELETE FROM orders WHERE id > 50; UPDATE orders SET total = 0;
         INSERT INTO orders SELECT g, 5, now() + interval '1 second' FROM generate_series(1001, 1012) g;",
    )
    .await;
    let dir = backups.path().display().to_string();

    bot.slash(ALICE, "orders to predeploy.dump severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    let paused = bot.card_now(&card);
    assert_eq!(paused.buttons(), ["confirm", "abort", "post_update"], "{}", paused.text);
    assert!(
        std::path::Path::new(&format!("{dir}/before-restore-RB-1.dump")).exists(),
        "the safety copy is taken before anyone is asked to confirm"
    );

    bot.click(BOB, Button::Confirm(rb(1), 2)).await;
    let modal = bot.expect_modal();
    let facts = modal["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(
        facts.starts_with("🛟 *Backup*: step 2 *Safety copy of the current data* finished at")
            && facts.contains("(0 min ago)")
            && facts.contains(
                "📊 *Rows now* (step 1, `orders`), which it may replace: public.order_items 150 · public.orders 62"
            )
            && facts.contains("*Checked before approval*\n")
            && facts.contains("✅ The dump file is there: ")
            && facts.contains("✅ The database answers"),
        "what the person typing the phrase should know: {facts}"
    );
    assert!(
        modal["blocks"][2]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("⏳ *What it would undo*: counting with `sh -ec dumped=$(pg_restore"),
        "the form opens at once, while the count runs: {modal:#}"
    );
    let counted = bot.await_form_updates(1).await.remove(0);
    let losses = counted["view"]["blocks"][2]["text"]["text"].as_str().unwrap();
    let dumped = std::process::Command::new("pg_restore")
        .args(["--list", &format!("{dir}/predeploy.dump")])
        .output()
        .unwrap();
    let dumped = String::from_utf8_lossy(&dumped.stdout);
    let dumped = dumped
        .lines()
        .find_map(|l| l.strip_prefix("; Archive created at "))
        .unwrap();
    assert_eq!(
        losses,
        format!(
            "🧾 *What it would undo* (`sh -ec dumped=$(pg_restore --list \"$1\" | sed -n 's/^; *Arch…`):\n\
             >The dump was written at {dumped}; everything since is undone:\n\
             >orders: +12 rows written since the dump"
        ),
        "the orders taken since the dump, counted by the example's own query"
    );
    assert_eq!(
        bot.submit(BOB, &modal, &[("phrase", "CONFIRM_FULL_RESTORE")]).await,
        None
    );
    bot.settle().await;

    let thread = bot.thread(&card);
    assert!(
        thread
            .iter()
            .any(|m| m.starts_with("✅ Step 3/5 *Full restore* succeeded")),
        "{thread:#?}"
    );
    let compare = thread
        .iter()
        .find(|m| m.contains("Step 4/5 *Compare") && !m.starts_with("▶️"))
        .unwrap();
    assert!(
        // Doubling back to the dump's counts is more than the example's 50%: flagged, not fatal.
        compare.contains("✗ public.orders: 62 → 100 (+38; allowed 50%)")
            && compare.contains("✗ public.order_items: 150 → 300 (+150; allowed 50%)")
            && compare.contains("the run goes on"),
        "{compare}"
    );
    assert!(
        thread
            .iter()
            .any(|m| m.starts_with("✅ Step 5/5 *Foreign keys are back and valid* succeeded")),
        "{thread:#?}"
    );
    assert!(bot.card_now(&card).text.contains("Succeeded"));
    let restored = connect(&scratch.url).await;
    let orders: i64 = restored
        .query_one("SELECT count(*) FROM orders WHERE total > 0", &[])
        .await
        .unwrap()
        .get(0);
    let items: i64 = restored
        .query_one("SELECT count(*) FROM order_items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        (orders, items),
        (100, 300),
        "the data from before the bad deploy is back"
    );
    let postmortem = bot.slash(ALICE, "postmortem RB-1").await;
    let verification = postmortem
        .split("## Verification")
        .nth(1)
        .and_then(|rest| rest.split("## Root Cause").next())
        .unwrap_or_else(|| panic!("{postmortem}"));
    assert!(
        verification.contains("- Before approval, The dump file is there: passed: ")
            && verification.contains("- Step 1 Record row counts before the restore: succeeded")
            && verification.contains("✗ public.orders: 62 → 100 (+38; allowed 50%)")
            && verification.contains("- Step 5 Foreign keys are back and valid: succeeded"),
        "the draft carries the evidence the thread showed: {verification}"
    );
}

/// The library's partial-restore runbook given its tables in the command: the tables named are
/// refilled from the dump, a table left out keeps what it has, and a misspelt parameter is
/// refused with the right name before anything is recorded.
#[tokio::test]
async fn the_partial_restore_example_refills_only_the_tables_named_in_the_command() {
    let (scratch, backups, bot) = database_example(
        "database-partial-restore.toml",
        "CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL);
         CREATE TABLE order_items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders(id), sku text NOT NULL);
         CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 100) g;
         INSERT INTO order_items SELECT g, 1 + g % 100, 'sku-' || g FROM generate_series(1, 300) g;
         INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 20) g;",
        // The bad deploy broke the orders; customers changed since the dump, and must keep it.
        "DELETE FROM order_items WHERE order_id > 50; DELETE FROM orders WHERE id > 50;
         INSERT INTO customers VALUES (21, 'signed up after the dump');",
    )
    .await;
    let dir = backups.path().display().to_string();

    let misspelt = bot
        .slash(ALICE, "orders-tables to predeploy.dump table=orders severity high")
        .await;
    assert_eq!(
        misspelt,
        "Runbook `partial-restore` has no parameter `table`. Did you mean `tables`? It takes `tables`, `target`. Nothing was requested; fix it and run the command again."
    );
    bot.slash(
        ALICE,
        "orders-tables to predeploy.dump tables=orders,order_items severity high",
    )
    .await;
    bot.settle().await;
    let card = bot.expect_card();
    assert!(
        card.text.contains("RB-1"),
        "the refused request drew no number: {}",
        card.text
    );
    assert!(
        card.text.contains("*Parameters*\n`tables` = `orders,order_items`"),
        "the card shows the tables people approve: {}",
        card.text
    );
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert!(
        std::path::Path::new(&format!("{dir}/tables-before-restore-RB-1.dump")).exists(),
        "the safety copy of the named tables is taken before anyone is asked to confirm"
    );
    bot.click(BOB, Button::Confirm(rb(1), 2)).await;
    let modal = bot.expect_modal();
    assert_eq!(
        bot.submit(BOB, &modal, &[("phrase", "RESTORE orders-tables")]).await,
        None
    );
    bot.settle().await;
    let thread = bot.thread(&card);
    assert!(
        thread
            .iter()
            .any(|m| m.starts_with("✅ Step 3/5 *Refill the tables from the dump* succeeded")),
        "{thread:#?}"
    );
    assert!(bot.card_now(&card).text.contains("Succeeded"));
    let after = connect(&scratch.url).await;
    let count = async |sql: &str| -> i64 { after.query_one(sql, &[]).await.unwrap().get(0) };
    assert_eq!(
        (
            count("SELECT count(*) FROM orders").await,
            count("SELECT count(*) FROM order_items").await,
            count("SELECT count(*) FROM customers").await,
        ),
        (100, 300, 21),
        "orders and their items are back; customers, not named, kept the one who signed up since"
    );
}

fn drill_config(marker: &str) -> String {
    test_config(marker).replace(
        r#"runbooks = ["app", "broken", "database"]"#,
        r#"runbooks = ["app", "broken", "database", "rehearsed"]"#,
    ) + r#"
[runbooks.rehearsed]
description = "Code, a gate, a destructive restore, and a check that runs in drills too"

[[runbooks.rehearsed.steps]]
name = "Undo release"
run = ["sh", "-c", 'echo "undo" >> "$1"', "step", "{{ vars.marker }}"]

[[runbooks.rehearsed.steps]]
name = "Decide on the data"
gate = "Code is rolled back. Restore the database too?"

[[runbooks.rehearsed.steps]]
name = "Full restore"
run = ["sh", "-c", 'echo "restore" >> "$1"', "step", "{{ vars.marker }}"]
destructive = true
no_backup_because = "a test step: it writes a line to a scratch file"
confirm = "CONFIRM_FULL_RESTORE"
drill = { run = ["sh", "-c", 'echo "dump is readable" >> "$1"', "step", "{{ vars.marker }}"] }
"#
}

#[tokio::test]
async fn a_drill_walks_the_whole_path_executes_nothing_and_reports_its_timings() {
    let bot = Rollbot::start_with(drill_config).await;
    let ack = bot
        .slash(ALICE, "drill checkout-api runbook rehearsed severity high")
        .await;
    assert!(
        ack.starts_with("Recorded *RB-1*: 🧪 DRILL · Rollback RB-1: checkout-api (high). It is a drill"),
        "{ack}"
    );
    bot.settle().await;
    let card = bot.expect_card();
    assert!(card.text.contains("🧪 *This is a drill.*"), "{}", card.text);
    assert_eq!(card.buttons(), ["approve", "reject", "escalate", "cancel"]);

    // Nobody answers for 31 minutes: the ladder escalates as it would for real.
    bot.advance(31);
    bot.settle().await;
    let escalated = bot.thread(&card);
    assert_eq!(escalated.len(), 1, "{escalated:#?}");
    assert!(escalated[0].contains("<@U0DEVOPS>"), "{}", escalated[0]);
    bot.advance(2);
    bot.click(DAVE, Button::Approve(rb(1))).await;
    bot.settle().await;
    bot.click(BOB, Button::Continue(rb(1), 1)).await;
    bot.settle().await;
    bot.click(BOB, Button::Confirm(rb(1), 2)).await;
    let modal = bot.expect_modal();
    bot.submit(BOB, &modal, &[("phrase", "CONFIRM_FULL_RESTORE")]).await;
    bot.settle().await;

    assert_eq!(bot.marker(), ["dump is readable"], "only the drill override ran");
    let thread = bot.thread(&card);
    assert!(
        thread
            .iter()
            .any(|m| m.starts_with("🧪 DRILL — 🔴 *ROLLBACK IN PROGRESS*")),
        "templates are marked: {thread:#?}"
    );
    assert!(
        thread
            .iter()
            .any(|m| m.starts_with("🧪 Step 1/3 *Undo release* was not run (drill)\n_It would run:_\n```sh -c")),
        "{thread:#?}"
    );
    assert!(
        thread
            .iter()
            .any(|m| m.starts_with("✅ Step 3/3 *Full restore* succeeded")
                && m.contains("_A drill: its drill override ran instead of the step._")),
        "{thread:#?}"
    );
    let summary = thread.last().unwrap();
    // The escalation timer fired when the clock reached minute 31; DAVE approved at 33.
    assert!(
        summary.starts_with(
            "🧪 *Drill RB-1 ended: succeeded.* Timings:\n\
             • Time to first approval: 33m 00s\n\
             • Waiting on the severity's approvers: 31m 00s\n\
             • Waiting on level 1 (`devops_lead`): 2m 00s\n\
             • Running the runbook, gates included: "
        ) && summary.contains("• Total: 33m ")
            && summary.ends_with("Nothing was executed except drill overrides; the status page was not touched."),
        "{summary}"
    );
    bot.card_now(&card);
    bot.ephemerals(ALICE);
    bot.ephemerals(BOB);
    bot.ephemerals(DAVE);

    let listed = bot.slash(ALICE, "list drills").await;
    assert!(listed.contains("*RB-1* 🧪 drill checkout-api"), "{listed}");
    bot.slash(ALICE, "checkout-api to 41 severity high").await;
    bot.settle().await;
    bot.expect_card();
    assert!(!bot.slash(ALICE, "list drills").await.contains("RB-2"));
}

#[tokio::test]
async fn a_drill_finished_in_the_form_is_still_a_drill() {
    let bot = Rollbot::start().await;
    let answer = bot.slash(ALICE, "drill checkout-api to 41").await;
    assert!(
        answer.starts_with("Opening a form to finish the request (severity missing)."),
        "{answer}"
    );
    let form = bot.expect_modal();
    assert_eq!(form["title"]["text"], "Start a drill");
    assert_eq!(form["private_metadata"], format!("drill:{INCIDENTS}"));
    let typed = [("service", "checkout-api"), ("severity", "high"), ("target", "41")];
    assert_eq!(bot.submit(ALICE, &form, &typed).await, None);
    bot.settle().await;
    let card = bot.expect_card();
    assert!(
        card.text.starts_with("🧪 DRILL · Rollback RB-1: checkout-api to 41"),
        "{}",
        card.text
    );
    let acks = bot.ephemerals(ALICE);
    assert!(acks[0].contains("It is a drill"), "{acks:?}");
}

/// A shipped example as the stories run it: its roles are the stories' people, and its
/// discovery finds `tool` (a stand-in printing what the real one prints) first on its PATH.
async fn example_with_tool(file: &str, section: &str, tool: &str, prints: &str) -> (tempfile::TempDir, Rollbot) {
    let bin = tempfile::tempdir().unwrap();
    fake_program(bin.path(), tool, &format!("cat <<'OUT'\n{prints}\nOUT\n"));
    let example = std::fs::read_to_string(format!("{}/examples/runbooks/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let header = format!("[runbooks.{section}.params.target.discover]\n");
    let config = example
        .replace(r#"on_call = ["S0ONCALL"]"#, &format!(r#"on_call = ["{BOB}"]"#))
        .replace(r#"team_lead = ["U0LEAD1"]"#, &format!(r#"team_lead = ["{ALICE}"]"#))
        .replace(
            &header,
            &format!(
                "{header}env = {{ PATH = \"{}:/usr/bin:/bin\" }}\n",
                bin.path().display()
            ),
        );
    assert!(config.contains("env = { PATH"), "{file} declares a discovery");
    let bot = Rollbot::builder().config(|_| config).start().await;
    (bin, bot)
}

fn offered_targets(view: &serde_json::Value) -> Vec<String> {
    let target = view["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["block_id"] == "target")
        .unwrap();
    target["element"]["options"]
        .as_array()
        .unwrap_or_else(|| panic!("no select: {view}"))
        .iter()
        .map(|o| o["text"]["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_kubernetes_and_helm_examples_offer_recent_revisions_in_the_form() {
    // What `kubectl rollout history` and `helm history -o json` print (kubectl 1.31, helm 3.16).
    let kubectl = "deployment.apps/checkout-api \nREVISION  CHANGE-CAUSE\n40        <none>\n41        kubectl set image deployment/checkout-api app=checkout:1.4.2\n42        kubectl set image deployment/checkout-api app=checkout:1.5.0\n";
    let helm = r#"[{"revision":11,"updated":"2026-11-30T10:00:00.123+00:00","status":"superseded","chart":"search-2.3.0","app_version":"2.3.0","description":"Upgrade complete"},{"revision":12,"updated":"2026-12-01T09:30:00.456+00:00","status":"deployed","chart":"search-2.4.0","app_version":"2.4.0","description":"Upgrade complete"}]"#;
    for (file, section, tool, prints, service, expected) in [
        (
            "kubernetes.toml",
            "kubernetes",
            "kubectl",
            kubectl,
            "checkout-api",
            vec![
                "41 · kubectl set image deployment/checkout-api app=checkout:1.4.2",
                "40 · <none>",
            ],
        ),
        (
            "helm.toml",
            "helm",
            "helm",
            helm,
            "search",
            vec!["11 · search-2.3.0 · superseded · 2026-11-30T10:00"],
        ),
    ] {
        let (_bin, bot) = example_with_tool(file, section, tool, prints).await;
        let said = bot.slash(ALICE, service).await;
        assert!(said.starts_with("Opening a form"), "{said}");
        let _looking = bot.expect_modal();
        let offered = bot.await_form_redrawn().await;
        assert_eq!(
            offered_targets(&offered),
            expected,
            "{file}: newest first, without the running revision"
        );
    }
}

#[tokio::test]
async fn the_git_revert_example_offers_the_branchs_last_commits() {
    let scratch = tempfile::tempdir().unwrap();
    use crate::examples::git;
    let remote = scratch.path().join("remote.git");
    let clone = scratch.path().join("clone");
    git(scratch.path(), &["init", "-q", "--bare", remote.to_str().unwrap()]);
    git(
        scratch.path(),
        &["clone", "-q", remote.to_str().unwrap(), clone.to_str().unwrap()],
    );
    for subject in ["Add checkout", "Bad merge: <drop> the cache"] {
        git(&clone, &["commit", "-q", "--allow-empty", "-m", subject]);
    }
    git(&clone, &["push", "-q", "origin", "HEAD:main"]);
    let shas = git(&clone, &["log", "--format=%h", "origin/main"]);
    let config =
        crate::examples::shipped("git-revert.toml").replace("/srv/rollbot/clones/web", clone.to_str().unwrap());
    let bot = Rollbot::builder().config(|_| config).start().await;
    bot.slash(ALICE, "web").await;
    let _looking = bot.expect_modal();
    let offered = bot.await_form_redrawn().await;
    let newest_first: Vec<String> = shas
        .lines()
        .zip(["Bad merge: <drop> the cache", "Add checkout"])
        .map(|(sha, s)| format!("{sha} {s}"))
        .collect();
    assert_eq!(
        offered_targets(&offered),
        newest_first,
        "the clone's branch as last fetched, newest first"
    );
}

/// A stand-in for golang-migrate's `migrate -path P -database URL goto V`: it runs the down
/// files of the versions above V with real `psql`, newest first, and records the version.
const FAKE_MIGRATE: &str = r#"while [ $# -gt 0 ]; do case "$1" in
  -path) dir=$2; shift 2;; -database) db=$2; shift 2;; goto) to=$2; shift 2;;
  *) echo "error: unknown argument $1" >&2; exit 2;; esac; done
now=$(psql -X -At -d "$db" -c "SELECT version FROM schema_migrations")
for f in $(ls "$dir" | grep '\.down\.sql$' | sort -rn); do
  v=${f%%_*}
  if [ "$v" -gt "$to" ] && [ "$v" -le "$now" ]; then
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$dir/$f" || exit 1
    echo "$v/d ${f#*_}" >&2
  fi
done
psql -X -q -d "$db" -c "UPDATE schema_migrations SET version = $to"
"#;

/// The library's schema rollback against a real database: preflight finds the target among the
/// migrations and the schema newer than it, the schema goes back with every row kept; asked
/// again for a version that does not exist, preflight says so on the card before anyone approves.
#[tokio::test]
async fn the_schema_example_checks_its_target_first_and_keeps_every_row() {
    let scratch = scratch_database().await;
    let db = connect(&scratch.url).await;
    let work = tempfile::tempdir().unwrap();
    let migrations = work.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    let files = [
        (
            "1_accounts.up.sql",
            "CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL); CREATE TABLE sessions (id int PRIMARY KEY, account_id int NOT NULL REFERENCES accounts(id));",
        ),
        ("1_accounts.down.sql", "DROP TABLE sessions; DROP TABLE accounts;"),
        ("2_email.up.sql", "ALTER TABLE accounts ADD COLUMN email text;"),
        ("2_email.down.sql", "ALTER TABLE accounts DROP COLUMN email;"),
        (
            "3_email_index.up.sql",
            "CREATE INDEX accounts_email ON accounts (email);",
        ),
        ("3_email_index.down.sql", "DROP INDEX accounts_email;"),
    ];
    for (name, sql) in files {
        std::fs::write(migrations.join(name), sql).unwrap();
        if name.contains(".up.") {
            db.batch_execute(sql).await.unwrap();
        }
    }
    db.batch_execute(
        "CREATE TABLE schema_migrations (version bigint NOT NULL, dirty boolean NOT NULL);
         INSERT INTO schema_migrations VALUES (3, false);
         INSERT INTO accounts SELECT g, 'account ' || g, g || '@example.com' FROM generate_series(1, 10) g;
         INSERT INTO sessions SELECT g, 1 + g % 10 FROM generate_series(1, 30) g;",
    )
    .await
    .unwrap();
    fake_program(work.path(), "migrate", FAKE_MIGRATE);
    let at = work.path().display().to_string();
    let config = crate::examples::shipped("database-schema.toml")
        .replace("/var/backups/accounts", &at)
        .replace("/srv/accounts/migrations", &format!("{at}/migrations"))
        .replace("exec migrate ", &format!("exec {at}/migrate "));
    let bot = Rollbot::builder()
        .config(|_| config)
        .secrets(&[("ACCOUNTS_DATABASE_URL", &scratch.url)])
        .start()
        .await;

    bot.slash(ALICE, "accounts-db to 1 severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    let checked = bot.card_now(&card);
    assert!(
        checked
            .text
            .contains("✅ The target is a known migration: 1_accounts.up.sql")
            && checked
                .text
                .contains("✅ The schema is newer than the target: at 3, going back to 1"),
        "{}",
        checked.text
    );
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    bot.card_now(&card);
    bot.click(BOB, Button::Confirm(rb(1), 2)).await;
    let modal = bot.expect_modal();
    assert_eq!(bot.submit(BOB, &modal, &[("phrase", "accounts-db 1")]).await, None);
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("Succeeded"));
    let thread = bot.thread(&card);
    assert!(
        thread
            .iter()
            .any(|m| m.contains("4. *Every row is still there* — ✅") && m.contains("✓ public.sessions: 30 → 30")),
        "{thread:#?}"
    );
    let columns: i64 = db
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'email'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let rows: i64 = db
        .query_one(
            "SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM sessions)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!((columns, rows), (0, 40), "the schema is back at 1, every row kept");
    assert!(std::path::Path::new(&format!("{at}/schema-before-rollback-RB-1.sql")).exists());

    bot.slash(ALICE, "accounts-db to 5 severity high").await;
    bot.settle().await;
    let refused = bot.expect_card();
    assert!(
        refused.text.contains(&format!(
            "❌ The target is a known migration: no 5_*.up.sql in {at}/migrations"
        )) && refused
            .text
            .contains("❌ The schema is newer than the target: the schema is at 1, not after 5"),
        "{}",
        refused.text
    );
    bot.card_now(&refused);
}
