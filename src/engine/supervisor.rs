//! The step supervisor: a small process between rollbot and a `command` step, so that a step
//! never outlives the rollbot process that may vouch for it.
//!
//! rollbot starts its own binary as `rollbot __supervise-step -- PROGRAM ARGS…` in a process
//! group of its own, and writes to the supervisor's stdin, one line each, the moments until
//! which the run's lease is known to hold (`until <CLOCK_MONOTONIC nanoseconds>`). The
//! supervisor starts the step in its group and kills the whole group when:
//! - its stdin ends: the rollbot process died (even by kill -9, the kernel closes the pipe);
//! - the last moment it was given passes: rollbot is stalled (SIGSTOP, a frozen machine) or
//!   could not renew its lease, so another replica may soon declare the run interrupted.
//!
//! The step's own exit status comes back as the supervisor's. The step leader also has
//! `PR_SET_PDEATHSIG`, so it dies if the supervisor itself is killed.
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{self, SigHandler, Signal};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::time::Duration;

/// The hidden subcommand of the rollbot binary that runs the supervisor.
pub const SUBCOMMAND: &str = "__supervise-step";

/// What the supervisor writes before its exit status when the step could not be started; rollbot
/// reports it as "could not start".
pub const CANNOT_START: &str = "rollbot: cannot start the step: ";

/// The exit status of a step that could not be started.
pub const CANNOT_START_STATUS: i32 = 127;

/// How often the supervisor looks at the step when the kernel cannot tell it (no pidfd).
const POLL_EVERY: Duration = Duration::from_millis(10);

/// The current CLOCK_MONOTONIC time, which rollbot and the supervisor share.
pub fn monotonic_now() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(Duration::from)
        .unwrap_or_default()
}

/// The line that tells the supervisor the lease holds until `until` (CLOCK_MONOTONIC).
pub fn until_line(until: Duration) -> String {
    format!("until {}\n", until.as_nanos())
}

extern "C" fn ignore(_: nix::libc::c_int) {}

/// Runs the supervisor with the arguments after the subcommand; never returns.
pub fn main(args: Vec<OsString>) -> ! {
    let mut args = args.into_iter().skip_while(|a| a != "--").skip(1);
    let Some(program) = args.next() else {
        eprintln!("{CANNOT_START}the supervisor was given no program");
        std::process::exit(CANNOT_START_STATUS);
    };
    // A SIGTERM to the group (the step's timeout) is for the step: the supervisor waits for it
    // to end. A handler, unlike SIG_IGN, is not inherited by the program it starts.
    // SAFETY: the handler does nothing, so it is async-signal-safe.
    unsafe {
        let _ = signal::signal(Signal::SIGTERM, SigHandler::Handler(ignore));
    }
    let stdin = std::io::stdin();
    let mut control = Control::default();
    // Nothing starts before rollbot said how long the lease holds.
    if !control.read_first(&mut RawStdin) {
        std::process::exit(CANNOT_START_STATUS);
    }
    let mut command = std::process::Command::new(&program);
    command.args(args).stdin(std::process::Stdio::null());
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let name = program.to_string_lossy();
            if e.kind() == std::io::ErrorKind::NotFound {
                eprintln!("{CANNOT_START}`{name}` was not found (PATH or workdir)");
            } else {
                eprintln!("{CANNOT_START}`{name}`: {e}");
            }
            std::process::exit(CANNOT_START_STATUS);
        }
    };
    let exited = pidfd(child.id());
    loop {
        match child.try_wait() {
            Ok(Some(status)) => finish(status),
            Ok(None) => {}
            Err(_) => stop_group("rollbot could not watch the step"),
        }
        let left = control.until.saturating_sub(monotonic_now());
        if left.is_zero() {
            stop_group("its rollbot process could not vouch for the run any more (the lease was not renewed in time)");
        }
        let wait = match &exited {
            Some(_) => left,
            None => left.min(POLL_EVERY),
        };
        let mut fds = vec![PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
        if let Some(fd) = &exited {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        let timeout = PollTimeout::try_from(wait.max(Duration::from_millis(1))).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => std::thread::sleep(POLL_EVERY),
        }
        let control_ready = fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR));
        if control_ready && !control.read_more(&mut RawStdin) {
            stop_group("its rollbot process stopped");
        }
    }
}

/// The supervisor's exit: the step's status, as if the step were rollbot's own child.
fn finish(status: std::process::ExitStatus) -> ! {
    if let Some(signal) = status.signal() {
        // SAFETY: back to the default action, then the same signal: the supervisor ends as the
        // step did ("killed by signal N").
        unsafe {
            let _ = signal::signal(Signal::try_from(signal).unwrap_or(Signal::SIGKILL), SigHandler::SigDfl);
        }
        let _ = signal::raise(Signal::try_from(signal).unwrap_or(Signal::SIGKILL));
    }
    std::process::exit(status.code().unwrap_or(1))
}

/// Kills the whole group, the supervisor with it, saying why where rollbot's output tail shows.
fn stop_group(why: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "rollbot: the step was stopped: {why}");
    let _ = signal::killpg(nix::unistd::getpgrp(), Signal::SIGKILL);
    std::process::exit(137)
}

/// A descriptor that becomes readable when the child exits, where the kernel has them.
fn pidfd(pid: u32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid as nix::libc::pid_t, 0) };
    // SAFETY: a non-negative result is a descriptor this process now owns.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// What rollbot said so far: until when the lease holds, and any unfinished line.
#[derive(Default)]
struct Control {
    until: Duration,
    partial: Vec<u8>,
}

impl Control {
    /// Blocks for the first complete line; `false` if the input ended first.
    fn read_first(&mut self, input: &mut impl Read) -> bool {
        let mut byte = [0u8; 1];
        loop {
            match input.read(&mut byte) {
                Ok(0) | Err(_) => return false,
                Ok(_) => {
                    self.take(&byte);
                    if self.until > Duration::ZERO {
                        return true;
                    }
                }
            }
        }
    }

    /// Reads what is there; `false` when the input ended (rollbot is gone).
    fn read_more(&mut self, input: &mut impl Read) -> bool {
        let mut buffer = [0u8; 512];
        match input.read(&mut buffer) {
            Ok(0) => false,
            Ok(n) => {
                self.take(&buffer[..n]);
                true
            }
            Err(e) => e.kind() == std::io::ErrorKind::Interrupted,
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(nanos) = line.trim().strip_prefix("until ").and_then(|n| n.parse::<u64>().ok()) {
                self.until = Duration::from_nanos(nanos);
            }
        }
    }
}

/// Reads stdin's descriptor directly: a buffered reader would keep lines that `poll` then
/// never reports.
struct RawStdin;

impl Read for RawStdin {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: descriptor 0 stays open for the supervisor's whole life.
        let fd = unsafe { BorrowedFd::borrow_raw(0) };
        nix::unistd::read(fd, buffer).map_err(std::io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_complete_line_says_until_when() {
        let mut control = Control::default();
        control.take(b"until 5000\nuntil 70");
        assert_eq!(control.until, Duration::from_nanos(5000));
        control.take(b"00\nnonsense\n");
        assert_eq!(
            control.until,
            Duration::from_nanos(7000),
            "a line split across reads counts once whole"
        );
    }

    #[test]
    fn nothing_starts_when_rollbot_is_gone_before_saying_anything() {
        let mut control = Control::default();
        assert!(!control.read_first(&mut std::io::empty()));
        assert!(control.read_first(&mut &b"until 12\n"[..]));
        assert_eq!(control.until, Duration::from_nanos(12));
    }
}
