//! Keeping people informed while an incident lasts: the cadence of update reminders a request
//! was made with, the updates people posted, and whether the incident is still open.
use super::{Rollback, State, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// When the point of contact is reminded to post an update, counted from the request. The
/// defaults are the incident plans' communication plan: the development team within 15
/// minutes, stakeholders within 30, a status update within the hour; then every hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminders {
    /// Seconds after the request, ascending.
    pub marks_secs: Vec<u64>,
    /// Seconds between reminders after the last mark; `None`: no reminder after it.
    pub then_every_secs: Option<u64>,
}

impl Default for Reminders {
    fn default() -> Self {
        Reminders {
            marks_secs: vec![15 * 60, 30 * 60, 60 * 60],
            then_every_secs: Some(60 * 60),
        }
    }
}

impl Reminders {
    /// No reminders: what a request recorded before reminders existed was made with.
    pub fn none() -> Self {
        Reminders {
            marks_secs: vec![],
            then_every_secs: None,
        }
    }

    /// Seconds after the request at which reminder `n` (1 for the first) is due.
    pub fn offset_secs(&self, n: usize) -> Option<u64> {
        let (last, count) = (*self.marks_secs.last()?, self.marks_secs.len());
        if n == 0 {
            return None;
        }
        if n <= count {
            return Some(self.marks_secs[n - 1]);
        }
        let every = self.then_every_secs.filter(|e| *e > 0)?;
        Some(last + every * (n - count) as u64)
    }
}

/// An update someone posted on the incident: into the thread, the stakeholders' channels and,
/// when they chose so, the status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateNote {
    pub by: UserId,
    pub at: DateTime<Utc>,
    pub text: String,
    pub to_status_page: bool,
}

impl Rollback {
    /// Whether the incident this rollback answers is still going on: until the request ends
    /// without a run, the run succeeds (with a status page: until its incident is resolved),
    /// or, after a failure or an abort, someone marks it resolved or requests its fallback.
    pub fn incident_open(&self, status_page: bool) -> bool {
        match self.state {
            State::Rejected { .. } | State::Cancelled { .. } | State::Expired => false,
            State::Succeeded => status_page && !self.request.drill && self.resolved.is_none(),
            // A fallback takes the incident on: its own record reminds people from then on.
            State::Failed { .. } | State::Aborted { .. } => self.resolved.is_none() && self.fallbacks.is_empty(),
            _ => true,
        }
    }

    /// When reminder `n` is due.
    pub fn reminder_due(&self, n: usize) -> Option<DateTime<Utc>> {
        let secs = self.reminders.offset_secs(n)?;
        Some(self.requested_at + chrono::Duration::seconds(secs as i64))
    }

    /// The next reminder and when it is due, if any is left.
    pub fn next_reminder(&self) -> Option<(usize, DateTime<Utc>)> {
        let n = self.reminded + 1;
        Some((n, self.reminder_due(n)?))
    }

    /// Whether someone posted an update since reminder `n`'s previous mark (the request, for
    /// the first): then reminder `n` has nothing to ask for.
    pub fn updated_since_previous_mark(&self, n: usize) -> bool {
        let since = n
            .checked_sub(1)
            .and_then(|previous| self.reminder_due(previous))
            .unwrap_or(self.requested_at);
        self.updates.iter().any(|u| u.at >= since)
    }

    pub fn last_update(&self) -> Option<&UpdateNote> {
        self.updates.last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminders_follow_the_marks_then_repeat() {
        let cadence = Reminders::default();
        let offsets: Vec<_> = (0..=5).map(|n| cadence.offset_secs(n)).collect();
        assert_eq!(
            offsets,
            [None, Some(900), Some(1800), Some(3600), Some(7200), Some(10800)]
        );
        let once = Reminders {
            marks_secs: vec![600],
            then_every_secs: None,
        };
        assert_eq!((once.offset_secs(1), once.offset_secs(2)), (Some(600), None));
        assert_eq!(Reminders::none().offset_secs(1), None);
    }
}
