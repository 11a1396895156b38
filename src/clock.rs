//! The clock is passed in so that decisions, signatures and timers can be tested at any instant.
use chrono::{DateTime, Utc};
use std::sync::Mutex;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// The time a store compares leases and claims against. `None`: the database's own clock,
    /// which every replica shares, so a replica whose clock is off cannot take over a healthy
    /// run or a message another replica is posting. A test clock gives its own time instead.
    fn store_time(&self) -> Option<DateTime<Utc>> {
        None
    }
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; for tests and drills.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn at(start: DateTime<Utc>) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.0.lock().expect("clock lock poisoned");
        *now += chrono::Duration::from_std(by).expect("duration in range");
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().expect("clock lock poisoned") = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock poisoned")
    }

    fn store_time(&self) -> Option<DateTime<Utc>> {
        Some(self.now())
    }
}
