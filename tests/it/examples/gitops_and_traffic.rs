//! The traffic and GitOps examples, executed against stand-ins for `kubectl` (with the Argo
//! Rollouts plugin), `argocd` and `nginx` that record what they were asked and answer as the real
//! tools do, including their refusals; the nginx switch works on real files and symlinks.
use super::*;

/// A stand-in `kubectl` for the canary and Argo Rollouts examples. State lives in files beside
/// it: `weights` (the VirtualService's routes), `aborted` (the Rollout's abort flag), `forbidden`
/// (RBAC refuses the patch), `stuck` (no controller acts on the abort).
const FAKE_KUBECTL_TRAFFIC: &str = r#"here=$(dirname "$0")
echo "$@" >> "$here/asked"
case "$*" in
  *"--dry-run=server"*) echo "virtualservice.networking.istio.io/recommendations patched (server dry run)"; exit 0;;
  "patch virtualservice"*)
    if [ -f "$here/forbidden" ]; then
      echo 'Error from server (Forbidden): virtualservices.networking.istio.io "recommendations" is forbidden: User "system:serviceaccount:ops:rollbot" cannot patch resource "virtualservices" in API group "networking.istio.io" in the namespace "prod"' >&2
      exit 1
    fi
    printf 'stable=100\ncanary=0\n' > "$here/weights"; echo "virtualservice.networking.istio.io/recommendations patched"; exit 0;;
  "get virtualservice"*) cat "$here/weights" 2>/dev/null || printf 'stable=80\ncanary=20\n'; exit 0;;
  "argo rollouts abort search -n prod")
    [ -f "$here/stuck" ] || touch "$here/aborted"; echo "rollout 'search' aborted"; exit 0;;
  "get rollout search -n prod -o jsonpath="*)
    if [ -f "$here/aborted" ]; then printf 'true 0'; else printf ' 20'; fi; exit 0;;
  "argo rollouts undo search -n prod --to-revision=7") echo "rollout 'search' undo"; exit 0;;
  "argo rollouts promote search -n prod --full") echo "rollout 'search' fully promoted"; exit 0;;
  "argo rollouts status search -n prod --timeout 10m") echo "Healthy"; exit 0;;
esac
echo "error: unknown command \"$1\" for \"kubectl\"" >&2
exit 1
"#;

/// `file` with every `kubectl` its steps run replaced by the stand-in in `bin`, and its https
/// hosts by `service`.
fn with_kubectl(file: &str, bin: &std::path::Path, service: &FakeService) -> String {
    fake_program(bin, "kubectl", FAKE_KUBECTL_TRAFFIC);
    let kubectl = bin.join("kubectl").display().to_string();
    shipped(file)
        .replace("\"kubectl\"", &format!("\"{kubectl}\""))
        .replace("$(kubectl ", &format!("$({kubectl} "))
        .replace("https://{{ vars.host }}", &service.url)
}

/// The canary weight goes to 0 (stable 100) and the routes are shown; a drill asks the API
/// server with `--dry-run=server` only; RBAC refusing the patch stops the run before the health
/// check, with kubectl's words in the thread.
#[tokio::test]
async fn the_canary_example_sends_all_traffic_to_stable_and_says_why_when_refused() {
    let service = healthy_service().await;
    let bin = tempfile::tempdir().unwrap();
    let bot = Rollbot::builder()
        .config(|_| with_kubectl("canary.toml", bin.path(), &service))
        .start()
        .await;

    let card = approved_by_bob(&bot, "drill recommendations severity high", 1).await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);
    assert!(!bin.path().join("weights").exists(), "a drill moves no traffic");

    let card = approved_by_bob(&bot, "recommendations severity high", 2).await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    let thread = bot.thread(&card);
    assert!(
        thread
            .iter()
            .any(|m| m.contains("stable=100") && m.contains("canary=0")),
        "the routes as they are now: {thread:#?}"
    );
    let asked = std::fs::read_to_string(bin.path().join("asked")).unwrap();
    assert!(
        asked.contains(r#"patch virtualservice recommendations -n prod --type=json -p [{"op":"replace","path":"/spec/http/0/route/0/weight","value":100},{"op":"replace","path":"/spec/http/0/route/1/weight","value":0}]"#),
        "{asked}"
    );
    assert_eq!(service.received("/healthz").len(), 1);

    std::fs::write(bin.path().join("forbidden"), "").unwrap();
    let card = approved_by_bob(&bot, "recommendations severity high", 3).await;
    let failed = bot.card_now(&card);
    assert!(failed.text.contains("❌ *Failed* at step 1 of 3"), "{}", failed.text);
    let thread = bot.thread(&card);
    assert!(
        thread.iter().any(|m| m.contains("cannot patch resource")),
        "{thread:#?}"
    );
    assert_eq!(
        service.received("/healthz").len(),
        1,
        "no health check after the refusal"
    );
}

/// Abort puts all traffic back on stable, and the check reads the abort flag and the canary's
/// weight (an aborted Rollout reports Degraded, so `status` would fail); an abort no controller
/// acts on fails the check. Undo goes to the revision, promotes it fully and waits for Healthy.
#[tokio::test]
async fn the_argo_rollouts_example_aborts_the_canary_or_undoes_to_a_revision() {
    let service = healthy_service().await;
    let stuck = tempfile::tempdir().unwrap();
    std::fs::write(stuck.path().join("stuck"), "").unwrap();
    let bot = Rollbot::builder()
        .config(|_| with_kubectl("argo-rollouts.toml", stuck.path(), &service))
        .start()
        .await;
    let card = approved_by_bob(&bot, "search severity high", 1).await;
    assert!(bot.card_now(&card).text.contains("❌ *Failed* at step 2 of 3"));
    let thread = bot.thread(&card);
    assert!(
        thread
            .iter()
            .any(|m| m.contains("not aborted with all traffic on stable")),
        "{thread:#?}"
    );

    let bin = tempfile::tempdir().unwrap();
    let bot = Rollbot::builder()
        .config(|_| with_kubectl("argo-rollouts.toml", bin.path(), &service))
        .start()
        .await;
    let card = approved_by_bob(&bot, "search severity high", 1).await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    let thread = bot.thread(&card);
    assert!(
        thread.iter().any(|m| m.contains("abort, canary weight: true 0")),
        "{thread:#?}"
    );

    let card = approved_by_bob(&bot, "search to 7 runbook rollouts-undo severity high", 2).await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);
    let asked = std::fs::read_to_string(bin.path().join("asked")).unwrap();
    let undo: Vec<&str> = asked.lines().skip(2).collect();
    assert_eq!(
        undo,
        [
            "argo rollouts undo search -n prod --to-revision=7",
            "argo rollouts promote search -n prod --full",
            "argo rollouts status search -n prod --timeout 10m",
        ]
    );
}

/// A stand-in `argocd` (v2.13): the Application's sync policy is the file `policy`
/// (`automated` at first); `app rollback` is refused while it is automated, as Argo CD refuses it.
const FAKE_ARGOCD: &str = r#"here=$(dirname "$0")
echo "$@" >> "$here/asked"
policy=$(cat "$here/policy" 2>/dev/null || echo automated)
case "$*" in
  "app history storefront")
    echo "ID  DATE                           REVISION"
    echo "11  2026-11-30 10:00:00 +0000 UTC  3f2a9c1"
    echo "12  2026-12-01 09:00:00 +0000 UTC  8b7d410"
    echo "13  2026-12-04 03:00:00 +0000 UTC  c0ffee1"; exit 0;;
  "app set storefront --sync-policy none") echo none > "$here/policy"; exit 0;;
  "app set storefront --sync-policy automated --self-heal --auto-prune") echo automated > "$here/policy"; exit 0;;
  "app rollback storefront 12 --timeout 300")
    if [ "$policy" = automated ]; then
      echo 'FATA[0000] rpc error: code = FailedPrecondition desc = rollback cannot be initiated when auto-sync is enabled' >&2; exit 20
    fi
    echo "Name:               argocd/storefront"; echo "Sync Status:        OutOfSync from main (8b7d410)"; exit 0;;
  "app wait storefront --health --timeout 300") echo "Health Status:      Healthy"; exit 0;;
esac
echo "FATA[0000] unknown command \"$*\"" >&2
exit 1
"#;

/// Before approval the history ID is checked; the run pauses auto-sync (Argo CD refuses the
/// rollback otherwise, and self-heal would undo it), rolls back, waits for Healthy, checks
/// health, and turns auto-sync back on only when a person says Git no longer holds the bad
/// version.
#[tokio::test]
async fn the_argocd_example_pauses_auto_sync_and_restores_it_only_after_the_gate() {
    let service = healthy_service().await;
    let bin = tempfile::tempdir().unwrap();
    fake_program(bin.path(), "argocd", FAKE_ARGOCD);
    let argocd = bin.path().join("argocd").display().to_string();
    let config = shipped("argocd.toml")
        .replace("[\"argocd\", \"app\"", &format!("[\"{argocd}\", \"app\""))
        .replace("\nargocd app history", &format!("\n{argocd} app history"))
        .replace("https://{{ vars.host }}", &service.url);
    let bot = Rollbot::builder().config(|_| config).start().await;

    bot.slash(ALICE, "storefront to 99 severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    let checked = bot.card_now(&card);
    assert!(
        checked.text.contains("❌ The history ID exists")
            && checked
                .text
                .contains("history ID 99 is not in the history of storefront"),
        "{}",
        checked.text
    );
    bot.click(ALICE, Button::Cancel(rb(1))).await;
    bot.settle().await;
    bot.card_now(&card);
    bot.thread(&card);

    bot.slash(ALICE, "storefront to 12 severity high").await;
    bot.settle().await;
    let card = bot.expect_card();
    assert!(bot.card_now(&card).text.contains("✅ The history ID exists"));
    bot.click(BOB, Button::Approve(rb(2))).await;
    bot.settle().await;
    let paused = bot.card_now(&card);
    assert!(paused.text.contains("Paused at step 5 of 6"), "{}", paused.text);
    assert_eq!(
        std::fs::read_to_string(bin.path().join("policy")).unwrap(),
        "none\n",
        "still paused at the gate"
    );
    bot.click(BOB, Button::Continue(rb(2), 4)).await;
    bot.settle().await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    bot.thread(&card);
    let asked = std::fs::read_to_string(bin.path().join("asked")).unwrap();
    let run: Vec<&str> = asked.lines().filter(|l| !l.starts_with("app history")).collect();
    assert_eq!(
        run,
        [
            "app set storefront --sync-policy none",
            "app rollback storefront 12 --timeout 300",
            "app wait storefront --health --timeout 300",
            "app set storefront --sync-policy automated --self-heal --auto-prune",
        ]
    );
    assert_eq!(service.received("/healthz").len(), 1);
}

/// A stand-in `nginx`: `-t` fails as nginx does when the live upstream file has a typo; `-s
/// reload` is recorded in `reloads`.
const FAKE_NGINX: &str = r#"here=$(dirname "$0")
case "$*" in
  "-t")
    if grep -q brokn "$here/conf.d/active-upstream.conf"; then
      echo 'nginx: [emerg] unknown directive "brokn" in /etc/nginx/conf.d/active-upstream.conf:2' >&2
      echo 'nginx: configuration file /etc/nginx/nginx.conf test failed' >&2; exit 1
    fi
    echo 'nginx: the configuration file /etc/nginx/nginx.conf syntax is ok' >&2
    echo 'nginx: configuration file /etc/nginx/nginx.conf test is successful' >&2; exit 0;;
  "-s reload") echo reload >> "$here/reloads"; exit 0;;
esac
echo "nginx: invalid option: \"$*\"" >&2
exit 1
"#;

/// The link moves to the colour's upstream file only if nginx accepts the configuration, and
/// only then is nginx reloaded; a refused file puts the link back and reloads nothing.
#[tokio::test]
async fn the_nginx_example_switches_the_upstream_only_when_nginx_accepts_it() {
    let service = healthy_service().await;
    service.script("/_upstream/blue/healthz", answers(&[200], "ok"));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fake_program(root, "nginx", FAKE_NGINX);
    std::fs::create_dir_all(root.join("upstreams")).unwrap();
    std::fs::create_dir_all(root.join("conf.d")).unwrap();
    std::fs::write(
        root.join("upstreams/green.conf"),
        "upstream web { server 10.0.0.2:8080; }\n",
    )
    .unwrap();
    std::fs::write(
        root.join("upstreams/blue.conf"),
        "upstream web {\n  brokn 10.0.0.1:8080; }\n",
    )
    .unwrap();
    let link = root.join("conf.d/active-upstream.conf");
    std::os::unix::fs::symlink(root.join("upstreams/green.conf"), &link).unwrap();
    let on_path = format!(
        "timeout = \"30s\"\nenv = {{ PATH = \"{}:/usr/bin:/bin\" }}",
        root.display()
    );
    let config = shipped("nginx-upstream.toml")
        .replace("/etc/nginx/conf.d", &root.join("conf.d").display().to_string())
        .replace("/etc/nginx/upstreams", &root.join("upstreams").display().to_string())
        .replace("timeout = \"30s\"", &on_path)
        .replace("https://{{ vars.host }}", &service.url);
    let bot = Rollbot::builder().config(|_| config).start().await;

    let card = approved_by_bob(&bot, "web to blue severity high", 1).await;
    let failed = bot.card_now(&card);
    assert!(failed.text.contains("❌ *Failed* at step 1 of 3"), "{}", failed.text);
    let thread = bot.thread(&card);
    assert!(
        thread
            .iter()
            .any(|m| m.contains("unknown directive") && m.contains("nothing was reloaded")),
        "{thread:#?}"
    );
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        root.join("upstreams/green.conf"),
        "the link is back"
    );
    assert!(!root.join("reloads").exists());

    std::fs::write(
        root.join("upstreams/blue.conf"),
        "upstream web { server 10.0.0.1:8080; }\n",
    )
    .unwrap();
    let card = approved_by_bob(&bot, "web to blue severity high", 2).await;
    assert!(bot.card_now(&card).text.contains("✅ *Succeeded*"));
    let thread = bot.thread(&card);
    assert!(
        thread
            .iter()
            .any(|m| m.contains("upstreams/green.conf -&gt; ") && m.contains("upstreams/blue.conf")),
        "{thread:#?}"
    );
    assert_eq!(std::fs::read_link(&link).unwrap(), root.join("upstreams/blue.conf"));
    assert_eq!(std::fs::read_to_string(root.join("reloads")).unwrap(), "reload\n");
    assert_eq!(
        service.received("/_upstream/blue/healthz").len(),
        2,
        "checked before each approval"
    );
    assert_eq!(
        service.received("/healthz").len(),
        1,
        "then through nginx, once it switched"
    );
}
