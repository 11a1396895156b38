//! Runs one `command` step: argv without a shell, a clean environment, its own process group
//! (killed whole on timeout), and the tail of its combined output.
use crate::domain::{StepOutcome, StepResult};
use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub struct CommandSpec<'a> {
    pub argv: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub workdir: Option<&'a str>,
    pub timeout: Duration,
    pub tail_bytes: usize,
    /// Run under the step supervisor (`engine::supervisor`), so the step dies with rollbot and
    /// when the lease can no longer be vouched for. `None` only where no lease is involved.
    pub supervision: Option<Supervision<'a>>,
    /// Turns `true` when a person aborts the rollback: the step's group gets SIGTERM, then
    /// SIGKILL after `ABORT_GRACE`, and the step is recorded as aborted with its output.
    pub abort: Option<AbortSeen>,
    /// Where the latest output is kept while the step runs, for people watching a long step.
    pub live: Option<LiveOutput>,
}

/// The latest bytes a running step wrote, shared with whoever shows its progress.
#[derive(Clone, Default)]
pub struct LiveOutput(std::sync::Arc<std::sync::Mutex<VecDeque<u8>>>);

impl LiveOutput {
    /// Enough for the last lines of a progress report.
    const KEEP: usize = 2048;

    fn extend(&self, bytes: &[u8]) {
        let mut kept = self.0.lock().expect("live output lock");
        kept.extend(bytes);
        let len = kept.len();
        if len > Self::KEEP {
            kept.drain(..len - Self::KEEP);
        }
    }

    /// The last `lines` complete or partial lines written so far.
    pub fn latest(&self, lines: usize) -> String {
        let bytes: Vec<u8> = self.0.lock().expect("live output lock").iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim_start_matches('\u{fffd}').trim_end();
        let kept: Vec<&str> = text.lines().rev().take(lines).collect();
        kept.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

/// Whether someone asked to abort the running step.
pub type AbortSeen = tokio::sync::watch::Receiver<bool>;

/// Returns once `abort` says the step is aborted; never, without one.
pub async fn until_aborted(abort: Option<AbortSeen>) {
    let Some(mut abort) = abort else {
        return std::future::pending().await;
    };
    loop {
        if *abort.borrow_and_update() {
            return;
        }
        if abort.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// What ended a step's process.
enum Ended {
    Exited(std::io::Result<std::process::ExitStatus>),
    TimedOut,
    Aborted,
}

/// The supervisor program (rollbot's own binary) and the moments until which the step may run:
/// `None` once it must stop.
pub struct Supervision<'a> {
    pub program: &'a std::path::Path,
    pub stop_by: tokio::sync::watch::Receiver<Option<tokio::time::Instant>>,
}

/// Variables a step inherits from rollbot; nothing else does, so rollbot's own secrets never
/// reach a step.
const INHERITED_ENV: [&str; 5] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ"];

/// How long a step gets between SIGTERM and SIGKILL when it times out.
const KILL_GRACE: Duration = Duration::from_secs(2);

pub async fn run(spec: CommandSpec<'_>) -> StepResult {
    let started = Instant::now();
    let could_not_start = |detail: String| StepResult {
        outcome: StepOutcome::CouldNotStart,
        exit_code: None,
        duration_ms: started.elapsed().as_millis() as u64,
        output_tail: String::new(),
        detail: Some(detail),
        ..Default::default()
    };
    let Some((program, args)) = spec.argv.split_first() else {
        return could_not_start("the step has an empty argv".into());
    };
    let (reader, writer) = match std::io::pipe() {
        Ok(pair) => pair,
        Err(e) => return could_not_start(format!("cannot create an output pipe: {e}")),
    };
    let writer_for_stderr = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return could_not_start(format!("cannot create an output pipe: {e}")),
    };
    let mut command = match &spec.supervision {
        Some(supervision) => {
            let mut command = tokio::process::Command::new(supervision.program);
            command
                .arg(super::supervisor::SUBCOMMAND)
                .arg("--")
                .arg(program)
                .args(args)
                .stdin(Stdio::piped());
            command
        }
        None => {
            let mut command = tokio::process::Command::new(program);
            command.args(args).stdin(Stdio::null());
            command
        }
    };
    command
        .env_clear()
        .envs(
            INHERITED_ENV
                .iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))),
        )
        .envs(spec.env)
        .stdout(writer)
        .stderr(writer_for_stderr)
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = spec.workdir {
        command.current_dir(dir);
    }
    let spawned = command.spawn();
    // Our copies of the pipe's write end must close, or reading never sees the end.
    drop(command);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let detail = if e.kind() == std::io::ErrorKind::NotFound {
                format!("`{program}` was not found (PATH or workdir)")
            } else {
                format!("`{program}`: {e}")
            };
            return could_not_start(detail);
        }
    };
    let pgid = child.id().map(|pid| nix::unistd::Pid::from_raw(pid as i32));
    // If this future is dropped (shutdown gave up waiting), the step's whole group goes with it.
    let _group = GroupGuard(pgid);
    // The supervisor hears until when it may let the step run; dropping this ends its input,
    // which stops the step.
    let _vouching = match (spec.supervision, child.stdin.take()) {
        (Some(supervision), Some(stdin)) => Some(AbortOnDrop(tokio::spawn(vouch(supervision.stop_by, stdin)))),
        _ => None,
    };
    let tail_bytes = spec.tail_bytes;
    let live = spec.live.clone();
    let output = tokio::task::spawn_blocking(move || read_tail(reader, tail_bytes, live));

    let ended = tokio::select! {
        waited = tokio::time::timeout(spec.timeout, child.wait()) => match waited {
            Ok(status) => Ended::Exited(status),
            Err(_) => Ended::TimedOut,
        },
        _ = until_aborted(spec.abort) => Ended::Aborted,
    };
    let (outcome, exit_code, detail) = match ended {
        Ended::Exited(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            let detail = status.signal().map(|s| format!("killed by signal {s}"));
            let outcome = if status.success() {
                StepOutcome::Succeeded
            } else {
                StepOutcome::Failed
            };
            (outcome, status.code(), detail)
        }
        Ended::Exited(Err(e)) => (
            StepOutcome::Failed,
            None,
            Some(format!("waiting for the process failed: {e}")),
        ),
        Ended::Aborted => stop_aborted(&mut child, pgid).await,
        Ended::TimedOut => {
            if let Some(pgid) = pgid {
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
                if tokio::time::timeout(KILL_GRACE, child.wait()).await.is_err() {
                    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                }
            }
            let _ = child.wait().await;
            (
                StepOutcome::TimedOut,
                None,
                Some(format!(
                    "no result within {}s; its process group was killed",
                    spec.timeout.as_secs()
                )),
            )
        }
    };
    // Whatever the step left running in its group goes with it, so nothing it started keeps
    // holding the output pipe or acting after the step is recorded as finished.
    if let Some(pgid) = pgid {
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    }
    let output_tail = match tokio::time::timeout(Duration::from_secs(5), output).await {
        Ok(Ok(tail)) => tail,
        _ => "(output could not be read)".into(),
    };
    if exit_code == Some(super::supervisor::CANNOT_START_STATUS)
        && let Some(why) = output_tail.trim().strip_prefix(super::supervisor::CANNOT_START)
    {
        return could_not_start(why.to_owned());
    }
    StepResult {
        outcome,
        exit_code,
        duration_ms: started.elapsed().as_millis() as u64,
        output_tail,
        detail,
        ..Default::default()
    }
}

/// Stops an aborted step: SIGTERM to its group, then SIGKILL if it is still there after
/// `ABORT_GRACE`. Says how it ended, for the step's record.
async fn stop_aborted(
    child: &mut tokio::process::Child,
    pgid: Option<nix::unistd::Pid>,
) -> (StepOutcome, Option<i32>, Option<String>) {
    let grace = crate::domain::ABORT_GRACE;
    let mut detail = "aborted: its process group was sent SIGTERM".to_owned();
    if let Some(pgid) = pgid {
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
    }
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => {
            detail.push_str(" and it stopped");
            status.ok()
        }
        Err(_) => {
            if let Some(pgid) = pgid {
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            }
            detail.push_str(&format!(", then SIGKILL after {}s", grace.as_secs()));
            child.wait().await.ok()
        }
    };
    (StepOutcome::Aborted, status.and_then(|s| s.code()), Some(detail))
}

/// Tells the supervisor each new moment until which the step may run, as CLOCK_MONOTONIC time;
/// returns (closing its input, so it stops the step) once there is none.
async fn vouch(
    mut stop_by: tokio::sync::watch::Receiver<Option<tokio::time::Instant>>,
    mut stdin: tokio::process::ChildStdin,
) {
    use tokio::io::AsyncWriteExt;
    loop {
        let Some(until) = *stop_by.borrow_and_update() else {
            return;
        };
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let line = super::supervisor::until_line(super::supervisor::monotonic_now() + left);
        if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
        if stop_by.changed().await.is_err() {
            return;
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Kills a process group when dropped.
struct GroupGuard(Option<nix::unistd::Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn read_tail(mut reader: std::io::PipeReader, keep: usize, live: Option<LiveOutput>) -> String {
    let mut tail: VecDeque<u8> = VecDeque::with_capacity(keep.min(64 * 1024));
    let mut buffer = [0u8; 8192];
    let mut dropped = false;
    loop {
        match reader.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(live) = &live {
                    live.extend(&buffer[..n]);
                }
                tail.extend(&buffer[..n]);
                if tail.len() > keep {
                    tail.drain(..tail.len() - keep);
                    dropped = true;
                }
            }
        }
    }
    let bytes: Vec<u8> = tail.into_iter().collect();
    let text = String::from_utf8_lossy(&bytes);
    // A cut may split a character; drop the damaged start rather than show garbage.

    if dropped {
        text.trim_start_matches('\u{fffd}').to_string()
    } else {
        text.into_owned()
    }
}

/// The `PATH` a command step's program is looked up on: the step's own `env.PATH` when it
/// sets one (the child starts with it), otherwise `inherited` (rollbot's, which steps get).
/// `None` when the step's PATH is only known when it runs (a template or an `${env:…}`).
pub fn search_path(env: &BTreeMap<String, String>, inherited: &std::ffi::OsStr) -> Option<std::ffi::OsString> {
    match env.get("PATH") {
        Some(own) if own.contains("{{") || own.contains("${") => None,
        Some(own) => Some(own.into()),
        None => Some(inherited.to_owned()),
    }
}

/// Where `program` would be found, as a step starting it would look: a path must be an
/// executable file; a bare name is looked up on `path` (the `PATH` steps inherit).
pub fn find_program(program: &str, path: &std::ffi::OsStr) -> Option<std::path::PathBuf> {
    let runs = |candidate: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let candidate = std::path::PathBuf::from(program);
        return runs(&candidate).then_some(candidate);
    }
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| runs(candidate))
}

/// A command's argv and environment with their `${env:…}` references resolved (and remembered
/// in `resolved`, to scrub what the command prints).
pub fn resolve(
    resolved: &mut super::secrets::Resolved,
    secrets: &super::secrets::SecretSource,
    argv: &[String],
    env: &BTreeMap<String, String>,
) -> Result<(Vec<String>, BTreeMap<String, String>), String> {
    let argv: Vec<String> = argv
        .iter()
        .map(|a| resolved.resolve(secrets, a))
        .collect::<Result<_, _>>()?;
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| resolved.resolve(secrets, v).map(|v| (k.clone(), v)))
        .collect::<Result<_, _>>()?;
    Ok((argv, env))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    async fn run_sh(script: &str, timeout: Duration, tail_bytes: usize) -> StepResult {
        let argv = argv(&["sh", "-c", script]);
        let env = BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]);
        run(CommandSpec {
            argv: &argv,
            env: &env,
            workdir: None,
            timeout,
            tail_bytes,
            supervision: None,
            abort: None,
            live: None,
        })
        .await
    }

    #[tokio::test]
    async fn the_latest_lines_are_readable_while_the_step_still_runs() {
        let argv = argv(&["sh", "-c", "for i in 1 2 3 4 5; do echo \"line $i\"; done; sleep 2"]);
        let env = BTreeMap::new();
        let live = LiveOutput::default();
        let watching = live.clone();
        let step = tokio::spawn(async move {
            run(CommandSpec {
                argv: &argv,
                env: &env,
                workdir: None,
                timeout: Duration::from_secs(10),
                tail_bytes: 1024,
                supervision: None,
                abort: None,
                live: Some(live),
            })
            .await
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while watching.latest(3) != "line 3\nline 4\nline 5" {
            assert!(std::time::Instant::now() < deadline, "{:?}", watching.latest(3));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!step.is_finished(), "read while it runs");
        assert_eq!(step.await.unwrap().outcome, StepOutcome::Succeeded);
    }

    async fn aborted_after(script: &str, after: Duration) -> (StepResult, Duration) {
        let argv = argv(&["sh", "-c", script]);
        let env = BTreeMap::new();
        let (abort, seen) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let run = run(CommandSpec {
            argv: &argv,
            env: &env,
            workdir: None,
            timeout: Duration::from_secs(60),
            tail_bytes: 1000,
            supervision: None,
            abort: Some(seen),
            live: None,
        });
        let press = async {
            tokio::time::sleep(after).await;
            abort.send_replace(true);
        };
        let (result, ()) = tokio::join!(run, press);
        (result, started.elapsed())
    }

    #[tokio::test]
    async fn an_aborted_step_gets_sigterm_and_keeps_its_output() {
        let (result, took) = aborted_after(
            "trap 'echo stopping cleanly; exit 143' TERM; echo restoring; while true; do sleep 0.05; done",
            Duration::from_millis(400),
        )
        .await;
        assert_eq!(result.outcome, StepOutcome::Aborted);
        assert_eq!(result.exit_code, Some(143));
        assert!(
            result.output_tail.starts_with("restoring\n") && result.output_tail.ends_with("stopping cleanly\n"),
            "{:?}",
            result.output_tail
        );
        assert_eq!(
            result.detail.as_deref(),
            Some("aborted: its process group was sent SIGTERM and it stopped")
        );
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[tokio::test]
    async fn an_aborted_step_that_ignores_sigterm_is_killed_after_the_grace() {
        let (result, took) = aborted_after(
            "trap '' TERM; echo stubborn; while true; do sleep 0.05; done",
            Duration::from_millis(200),
        )
        .await;
        assert_eq!(result.outcome, StepOutcome::Aborted);
        assert_eq!(result.output_tail, "stubborn\n");
        assert_eq!(
            result.detail.as_deref(),
            Some("aborted: its process group was sent SIGTERM, then SIGKILL after 10s")
        );
        assert!(took >= crate::domain::ABORT_GRACE, "{took:?}");
    }

    #[tokio::test]
    async fn exit_code_and_combined_output_are_recorded() {
        let result = run_sh(
            "echo \"$GREETING out\"; echo err >&2; exit 4",
            Duration::from_secs(10),
            3072,
        )
        .await;
        assert_eq!(result.outcome, StepOutcome::Failed);
        assert_eq!(result.exit_code, Some(4));
        assert_eq!(result.output_tail, "hello out\nerr\n");
        let ok = run_sh("true", Duration::from_secs(10), 3072).await;
        assert_eq!(
            (ok.outcome, ok.exit_code, ok.output_tail.as_str()),
            (StepOutcome::Succeeded, Some(0), "")
        );
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        let script = format!("sleep 60 & echo $! > {}; echo started; wait", pid_file.display());
        let started = Instant::now();
        let result = run_sh(&script, Duration::from_millis(500), 3072).await;
        assert_eq!(result.outcome, StepOutcome::TimedOut);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(result.output_tail, "started\n");
        let child: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        // The background sleep was in the step's group: it must be gone (a zombie waiting for
        // init counts as gone). SIGKILL lands asynchronously, so give it a moment.
        let stat = || std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        for _ in 0..100 {
            if stat().is_empty() || stat().contains(") Z") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the step's child process {child} survived the timeout: {}", stat());
    }

    #[tokio::test]
    async fn only_the_tail_of_long_output_is_kept() {
        let result = run_sh("seq 1 20000", Duration::from_secs(10), 100).await;
        assert!(result.output_tail.len() <= 100);
        assert!(
            result.output_tail.ends_with("19999\n20000\n"),
            "{:?}",
            result.output_tail
        );
    }

    #[tokio::test]
    async fn steps_get_a_clean_environment_not_rollbots() {
        let result = run_sh("env", Duration::from_secs(10), 64 * 1024).await;
        let names: Vec<&str> = result.output_tail.lines().filter_map(|l| l.split('=').next()).collect();
        for name in &names {
            assert!(
                INHERITED_ENV.contains(name) || ["GREETING", "PWD", "SHLVL", "_"].contains(name),
                "{name} leaked into the step's environment: {names:?}"
            );
        }
        assert!(names.contains(&"GREETING"));
    }

    #[tokio::test]
    async fn a_step_runs_in_its_workdir() {
        let dir = tempfile::tempdir().unwrap();
        let argv = argv(&["pwd"]);
        let env = BTreeMap::new();
        let workdir = dir.path().to_str().unwrap();
        let spec = CommandSpec {
            argv: &argv,
            env: &env,
            workdir: Some(workdir),
            timeout: Duration::from_secs(5),
            tail_bytes: 1000,
            supervision: None,
            abort: None,
            live: None,
        };
        let result = run(spec).await;
        assert_eq!(
            result.output_tail.trim_end(),
            std::fs::canonicalize(dir.path()).unwrap().to_str().unwrap()
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_reported_not_panicked() {
        let argv = argv(&["/nonexistent/kubectl", "rollout"]);
        let env = BTreeMap::new();
        let result = run(CommandSpec {
            argv: &argv,
            env: &env,
            workdir: None,
            timeout: Duration::from_secs(1),
            tail_bytes: 100,
            supervision: None,
            abort: None,
            live: None,
        })
        .await;
        assert_eq!(result.outcome, StepOutcome::CouldNotStart);
        assert_eq!(
            result.detail.as_deref(),
            Some("`/nonexistent/kubectl` was not found (PATH or workdir)")
        );
    }

    #[tokio::test]
    async fn arguments_are_never_interpreted_by_a_shell() {
        let argv = argv(&["echo", "41; touch /tmp/rollbot-injected", "$(id)"]);
        let env = BTreeMap::new();
        let result = run(CommandSpec {
            argv: &argv,
            env: &env,
            workdir: None,
            timeout: Duration::from_secs(5),
            tail_bytes: 1000,
            supervision: None,
            abort: None,
            live: None,
        })
        .await;
        assert_eq!(result.output_tail, "41; touch /tmp/rollbot-injected $(id)\n");
    }
}
