//! `rollbot playground` in a real browser: Debian's Chromium, headless, driven through
//! ChromeDriver (WebDriver). A person picks who they are, types a request, clicks, and reads the
//! channel, the private answers, the thread and the post-mortem, as on Slack.
use fantoccini::{Client, ClientBuilder, Locator};
use rollbot::config::Config;
use rollbot::playground::{DEMO_CONFIG, Options, Playground};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// ChromeDriver on a free loopback port, stopped when dropped.
struct Driver {
    process: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn start_driver() -> Driver {
    for program in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            std::path::Path::new(program).exists(),
            "{program} is missing: .ci/run installs Debian's chromium and chromium-driver"
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let process = std::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        // Slack shows dates in the reader's zone; this reader is in UTC.
        .env("TZ", "UTC")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let driver = Driver {
        process,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

/// Headless Chromium as root needs --no-sandbox; anything that is not loopback goes to a
/// proxy that is not there, so the test cannot reach out.
async fn browser(driver: &Driver) -> Client {
    let options = serde_json::json!({
        "binary": CHROMIUM,
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-extensions",
                 "--proxy-server=127.0.0.1:9", "--window-size=1440,1000", "--lang=en-GB"],
    });
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Waits (up to `seconds`) until the page has an element matching `css` whose text contains
/// `text`; returns that text.
async fn wait_for_text(page: &Client, css: &str, text: &str, seconds: u64) -> String {
    let mut last = String::new();
    for _ in 0..seconds * 5 {
        for element in page.find_all(Locator::Css(css)).await.unwrap() {
            if let Ok(shown) = element.text().await {
                if shown.contains(text) {
                    return shown;
                }
                last = shown;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let said = match page.find(Locator::Css("#sent")).await {
        Ok(line) => line.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    panic!("no `{css}` showed {text:?} within {seconds} s; the last one showed:\n{last}\nthe page said: {said}");
}

/// An HTTP client for the playground's own endpoints, never through a proxy.
fn loopback() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(rollbot::outbound::system_roots().unwrap())
        .no_proxy()
        .build()
        .unwrap()
}

/// Clicks the element `css` finds.
async fn press(page: &Client, css: &str) {
    page.find(Locator::Css(css)).await.unwrap().click().await.unwrap();
}

async fn be(page: &Client, user: &str) {
    page.find(Locator::Css("#who"))
        .await
        .unwrap()
        .select_by_value(user)
        .await
        .unwrap();
    // The page redraws for the new person on its next read.
    tokio::time::sleep(Duration::from_millis(700)).await;
}

/// Clicks a button on the card; where Slack would ask first (a confirm dialog), answers yes
/// and returns what the dialog said.
async fn click_on_card(page: &Client, action_id: &str) -> Option<String> {
    let css = format!("#messages button[data-action-id='{action_id}']");
    page.wait()
        .for_element(Locator::Css(&css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let dialog = page.find(Locator::Css("dialog#confirm")).await.unwrap();
    if !dialog.is_displayed().await.unwrap() {
        return None;
    }
    let said = dialog.text().await.unwrap();
    press(page, "#confirm-ok").await;
    Some(said)
}

/// The bundled demo, rehearsing, on any free port.
fn options(scratch: &std::path::Path) -> Options {
    Options {
        config: Config::parse("playground.toml", DEMO_CONFIG).unwrap(),
        config_source: "the bundled demo (examples/playground.toml)".into(),
        listen: "127.0.0.1:0".into(),
        execute: false,
        data_dir: scratch.to_owned(),
        step_supervisor: Some(env!("CARGO_BIN_EXE_rollbot-step-supervisor").into()),
    }
}

async fn start_playground(scratch: &std::path::Path) -> Playground {
    Playground::start(options(scratch)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_requests_is_refused_as_an_outsider_approves_as_on_call_and_reads_the_postmortem() {
    let scratch = tempfile::tempdir().unwrap();
    let playground = start_playground(scratch.path()).await;
    let driver = start_driver().await;
    let page = browser(&driver).await;
    page.goto(&playground.url).await.unwrap();
    let mode = wait_for_text(&page, "#mode", "Rehearsal", 10).await;
    assert!(mode.contains("no step is executed"), "{mode}");

    // Alice, on call, types the request; the card shows the plan and who is awaited.
    be(&page, "U0ALICE").await;
    let composer = page.find(Locator::Css("#composer")).await.unwrap();
    composer
        .send_keys("checkout-api to 41 reason \"5xx after deploy 42\"")
        .await
        .unwrap();
    press(&page, "#send").await;
    let sent = wait_for_text(&page, "#sent", "Sent as Alice", 10).await;
    assert!(
        sent.contains("/rollback drill checkout-api to 41"),
        "a rehearsal sends a drill: {sent}"
    );
    // No severity given: rollbot opens its form, and the page shows it as Slack's modal.
    let answer = wait_for_text(&page, "#messages .ephemeral", "Opening a form", 10).await;
    assert!(answer.contains("severity missing"), "{answer}");
    let form = wait_for_text(&page, "#modal", "Severity", 10).await;
    assert!(form.contains("Start a drill"), "{form}");
    page.find(Locator::Css("#modal select[data-action-id='severity']"))
        .await
        .unwrap()
        .select_by_value("high")
        .await
        .unwrap();
    press(&page, "#modal-submit").await;
    let card = wait_for_text(&page, "#messages .message", "Deploy the earlier release", 15).await;
    assert!(
        !page
            .find(Locator::Css("#modal-backdrop"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap(),
        "the form closes once rollbot takes it"
    );
    assert!(card.contains("checkout-api"), "{card}");
    assert!(card.contains("DRILL"), "the card says it is a drill: {card}");
    assert!(card.contains("@Alice"), "the requester is named: {card}");

    // Someone with no role clicks Approve: only they see why not.
    be(&page, "U0VISITOR").await;
    let asked = click_on_card(&page, "approve")
        .await
        .expect("Slack asks before an approval");
    assert!(
        asked.contains("checkout-api"),
        "the dialog says what is approved: {asked}"
    );
    let refusal = wait_for_text(&page, "#messages .ephemeral", "Only visible to you", 15).await;
    assert!(
        refusal.contains("on_call"),
        "the refusal says who may approve: {refusal}"
    );
    be(&page, "U0ALICE").await;
    for answer in page.find_all(Locator::Css("#messages .ephemeral")).await.unwrap() {
        let text = answer.text().await.unwrap();
        assert_ne!(text, refusal, "Alice does not see the visitor's private answer");
    }

    // Bob, on call too, approves; the drill runs and the card ends as succeeded.
    be(&page, "U0BOB").await;
    click_on_card(&page, "approve").await;
    let ended = wait_for_text(&page, "#messages .message[data-ts]", "Succeeded", 60).await;
    assert!(ended.contains("@Bob"), "the card names the approver: {ended}");

    // The thread holds the steps as they ran (their drill overrides).
    page.wait()
        .for_element(Locator::Css("#messages .replies"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let thread = wait_for_text(
        &page,
        "#pane-body",
        "would deploy checkout-api release 41 (dry run): OK",
        15,
    )
    .await;
    assert!(thread.contains("3/3 pods ready"), "{thread}");

    let screenshot = page.screenshot().await.unwrap();
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("playground.png");
    std::fs::write(&target, &screenshot).unwrap();
    if let Ok(path) = std::env::var("ROLLBOT_PLAYGROUND_SCREENSHOT") {
        std::fs::write(path, &screenshot).unwrap();
    }

    // The post-mortem draft, from rollbot's API.
    press(&page, "#open-rollbacks").await;
    page.wait()
        .for_element(Locator::Css("[data-postmortem='RB-1']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let draft = wait_for_text(&page, "#postmortem", "Timeline", 15).await;
    assert!(draft.contains("RB-1"), "{draft}");
    assert!(draft.contains("U0BOB"), "the approval is on the timeline: {draft}");

    // Nothing was executed: no step ran for real, and nothing went to Slack that the page did
    // not show (the stand-in refused nothing for its limits either).
    let status_page = page
        .find(Locator::Css("#statuspage"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(status_page, "No updates yet", "a drill never touches the status page");
    assert_eq!(playground.slack.rate_limited(), 0);
    page.close().await.unwrap();
}

/// What the page reads, as `user`.
async fn state_as(http: &reqwest::Client, playground: &Playground, user: &str) -> serde_json::Value {
    http.get(format!("{}/playground/state?as={user}", playground.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until `user`'s screen satisfies `ready`.
async fn screen_when(
    http: &reqwest::Client,
    playground: &Playground,
    user: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..150 {
        last = state_as(http, playground, user).await;
        if ready(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the page never got there; it showed {last:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_execute_the_steps_run_and_the_status_page_updates_go_to_the_stand_in() {
    let scratch = tempfile::tempdir().unwrap();
    let playground = Playground::start(Options {
        execute: true,
        ..options(scratch.path())
    })
    .await
    .unwrap();
    let http = loopback();
    let mode = state_as(&http, &playground, "U0ALICE").await;
    assert_eq!(mode["mode"], "execute");

    let sent: serde_json::Value = http
        .post(format!("{}/playground/command", playground.url))
        .json(&serde_json::json!({"as": "U0ALICE", "channel": "C0INCIDENTS",
                                  "text": "checkout-api to 41 severity high reason \"5xx after deploy 42\""}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        sent["sent"], "/rollback checkout-api to 41 severity high reason \"5xx after deploy 42\"",
        "with --execute the request is sent as typed, not as a drill"
    );
    let card_of = |screen: &serde_json::Value| screen["screen"]["channels"]["C0INCIDENTS"][0].clone();
    let screen = screen_when(&http, &playground, "U0BOB", |s| {
        card_of(s)["blocks"].to_string().contains("\"approve\"")
    })
    .await;
    let card = card_of(&screen);
    let (block_id, approve) = card["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|block| {
            let button = block["elements"]
                .as_array()?
                .iter()
                .find(|e| e["action_id"] == "approve")?;
            Some((block["block_id"].clone(), button.clone()))
        })
        .expect("an Approve button on the card");
    assert!(!card["text"].as_str().unwrap().contains("DRILL"), "{card}");
    let clicked = http
        .post(format!("{}/playground/click", playground.url))
        .json(
            &serde_json::json!({"as": "U0BOB", "channel": "C0INCIDENTS", "ts": card["ts"],
                                  "block_id": block_id, "element": approve}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(clicked.status(), 204);

    // The real step ran (it sleeps 2 s and says the release is live), and the card says so.
    let done = screen_when(&http, &playground, "U0BOB", |s| {
        let card = card_of(s);
        card["blocks"].to_string().contains("Succeeded") && card["replies"].to_string().contains("release 41 is live")
    })
    .await;
    // The status page heard of the rollback at the stand-in, never at status.example.com.
    let updates = done["status_page"].as_array().unwrap();
    assert!(!updates.is_empty(), "{done:#}");
    assert!(
        updates
            .iter()
            .all(|u| u["rollback"] == "RB-1" && u["service"] == "checkout-api"),
        "{updates:?}"
    );
    assert_eq!(playground.slack.rate_limited(), 0);
}

/// With `--execute`, a rollback that ends posts the demo's post-incident checklist in its
/// thread; a box ticked on the page reaches rollbot as Slack's `checkboxes` action, the message
/// is redrawn with who ticked it, and the post-mortem's action items are what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_execute_the_checklist_is_ticked_on_the_page_and_what_is_left_are_action_items() {
    let scratch = tempfile::tempdir().unwrap();
    let playground = Playground::start(Options {
        execute: true,
        ..options(scratch.path())
    })
    .await
    .unwrap();
    let driver = start_driver().await;
    let page = browser(&driver).await;
    page.goto(&playground.url).await.unwrap();
    be(&page, "U0ALICE").await;
    page.find(Locator::Css("#composer"))
        .await
        .unwrap()
        .send_keys("checkout-api to 41 severity high reason \"5xx after deploy 42\"")
        .await
        .unwrap();
    press(&page, "#send").await;
    wait_for_text(&page, "#messages .message", "Deploy the earlier release", 15).await;
    be(&page, "U0BOB").await;
    click_on_card(&page, "approve").await;
    wait_for_text(&page, "#messages .message[data-ts]", "Succeeded", 60).await;
    page.wait()
        .for_element(Locator::Css("#messages .replies"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let posted = wait_for_text(&page, "#pane-body .message", "Post-incident checklists for RB-1", 15).await;
    assert!(posted.contains("0 of 6 done"), "{posted}");
    assert!(posted.contains("Identify root cause"), "{posted}");

    let tick = "//div[@id='pane-body']//label[contains(., 'Document incident details')]/input";
    page.find(Locator::XPath(tick)).await.unwrap().click().await.unwrap();
    let redrawn = wait_for_text(&page, "#pane-body .message", "1 of 6 done", 15).await;
    assert!(
        redrawn.contains("✓ Document incident details — @Bob"),
        "the message says who ticked it: {redrawn}"
    );
    assert_eq!(
        page.find(Locator::XPath(tick))
            .await
            .unwrap()
            .prop("checked")
            .await
            .unwrap()
            .as_deref(),
        Some("true"),
        "the box stays ticked as rollbot drew it"
    );

    let draft = loopback()
        .get(format!("{}/playground/postmortem/RB-1", playground.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let section = draft.split("## Action Items").nth(1).expect("an Action Items section");
    let (items, done) = section.split_once("Done from the checklists").expect("what was done");
    assert!(items.contains("Identify root cause"), "{items}");
    assert!(
        !items.contains("Document incident details"),
        "ticked, so no longer an action: {items}"
    );
    assert!(done.contains("- [x] Document incident details — @U0BOB"), "{done}");
    assert_eq!(playground.slack.rate_limited(), 0);
    page.close().await.unwrap();
}

/// A message with every part of Block Kit rollbot uses, posted to the stand-in as rollbot would.
fn every_kind_of_block() -> serde_json::Value {
    serde_json::json!({
        "channel": "C0INCIDENTS",
        "text": "fallback",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Header <b>as typed</b>"}},
            {"type": "section",
             "text": {"type": "mrkdwn", "text": "*bold* _italic_ ~struck~ `a code` <https://example.com/runbook|the runbook> <@U0BOB> <!subteam^S0ONCALL|oncall> <!date^1790000000^{date_num} {time}|fallback> &lt;script&gt;alert(1)&lt;/script&gt; a&amp;b\n```line one\nline two```\n&gt; quoted"},
             "fields": [{"type": "mrkdwn", "text": "*Service*\ncheckout-api"}, {"type": "mrkdwn", "text": "*Target*\n41"}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "a context line"}]},
            {"type": "divider"},
            {"type": "actions", "block_id": "controls", "elements": [
                {"type": "button", "action_id": "go", "text": {"type": "plain_text", "text": "Go"}, "style": "primary", "value": "x"},
                {"type": "button", "action_id": "stop", "text": {"type": "plain_text", "text": "Stop"}, "style": "danger", "value": "y",
                 "confirm": {"title": {"type": "plain_text", "text": "Really stop?"}, "text": {"type": "mrkdwn", "text": "It *stops* everything."},
                             "confirm": {"type": "plain_text", "text": "Stop it"}, "deny": {"type": "plain_text", "text": "Keep going"}, "style": "danger"}},
            ]},
        ],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_draws_block_kit_and_mrkdwn_as_slack_does_and_never_runs_what_a_message_says() {
    let scratch = tempfile::tempdir().unwrap();
    let playground = start_playground(scratch.path()).await;
    let http = loopback();
    let posted = http
        .post(format!("{}chat.postMessage", playground.slack.api_url))
        .json(&every_kind_of_block())
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let driver = start_driver().await;
    let page = browser(&driver).await;
    page.goto(&playground.url).await.unwrap();
    wait_for_text(&page, "#messages .message", "checkout-api", 10).await;

    // What each part became, read off the page.
    let drawn = page
        .execute(
            r##"const m = document.querySelector("#messages .message[data-ts]");
               const all = (css) => [...m.querySelectorAll(css)].map((e) => e.textContent);
               return {
                 header: all(".b-header"), bold: all(".b-section .text > b"), italic: all("i"), struck: all("s"),
                 code: all("code"), pre: all("pre"), quote: all("blockquote"), mentions: all(".mention"),
                 links: [...m.querySelectorAll("a")].map((a) => [a.textContent, a.href, a.rel]),
                 scripts: m.querySelectorAll("script").length, fields: all(".fields > div").length,
                 context: all(".b-context"), dividers: m.querySelectorAll("hr.b-divider").length,
                 buttons: [...m.querySelectorAll("button.btn")].map((b) => [b.textContent, b.className]),
                 text: m.querySelector(".b-section .text").textContent,
               };"##,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        drawn["header"],
        serde_json::json!(["Header <b>as typed</b>"]),
        "plain text is shown as typed"
    );
    assert_eq!(drawn["bold"], serde_json::json!(["bold"]));
    assert_eq!(drawn["italic"], serde_json::json!(["italic"]));
    assert_eq!(drawn["struck"], serde_json::json!(["struck"]));
    assert_eq!(drawn["code"], serde_json::json!(["a code"]));
    assert_eq!(drawn["pre"], serde_json::json!(["line one\nline two"]));
    assert_eq!(drawn["quote"], serde_json::json!(["quoted"]));
    assert_eq!(drawn["mentions"], serde_json::json!(["@Bob", "@oncall"]));
    assert_eq!(
        drawn["links"],
        serde_json::json!([["the runbook", "https://example.com/runbook", "noopener noreferrer"]])
    );
    assert_eq!(drawn["scripts"], 0, "escaped markup stays text");
    let text = drawn["text"].as_str().unwrap();
    assert!(text.contains("<script>alert(1)</script> a&b"), "{text}");
    assert!(
        text.contains("2026-09-21 14:13"),
        "the date in the reader's zone: {text}"
    );
    assert_eq!(drawn["fields"], 2);
    assert_eq!(drawn["context"], serde_json::json!(["a context line"]));
    assert_eq!(drawn["dividers"], 1);
    assert_eq!(
        drawn["buttons"],
        serde_json::json!([["Go", "btn primary"], ["Stop", "btn danger"]])
    );

    // A button with a confirm dialog asks first, in the words it carries; "Keep going" sends
    // nothing.
    let asked = click_and_deny(&page, "stop").await;
    assert_eq!(asked, "Really stop?\nIt stops everything.\nKeep going\nStop it");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        page.find_all(Locator::Css("#messages .ephemeral"))
            .await
            .unwrap()
            .is_empty(),
        "nothing reached rollbot"
    );
    page.close().await.unwrap();
}

async fn click_and_deny(page: &Client, action_id: &str) -> String {
    let css = format!("#messages button[data-action-id='{action_id}']");
    press(page, &css).await;
    let dialog = page
        .wait()
        .for_element(Locator::Css("dialog#confirm[open]"))
        .await
        .unwrap();
    let said = dialog.text().await.unwrap();
    press(page, "#confirm-deny").await;
    said
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_and_a_destructive_steps_phrase_are_answered_on_the_page_with_rollbots_field_errors() {
    let scratch = tempfile::tempdir().unwrap();
    let playground = start_playground(scratch.path()).await;
    let driver = start_driver().await;
    let page = browser(&driver).await;
    page.goto(&playground.url).await.unwrap();
    be(&page, "U0ALICE").await;
    let composer = page.wait().for_element(Locator::Css("#composer")).await.unwrap();
    composer
        .send_keys("orders runbook restore-database severity high reason \"orders lost\"")
        .await
        .unwrap();
    press(&page, "#send").await;
    wait_for_text(
        &page,
        "#messages .message[data-ts]",
        "Full restore from the pre-deploy dump",
        15,
    )
    .await;

    be(&page, "U0BOB").await;
    click_on_card(&page, "approve")
        .await
        .expect("Slack asks before an approval");
    let paused = wait_for_text(&page, "#messages .message[data-ts]", "Paused at step 2 of 4", 30).await;
    assert!(paused.contains("Continue"), "{paused}");
    click_on_card(&page, "continue").await;
    let confirm = wait_for_text(&page, "#messages .message[data-ts]", "Paused before step 4 of 4", 30).await;
    assert!(
        confirm.contains("CONFIRM_FULL_RESTORE"),
        "the card says the phrase: {confirm}"
    );

    // The phrase form: a wrong phrase gets rollbot's error under the field, and the form stays.
    click_on_card(&page, "confirm").await;
    let form = wait_for_text(&page, "#modal", "Type CONFIRM_FULL_RESTORE to run it.", 10).await;
    assert!(form.contains("is destructive"), "{form}");
    let phrase = page.find(Locator::Css("#modal input[type='text']")).await.unwrap();
    phrase.send_keys("confirm_full_restore").await.unwrap();
    press(&page, "#modal-submit").await;
    let error = wait_for_text(&page, "#modal .error", "not the phrase", 10).await;
    assert!(error.contains("case-sensitive"), "{error}");
    let phrase = page.find(Locator::Css("#modal input[type='text']")).await.unwrap();
    phrase.clear().await.unwrap();
    phrase.send_keys("CONFIRM_FULL_RESTORE").await.unwrap();
    press(&page, "#modal-submit").await;
    let ended = wait_for_text(&page, "#messages .message[data-ts]", "Succeeded", 30).await;
    assert!(
        ended.contains("🧪 4. Full restore"),
        "the rehearsed step is marked so: {ended}"
    );
    assert!(
        !page
            .find(Locator::Css("#modal-backdrop"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap(),
        "the form closed once rollbot took the phrase"
    );
    page.close().await.unwrap();
}

/// The binary as a newcomer runs it: in a directory with no rollbot.toml it takes the bundled
/// demo and prints where to look; a broken --config is refused with its errors.
#[tokio::test]
async fn rollbot_playground_starts_on_the_demo_and_refuses_a_broken_configuration() {
    use tokio::io::AsyncBufReadExt;
    let scratch = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbot"))
        .args(["playground", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(scratch.path().join("state"))
        .current_dir(scratch.path())
        .env_remove("ROLLBOT_CONFIG")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the playground says where it is")
        .unwrap()
        .unwrap();
    let url = first
        .strip_prefix("rollbot playground: open ")
        .and_then(|rest| rest.strip_suffix(" in a browser"))
        .unwrap_or_else(|| panic!("{first}"));
    let mut said = vec![];
    for _ in 0..4 {
        said.push(lines.next_line().await.unwrap().unwrap());
    }
    assert!(said[0].contains("the bundled demo"), "{said:?}");
    assert!(said[2].contains("rehearsal"), "{said:?}");
    let state: serde_json::Value = loopback()
        .get(format!("{url}/playground/state?as=U0ALICE"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["incident_channels"], serde_json::json!(["C0INCIDENTS"]));
    assert!(
        scratch.path().join("state/rollbot.db").exists(),
        "the store is where it said"
    );
    child.kill().await.unwrap();

    let broken = scratch.path().join("broken.toml");
    std::fs::write(&broken, "[slack]\nchannels = 3\n").unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_rollbot"))
        .args(["playground", "--listen", "127.0.0.1:0", "--config"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let errors = String::from_utf8_lossy(&refused.stderr);
    assert!(errors.contains("broken.toml:2:"), "the error names the line: {errors}");
    assert!(errors.contains("fix"), "{errors}");
}
