//! The runbook library executed: each example file as shipped, but for who approves and the
//! addresses it reaches, run against stand-ins for the CLIs it calls (they record their
//! arguments and answer as the real ones do, including their failures).
use crate::support::fake_service::*;
use crate::support::*;

/// A stand-in `aws` for the blue/green example: `describe-target-health` prints the states in
/// `states` as the real CLI's `--output text` does (one line, tab-separated), or fails as it
/// does without permission when `denied` exists; `modify-listener` answers the listener.
const FAKE_AWS: &str = r#"here=$(dirname "$0")
echo "$@" >> "$here/asked"
case "$1 $2" in
  "elbv2 describe-target-health")
    if [ -f "$here/denied" ]; then
      echo "An error occurred (AccessDenied) when calling the DescribeTargetHealth operation: User is not authorized to perform: elasticloadbalancing:DescribeTargetHealth" >&2
      exit 254
    fi
    cat "$here/states"; exit 0;;
  "elbv2 modify-listener") echo '{"Listeners": [{"Port": 443, "Protocol": "HTTPS"}]}'; exit 0;;
esac
echo "aws: error: argument operation: Invalid choice" >&2
exit 252
"#;

/// The blue/green example with its stand-in `aws` first on the steps' PATH and its health
/// check pointed at `health`; what `aws` was asked is in `<bin>/asked`.
async fn blue_green(bin: &std::path::Path, health: &str) -> Rollbot {
    fake_program(bin, "aws", FAKE_AWS);
    let example = std::fs::read_to_string(format!(
        "{}/examples/runbooks/blue-green.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let on_path = format!(
        "timeout = \"1m\"\nenv = {{ PATH = \"{}:/usr/bin:/bin\" }}",
        bin.display()
    );
    let config = example
        .replace(r#"on_call = ["S0ONCALL"]"#, &format!(r#"on_call = ["{BOB}"]"#))
        .replace(r#"team_lead = ["U0LEAD1"]"#, &format!(r#"team_lead = ["{ALICE}"]"#))
        .replace("timeout = \"1m\"", &on_path)
        .replace("https://{{ vars.host }}/healthz", &format!("{health}/healthz"));
    assert_eq!(
        config.matches("env = { PATH").count(),
        2,
        "both aws steps use the stand-in"
    );
    Rollbot::builder().config(|_| config).start().await
}

/// The guard refuses to switch to a colour that is not wholly healthy: an unhealthy target
/// ("unhealthy" contains "healthy", and the states arrive on one line), no targets at all, or
/// an `aws` that fails; only a healthy colour gets the listener, and the health check follows.
#[tokio::test]
async fn the_blue_green_example_switches_only_to_a_healthy_colour() {
    let service = FakeService::start().await;
    service.script("/healthz", answers(&[200], "ok"));
    let refusals = [
        (
            "healthy\tunhealthy\thealthy\n",
            false,
            "not every target is healthy: unhealthy",
        ),
        (
            "\n",
            false,
            "no targets are registered in arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/shop-blue/0123456789abcdef",
        ),
        ("healthy\n", true, "An error occurred (AccessDenied)"),
    ];
    for (states, denied, why) in refusals {
        let bin = tempfile::tempdir().unwrap();
        std::fs::write(bin.path().join("states"), states).unwrap();
        if denied {
            std::fs::write(bin.path().join("denied"), "").unwrap();
        }
        let bot = blue_green(bin.path(), &service.url).await;
        bot.slash(ALICE, "storefront to blue severity high").await;
        bot.settle().await;
        let card = bot.expect_card();
        bot.click(BOB, Button::Approve(rb(1))).await;
        bot.settle().await;
        let failed = bot.card_now(&card);
        assert!(
            failed.text.contains("❌ *Failed* at step 1 of 3"),
            "{states:?}: {}",
            failed.text
        );
        let thread = bot.thread(&card);
        assert!(
            thread
                .iter()
                .any(|m| m.starts_with("❌ Step 1/3 *The previous colour is healthy* failed") && m.contains(why)),
            "{states:?}: {thread:#?}"
        );
        let asked = std::fs::read_to_string(bin.path().join("asked")).unwrap();
        assert!(!asked.contains("modify-listener"), "traffic never moved: {asked}");
    }
    assert!(service.received("/healthz").is_empty());

    let bin = tempfile::tempdir().unwrap();
    std::fs::write(bin.path().join("states"), "healthy\thealthy\thealthy\n").unwrap();
    let bot = blue_green(bin.path(), &service.url).await;
    bot.slash(ALICE, "storefront to blue severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    let thread = bot.thread(&card);
    assert!(
        thread.iter().any(|m| m.contains("3 healthy")),
        "the guard says what it counted: {thread:#?}"
    );
    let asked = std::fs::read_to_string(bin.path().join("asked")).unwrap();
    assert_eq!(
        asked.lines().last().unwrap(),
        "elbv2 modify-listener --region eu-west-1 --listener-arn arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shop/0123456789abcdef/fedcba9876543210 \
         --default-actions Type=forward,TargetGroupArn=arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/shop-blue/0123456789abcdef"
    );
    assert_eq!(
        service.received("/healthz").len(),
        1,
        "then the health check through the load balancer"
    );
}
