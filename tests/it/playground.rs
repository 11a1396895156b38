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
    page.find(Locator::Css("#confirm-ok"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    Some(said)
}

async fn start_playground(scratch: &std::path::Path) -> Playground {
    Playground::start(Options {
        config: Config::parse("playground.toml", DEMO_CONFIG).unwrap(),
        config_source: "the bundled demo (examples/playground.toml)".into(),
        listen: "127.0.0.1:0".into(),
        execute: false,
        data_dir: scratch.to_owned(),
        step_supervisor: Some(env!("CARGO_BIN_EXE_rollbot-step-supervisor").into()),
    })
    .await
    .unwrap()
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
    page.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
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
    page.find(Locator::Css("#modal-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
    page.find(Locator::Css("#open-rollbacks"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
    assert_eq!(playground.slack.rate_limited(), 0);
    page.close().await.unwrap();
}
