//! The runbook library executed: each example file as shipped, but for who approves and the
//! addresses it reaches, run against stand-ins for the CLIs it calls (they record their
//! arguments and answer as the real ones do, including their failures).
use crate::support::fake_service::*;
use crate::support::*;

mod flags_and_hosts;
mod gitops_and_traffic;
mod process_managers;

/// A file of the runbook library as shipped, its approvers the stories' people: Bob on call,
/// Alice the team lead.
pub(crate) fn shipped(file: &str) -> String {
    let path = format!("{}/examples/runbooks/{file}", env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let config = example
        .replace(r#"on_call = ["S0ONCALL"]"#, &format!(r#"on_call = ["{BOB}"]"#))
        .replace(r#"team_lead = ["U0LEAD1"]"#, &format!(r#"team_lead = ["{ALICE}"]"#));
    assert_ne!(config, example, "{file} names its approvers as the library does");
    config
}

/// Alice's request, approved by Bob (on call) and run as far as it goes: its card.
async fn approved_by_bob(bot: &Rollbot, request: &str, n: i64) -> Posted {
    bot.slash(ALICE, request).await;
    bot.settle().await;
    let card = bot.expect_card();
    bot.click(BOB, Button::Approve(rb(n))).await;
    bot.settle().await;
    card
}

/// A service whose health check answers 200, for the runbooks' last step.
async fn healthy_service() -> FakeService {
    let service = FakeService::start().await;
    service.script("/healthz", answers(&[200], "ok"));
    service
}

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
    let on_path = format!(
        "timeout = \"1m\"\nenv = {{ PATH = \"{}:/usr/bin:/bin\" }}",
        bin.display()
    );
    let config = shipped("blue-green.toml")
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
    let service = healthy_service().await;
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
        let card = approved_by_bob(&bot, "storefront to blue severity high", 1).await;
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
    let card = approved_by_bob(&bot, "storefront to blue severity high", 1).await;
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

/// A stand-in `docker compose` that reads the tag as Compose would, from the `--env-file` it is
/// given, and records what it was asked with that tag.
const FAKE_DOCKER: &str = r#"here=$(dirname "$0")
env_file=""; prev=""
for arg in "$@"; do [ "$prev" = "--env-file" ] && env_file=$arg; prev=$arg; done
tag=$( [ -n "$env_file" ] && sed -n 's/^API_TAG=//p' "$env_file" )
echo "$* [API_TAG=${tag:-unset}]" >> "$here/asked"
case " $* " in
  *" pull "*) echo " api Pulled";;
  *" up "*) echo " Container shop-api-1  Healthy";;
esac
"#;

/// The Compose example pins the previous tag in the project's env file (keeping the file as
/// it was), so `pull` and `up` run it and the next `compose up` after a reboot keeps it.
#[tokio::test]
async fn the_compose_example_pins_the_previous_tag_where_the_next_up_reads_it() {
    let service = healthy_service().await;
    let work = tempfile::tempdir().unwrap();
    let env_file = work.path().join(".env");
    std::fs::write(&env_file, "COMPOSE_PROJECT_NAME=shop\nAPI_TAG=v2.15.0\n").unwrap();
    fake_program(work.path(), "docker", FAKE_DOCKER);
    let dir = work.path().display().to_string();
    let config = shipped("docker-compose.toml")
        .replace("/srv/shop", &dir)
        .replace(
            "host = \"127.0.0.1:8080\"",
            &format!("host = \"{}\"", service.url.trim_start_matches("http://")),
        )
        .replace("run = [\"docker\"", &format!("run = [\"{dir}/docker\""));
    let bot = Rollbot::builder().config(|_| config).start().await;
    let card = approved_by_bob(&bot, "shop-api to v2.14.3 severity high", 1).await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);

    assert_eq!(
        std::fs::read_to_string(&env_file).unwrap(),
        "COMPOSE_PROJECT_NAME=shop\nAPI_TAG=v2.14.3\n",
        "the previous tag is where the next `compose up` reads it"
    );
    assert_eq!(
        std::fs::read_to_string(work.path().join(".env.before-RB-1")).unwrap(),
        "COMPOSE_PROJECT_NAME=shop\nAPI_TAG=v2.15.0\n",
        "and the file as it was is kept"
    );
    let asked = std::fs::read_to_string(work.path().join("asked")).unwrap();
    let compose = format!("compose -f {dir}/compose.yaml --env-file {dir}/.env");
    assert_eq!(
        asked.lines().collect::<Vec<_>>(),
        [
            format!("{compose} pull api [API_TAG=v2.14.3]"),
            format!("{compose} up -d --no-deps --wait api [API_TAG=v2.14.3]"),
        ]
    );
    assert_eq!(service.received("/healthz").len(), 1);
}

/// `git` in `dir` with a test identity, answering its output; fails the test on an error.
pub(crate) fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git must be installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A bare remote whose `main` is protected as GitHub protects it (a push to it is refused with
/// GitHub's message), and rollbot's clone of it holding two commits, the second bad. Answers
/// the scratch directory, the clone and the bad commit's short SHA.
fn protected_remote() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let scratch = tempfile::tempdir().unwrap();
    let remote = scratch.path().join("remote.git");
    let clone = scratch.path().join("clone");
    git(scratch.path(), &["init", "-q", "--bare", remote.to_str().unwrap()]);
    git(
        scratch.path(),
        &["clone", "-q", remote.to_str().unwrap(), clone.to_str().unwrap()],
    );
    git(&clone, &["config", "user.name", "rollbot"]);
    git(&clone, &["config", "user.email", "rollbot@example.com"]);
    std::fs::write(clone.join("cache.txt"), "ttl = 60\n").unwrap();
    git(&clone, &["add", "cache.txt"]);
    git(&clone, &["commit", "-q", "-m", "Add the cache"]);
    std::fs::write(clone.join("cache.txt"), "ttl = 0\n").unwrap();
    git(&clone, &["commit", "-q", "-am", "Bad merge: drop the cache"]);
    git(&clone, &["push", "-q", "origin", "HEAD:main"]);
    let hook = remote.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nwhile read old new ref; do\n  if [ \"$ref\" = refs/heads/main ]; then\n    echo \"error: GH006: Protected branch update failed for refs/heads/main.\" >&2\n    exit 1\n  fi\ndone\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bad = git(&clone, &["log", "-1", "--format=%h"]).trim().to_owned();
    (scratch, clone, bad)
}

/// Against a protected `main`, the direct-push example stops at its push (GitHub's refusal in
/// the thread); the pull-request variant reverts on a branch of its own, pushes that, opens the
/// pull request through the API (token from the environment, never shown), waits at its gate
/// while people merge, and ends with the health check.
#[tokio::test]
async fn the_git_revert_examples_against_a_protected_branch() {
    let service = healthy_service().await;
    service.script(
        "/repos/example/web/pulls",
        answers(
            &[201],
            r#"{"number": 7, "html_url": "https://github.com/example/web/pull/7"}"#,
        ),
    );
    let example = |file: &str, clone: &std::path::Path| {
        shipped(file)
            .replace("/srv/rollbot/clones/web", clone.to_str().unwrap())
            .replace("https://api.github.com", &service.url)
            .replace("https://{{ vars.host }}/healthz", &format!("{}/healthz", service.url))
    };

    let (_scratch, clone, bad) = protected_remote();
    let direct = example("git-revert.toml", &clone);
    let bot = Rollbot::builder().config(|_| direct).start().await;
    let card = approved_by_bob(&bot, &format!("web to {bad} severity high"), 1).await;
    assert!(bot.card_now(&card).text.contains("❌ *Failed* at step 4 of 6"));
    let thread = bot.thread(&card);
    assert!(
        thread
            .iter()
            .any(|m| m.contains("GH006: Protected branch update failed")),
        "{thread:#?}"
    );

    let (_scratch, clone, bad) = protected_remote();
    let token = "ghp_0123456789abcdefTOKEN";
    let through_a_pr = example("git-revert-pr.toml", &clone);
    let bot = Rollbot::builder()
        .config(|_| through_a_pr)
        .secrets(&[("GITHUB_TOKEN", token)])
        .start()
        .await;
    let card = approved_by_bob(&bot, &format!("web to {bad} severity high"), 1).await;
    let paused = bot.card_now(&card);
    assert!(
        paused.text.contains(&format!(
            "The pull request from `rollbot/revert-{bad}` is open in example/web"
        )),
        "{}",
        paused.text
    );
    let opened = service.received("/repos/example/web/pulls");
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].method, "POST");
    assert_eq!(opened[0].authorization.as_deref(), Some(&*format!("Bearer {token}")));
    let pull: serde_json::Value = serde_json::from_str(&opened[0].body).unwrap();
    assert_eq!(
        (&pull["head"], &pull["base"]),
        (
            &serde_json::json!(format!("rollbot/revert-{bad}")),
            &serde_json::json!("main")
        )
    );
    let remote = clone.parent().unwrap().join("remote.git");
    assert_eq!(
        git(&remote, &["log", "-1", "--format=%s", &format!("rollbot/revert-{bad}")]).trim(),
        "Revert \"Bad merge: drop the cache\"",
        "the revert is on its own branch"
    );
    assert_eq!(
        git(&remote, &["log", "-1", "--format=%h", "main"]).trim(),
        bad,
        "the protected branch is untouched until people merge"
    );
    let thread = bot.thread(&card);
    assert!(!thread.iter().any(|m| m.contains(token)), "{thread:#?}");
    bot.click(BOB, Button::Continue(rb(1), 5)).await;
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);
    assert_eq!(service.received("/healthz").len(), 1);
}

/// A stand-in `aws rds` that records what it was asked and answers as the real CLI does.
const FAKE_AWS_RDS: &str = r#"here=$(dirname "$0")
echo "$@" >> "$here/asked"
case "$1 $2" in
  "rds restore-db-instance-from-db-snapshot")
    while [ $# -gt 0 ]; do [ "$1" = "--db-instance-identifier" ] && id=$2; shift; done
    echo "$id";;
  "rds wait") ;;
  "rds describe-db-instances")
    while [ $# -gt 0 ]; do [ "$1" = "--db-instance-identifier" ] && id=$2; shift; done
    printf '%s\t%s.abc123.eu-west-1.rds.amazonaws.com\tTrue\n' "$id" "$id";;
  *) echo "aws: error: argument operation: Invalid choice" >&2; exit 252;;
esac
"#;

/// The RDS snapshot restore builds the new instance like the one it replaces (its security
/// groups, parameter group, Multi-AZ, deletion protection, private) and names it after the
/// rollback, so a second restore does not collide with the first.
#[tokio::test]
async fn the_rds_example_restores_to_an_instance_like_the_old_one_named_after_the_rollback() {
    let bin = tempfile::tempdir().unwrap();
    fake_program(bin.path(), "aws", FAKE_AWS_RDS);
    let aws = bin.path().join("aws").display().to_string();
    let config = shipped("cloud-snapshot.toml").replace("exec aws ", &format!("exec {aws} "));
    assert_eq!(config.matches(&aws).count(), 3);
    let bot = Rollbot::builder().config(|_| config).start().await;
    for n in 1..=2 {
        let card = approved_by_bob(&bot, "orders-rds to rds:orders-2026-11-21-03-00 severity high", n).await;
        let paused = bot.card_now(&card);
        assert!(paused.text.contains("named after this rollback"), "{}", paused.text);
        let thread = bot.thread(&card);
        let id = format!("orders-prod-restored-rb-{n}");
        assert!(
            thread.iter().any(
                |m| m.contains(&format!("{id}\t{id}.abc123.eu-west-1.rds.amazonaws.com\tTrue"))
                    || m.contains(&format!("{id} {id}.abc123"))
            ),
            "the endpoint of the new instance, Multi-AZ: {thread:#?}"
        );
        bot.click(BOB, Button::Continue(rb(n), 3)).await;
        bot.settle().await;
        assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
        bot.thread(&card);
    }
    let asked = std::fs::read_to_string(bin.path().join("asked")).unwrap();
    let restores: Vec<&str> = asked.lines().filter(|l| l.contains("restore-db-instance")).collect();
    assert_eq!(restores.len(), 2);
    assert_eq!(
        restores[0],
        "rds restore-db-instance-from-db-snapshot --region eu-west-1 --db-snapshot-identifier rds:orders-2026-11-21-03-00 \
         --db-instance-identifier orders-prod-restored-rb-1 --db-instance-class db.r6g.large --db-subnet-group-name prod-db \
         --vpc-security-group-ids sg-0a1b2c3d4e5f60718 --db-parameter-group-name orders-pg16 \
         --multi-az --deletion-protection --copy-tags-to-snapshot --no-publicly-accessible \
         --query DBInstance.DBInstanceIdentifier --output text"
    );
    assert!(
        restores[1].contains("--db-instance-identifier orders-prod-restored-rb-2"),
        "{}",
        restores[1]
    );
    assert!(asked.contains(
        "rds wait db-instance-available --region eu-west-1 --db-instance-identifier orders-prod-restored-rb-2"
    ));
}

/// A stand-in `kubectl` for the Kubernetes example: `get deployment … -o jsonpath` prints the
/// GitOps marks in `marks` (nothing when the file is absent, as kubectl prints nothing for a
/// missing field); `rollout` answers as kubectl 1.31 does. What it was asked is in `asked`.
const FAKE_KUBECTL: &str = r#"here=$(dirname "$0")
echo "$@" >> "$here/asked"
case "$1 $2" in
  "get deployment") cat "$here/marks" 2>/dev/null; exit 0;;
  "rollout history") echo "deployment.apps/checkout-api with revision #41"; echo "Pod Template:"; exit 0;;
  "rollout undo") echo "deployment.apps/checkout-api rolled back"; exit 0;;
  "rollout status") echo 'deployment "checkout-api" successfully rolled out'; exit 0;;
esac
echo "error: unknown command \"$1\" for \"kubectl\"" >&2
exit 1
"#;

/// The Kubernetes example checks before approval that no GitOps controller manages the
/// Deployment (Argo CD's self-heal would put the bad version back); unmanaged, it undoes the
/// rollout to the revision asked, waits for it and checks health.
#[tokio::test]
async fn the_kubernetes_example_warns_of_gitops_self_heal_and_undoes_the_rollout() {
    let service = healthy_service().await;
    let start = |bin: &std::path::Path| {
        let kubectl = bin.join("kubectl").display().to_string();
        fake_program(bin, "kubectl", FAKE_KUBECTL);
        let config = shipped("kubernetes.toml")
            .replace("\"kubectl\"", &format!("\"{kubectl}\""))
            .replace("managed=$(kubectl ", &format!("managed=$({kubectl} "))
            .replace("https://{{ vars.host }}/healthz", &format!("{}/healthz", service.url));
        Rollbot::builder().config(|_| config).start()
    };
    let gitops = "No GitOps controller will put it back";

    let managed = tempfile::tempdir().unwrap();
    std::fs::write(
        managed.path().join("marks"),
        "checkout-api:apps/Deployment:prod/checkout-api",
    )
    .unwrap();
    let bot = start(managed.path()).await;
    bot.slash(ALICE, "checkout-api to 41 severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    let checked = bot.card_now(&card);
    assert!(
        checked.text.contains(&format!(
            "❌ {gitops}: managed by GitOps (checkout-api:apps/Deployment:prod/checkout-api): its self-heal would undo the rollback; pause it first"
        )),
        "{}",
        checked.text
    );
    assert_eq!(checked.buttons()[0], "approve_despite_preflight", "Approve asks first");

    let unmanaged = tempfile::tempdir().unwrap();
    let bot = start(unmanaged.path()).await;
    bot.slash(ALICE, "checkout-api to 41 severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    let checked = bot.card_now(&card);
    assert!(
        checked
            .text
            .contains(&format!("✅ {gitops}: not managed by Argo CD or Flux"))
            && checked.text.contains("✅ The target revision exists"),
        "{}",
        checked.text
    );
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);
    let asked = std::fs::read_to_string(unmanaged.path().join("asked")).unwrap();
    assert!(
        asked.contains("rollout undo deployment/checkout-api -n prod --to-revision=41\n")
            && asked.contains("rollout status deployment/checkout-api -n prod --timeout=180s\n"),
        "{asked}"
    );
    assert_eq!(service.received("/healthz").len(), 1);
}

/// A stand-in `helm` (3.16): `status` answers the release, `rollback` to a revision in
/// `revisions` succeeds (or, with `--dry-run`, only says it would), any other fails as helm does.
const FAKE_HELM: &str = r#"here=$(dirname "$0")
echo "$@" >> "$here/asked"
case "$1" in
  status) printf 'NAME: search\nNAMESPACE: prod\nSTATUS: deployed\nREVISION: 13\n'; exit 0;;
  rollback)
    if ! grep -qx "$3" "$here/revisions"; then echo "Error: release: not found" >&2; exit 1; fi
    case " $* " in *" --dry-run "*) echo "Rollback was a success! Happy Helming! (dry run)";; *) echo "Rollback was a success! Happy Helming!";; esac
    exit 0;;
esac
echo "Error: unknown command \"$1\" for \"helm\"" >&2
exit 1
"#;

/// The Helm example rolls the release back to the revision asked and checks it; a revision
/// Helm no longer keeps fails the step with Helm's words; a drill only asks `--dry-run`.
#[tokio::test]
async fn the_helm_example_rolls_back_fails_plainly_and_drills_with_dry_run() {
    let service = healthy_service().await;
    let bin = tempfile::tempdir().unwrap();
    fake_program(bin.path(), "helm", FAKE_HELM);
    std::fs::write(bin.path().join("revisions"), "11\n12\n").unwrap();
    let helm = bin.path().join("helm").display().to_string();
    let config = shipped("helm.toml")
        .replace("[\"helm\",", &format!("[\"{helm}\","))
        .replace("https://{{ vars.host }}/healthz", &format!("{}/healthz", service.url));
    let bot = Rollbot::builder().config(|_| config).start().await;

    bot.slash(ALICE, "search to 11 severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    assert!(bot.card_now(&card).text.contains("✅ The release answers"));
    bot.click(BOB, Button::Approve(rb(1))).await;
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);

    let card = approved_by_bob(&bot, "search to 9 severity high", 2).await;
    assert!(bot.card_now(&card).text.contains("❌ *Failed* at step 1 of 3"));
    let thread = bot.thread(&card);
    assert!(
        thread
            .iter()
            .any(|m| m.starts_with("❌ Step 1/3 *Helm rollback* failed") && m.contains("Error: release: not found")),
        "{thread:#?}"
    );
    bot.click(ALICE, Button::Resolve(rb(2))).await;
    bot.settle().await;
    bot.card_now(&card);
    bot.thread(&card);
    bot.ephemerals(ALICE);

    let card = approved_by_bob(&bot, "drill search to 12 severity high", 3).await;
    assert!(bot.card_now(&card).text.contains("Succeeded"));
    bot.thread(&card);
    let asked = std::fs::read_to_string(bin.path().join("asked")).unwrap();
    let rollbacks: Vec<&str> = asked.lines().filter(|l| l.starts_with("rollback")).collect();
    assert_eq!(
        rollbacks,
        [
            "rollback search 11 -n prod --wait --timeout 5m0s",
            "rollback search 9 -n prod --wait --timeout 5m0s",
            "rollback search 12 -n prod --dry-run",
        ]
    );
}
