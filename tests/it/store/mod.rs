//! One conformance suite for both stores: every operation, with the guarantees the engine and
//! the workers rely on. Each check runs once on PostgreSQL and once on the embedded file.
use crate::support::{Backend, TestStorage};
use chrono::{DateTime, Duration, Utc};
use rollbot::domain::Rollback;
use rollbot::domain::fixtures::{Story, actor, alert_group, at};
use rollbot::domain::proposal::{Decision, Proposal, ProposalId};
use rollbot::domain::{Action, ChannelId, Recorded, RollbackId, Severity, State};
use rollbot::store::{CardRef, Consequences, Effect, Fence, Filed, Guard, Lease, Store, Timer, TimerAction, Written};

/// Files a rollback with no per-person limit, as most checks here need.
trait CreateUnlimited {
    async fn create_unlimited(&self, history: &[Recorded], consequences: &Consequences) -> anyhow::Result<Rollback>;
}

impl CreateUnlimited for Store {
    async fn create_unlimited(&self, history: &[Recorded], consequences: &Consequences) -> anyhow::Result<Rollback> {
        match self.create_rollback(history, consequences, None).await? {
            Filed::Yes(rollback) => Ok(rollback),
            other => anyhow::bail!("not filed: {other:?}"),
        }
    }
}

/// Runs each named check against a fresh store of each kind.
macro_rules! on_both_stores {
    ($($check:ident),* $(,)?) => {
        mod postgres {
            $( #[tokio::test] async fn $check() { super::run(super::Backend::Postgres, super::$check).await } )*
        }
        mod embedded {
            $( #[tokio::test] async fn $check() { super::run(super::Backend::Embedded, super::$check).await } )*
        }
    };
}

mod filing;
mod outbox;
mod proposals;
mod rollbacks;

async fn run<F: std::future::Future<Output = ()>>(backend: Backend, check: fn(Store) -> F) {
    let storage = TestStorage::new(backend);
    let store = storage.open(None).await;
    assert_eq!(
        store.backend_name(),
        match backend {
            Backend::Postgres => "postgres",
            Backend::Embedded => "embedded",
        }
    );
    check(store).await;
}

fn nothing() -> Consequences {
    Consequences::default()
}

fn effects(effects: Vec<Effect>) -> Consequences {
    Consequences {
        effects,
        ..Default::default()
    }
}

/// A new high-severity request, optionally from another channel or as a drill.
fn request(channel: &str, drill: bool) -> Story {
    let mut story = Story::requested(Severity::High, Some("bad deploy"));
    if channel != "C0INCIDENTS" || drill {
        for recorded in &mut story.history {
            if let rollbot::domain::Event::Requested { request, .. } = &mut recorded.event {
                request.channel = ChannelId(channel.to_owned());
                request.drill = drill;
            }
        }
    }
    story
}

/// Records what `story` did after its first `already` events, as the engine would.
async fn record(store: &Store, id: RollbackId, story: &Story, already: usize, expected_version: i64) -> Written {
    let mut rollback = story.rollback.clone();
    rollback.id = id;
    store
        .append(&rollback, expected_version, &story.history[already..], &nothing())
        .await
        .unwrap()
}

fn kinds(items: &[rollbot::store::OutboxItem]) -> Vec<&'static str> {
    items.iter().map(|i| i.effect.kind()).collect()
}

const CLAIM: std::time::Duration = std::time::Duration::from_secs(30);
