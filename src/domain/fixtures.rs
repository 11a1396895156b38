//! Rollbacks and policies for unit tests of the core and its messages.
use super::plan::{Plan, PlanStep, StepAction};
use super::*;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeMap;

pub const REQUESTER: &str = "U0ALICE";
pub const ON_CALL: &str = "U0BOB";
pub const ON_CALL_2: &str = "U0BETH";
pub const TEAM_LEAD: &str = "U0CAROL";
pub const OUTSIDER: &str = "U0MALLORY";
pub const DEVOPS_LEAD: &str = "U0DEVOPS";
pub const ENG_MANAGER: &str = "U0EM";
pub const CTO: &str = "U0CTO";
pub const TEAM: &str = "T0TEST";
pub const CHANNEL: &str = "C0INCIDENTS";

pub fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

pub fn directory() -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([
        (
            "on_call".to_owned(),
            vec![REQUESTER.to_owned(), ON_CALL.to_owned(), ON_CALL_2.to_owned()],
        ),
        ("team_lead".to_owned(), vec![TEAM_LEAD.to_owned()]),
        ("devops_lead".to_owned(), vec![DEVOPS_LEAD.to_owned()]),
        ("eng_manager".to_owned(), vec![ENG_MANAGER.to_owned()]),
        ("cto".to_owned(), vec![CTO.to_owned()]),
    ])
}

/// The defaults of DESIGN.md, with its escalation ladder.
pub fn policy() -> Policy {
    let minutes = |m: u64| std::time::Duration::from_secs(m * 60);
    Policy {
        workspace: Some(TeamId(TEAM.into())),
        channels: vec![ChannelId(CHANNEL.into())],
        requester_roles: None,
        severities: Severity::ALL
            .iter()
            .map(|s| (*s, SeverityPolicy::default_for(*s)))
            .collect(),
        max_reason_chars: 500,
        max_open_requests_per_person: 5,
        escalation: vec![
            EscalationLevel {
                role: "devops_lead".into(),
                after: minutes(30),
                severities: None,
            },
            EscalationLevel {
                role: "eng_manager".into(),
                after: minutes(60),
                severities: None,
            },
            EscalationLevel {
                role: "cto".into(),
                after: minutes(60),
                severities: Some(vec![Severity::Critical]),
            },
        ],
        status_page: true,
        two_person_rule: true,
        abort_roles: vec![],
    }
}

pub fn actor(user: &str) -> Actor {
    Actor {
        user: UserId(user.into()),
        team: Some(TeamId(TEAM.into())),
        roles: directory()
            .into_iter()
            .filter(|(_, m)| m.iter().any(|x| x == user))
            .map(|(r, _)| r)
            .collect(),
        unresolved_roles: Default::default(),
        channel: None,
    }
}

pub fn plan() -> Plan {
    let command = |argv: &[&str]| StepAction::Command {
        argv: argv.iter().map(|a| a.to_string()).collect(),
        env: BTreeMap::new(),
        workdir: None,
        timeout_secs: 120,
    };
    Plan {
        service: "checkout-api".into(),
        runbook: "kubernetes".into(),
        steps: vec![
            PlanStep::new(
                "Undo rollout",
                command(&[
                    "kubectl",
                    "rollout",
                    "undo",
                    "deployment/checkout-api",
                    "-n",
                    "prod",
                    "--to-revision=41",
                ]),
            ),
            PlanStep::new(
                "Wait for the rollout",
                command(&["kubectl", "rollout", "status", "deployment/checkout-api", "-n", "prod"]),
            ),
        ],
        fallback: None,
        params: Default::default(),
        preflight: vec![],
    }
}

/// A database runbook: a gate between code and data, then a destructive restore.
pub fn plan_with_gates() -> Plan {
    let mut plan = plan();
    plan.runbook = "database".into();
    plan.steps.push(PlanStep::new(
        "Decide on the data",
        StepAction::Gate {
            message: "Code is rolled back. Restore the database too?".into(),
        },
    ));
    plan.steps.push(PlanStep {
        confirm: Some("CONFIRM_FULL_RESTORE".into()),
        ..PlanStep::new(
            "Full restore",
            StepAction::Command {
                argv: vec![
                    "pg_restore".into(),
                    "--clean".into(),
                    "--if-exists".into(),
                    "-d".into(),
                    "shop".into(),
                    "/backups/pre.dump".into(),
                ],
                env: BTreeMap::new(),
                workdir: None,
                timeout_secs: 600,
            },
        )
    });
    plan
}

pub fn request(severity: Severity, reason: Option<&str>) -> RollbackRequest {
    RollbackRequest {
        service: "checkout-api".into(),
        runbook: "kubernetes".into(),
        target: Some("41".into()),
        params: BTreeMap::new(),
        severity,
        reason: reason.map(str::to_owned),
        requester: UserId(REQUESTER.into()),
        channel: ChannelId(CHANNEL.into()),
        team: Some(TeamId(TEAM.into())),
        drill: false,
        lock: None,
        delivery: None,
        fallback_of: None,
        detected: None,
        checklists: vec![],
        status_incident: None,
    }
}

/// A rollback built the way the engine builds one: decide, then fold the events.
#[derive(Clone)]
pub struct Story {
    pub rollback: Rollback,
    pub policy: Policy,
    /// Every event, as the store would keep it.
    pub history: Vec<Recorded>,
    minute: i64,
}

impl Story {
    pub fn requested(severity: Severity, reason: Option<&str>) -> Story {
        Story::requested_with(policy(), severity, reason)
    }

    pub fn requested_with(policy: Policy, severity: Severity, reason: Option<&str>) -> Story {
        Story::requested_plan(policy, severity, reason, plan())
    }

    /// A request for `plan` instead of the usual two steps.
    pub fn requested_plan(policy: Policy, severity: Severity, reason: Option<&str>, plan: Plan) -> Story {
        let action = Action::Request {
            request: request(severity, reason),
            plan,
        };
        let events = decide(None, &action, &actor(REQUESTER), &policy, at(0)).expect("the request is valid");
        let history: Vec<Recorded> = events
            .into_iter()
            .map(|event| Recorded {
                at: at(0),
                actor: UserId(REQUESTER.into()),
                event,
            })
            .collect();
        Story {
            rollback: Rollback::from_history(RollbackId(1), &history).unwrap(),
            policy,
            history,
            minute: 0,
        }
    }

    pub fn try_act(&mut self, who: &Actor, action: Action) -> Result<(), Refusal> {
        self.minute += 1;
        let events = decide(Some(&self.rollback), &action, who, &self.policy, at(self.minute))?;
        for event in events {
            let recorded = Recorded {
                at: at(self.minute),
                actor: who.user.clone(),
                event,
            };
            self.rollback.apply(&recorded);
            self.history.push(recorded);
        }
        Ok(())
    }

    /// Lets time pass: the next action happens at `minute` after the request.
    pub fn next_act_at(&mut self, minute: i64) {
        self.minute = minute - 1;
    }

    pub fn act(mut self, who: &Actor, action: Action) -> Story {
        self.try_act(who, action).unwrap_or_else(|r| panic!("refused: {r:?}"));
        self
    }

    /// Opens ladder levels up to `level` as their timers would.
    pub fn reach_level(&mut self, level: usize) {
        if level == 0 {
            return;
        }
        let due = self.rollback.ladder[level - 1].after_secs as i64 / 60;
        self.minute = self.minute.max(due);
        self.try_act(&Actor::system(), Action::Escalate { level })
            .expect("the level is due");
    }

    /// A high-severity request on `plan_with_gates`, approved, run to its gate (step 3) and
    /// paused there.
    pub fn paused_at_the_gate() -> Story {
        let mut story = Story::requested(Severity::High, None);
        story.rollback.plan = plan_with_gates();
        story.rollback.plan_digest = story.rollback.plan.digest();
        story
            .approved()
            .act(&Actor::system(), Action::StartRun)
            .step(0, ok_result(""))
            .step(1, ok_result(""))
            .act(&Actor::system(), Action::StartStep { index: 2 })
    }

    pub fn approved(self) -> Story {
        self.act(&actor(ON_CALL), Action::Approve)
    }

    pub fn step(self, index: usize, result: StepResult) -> Story {
        self.act(&Actor::system(), Action::StartStep { index })
            .act(&Actor::system(), Action::FinishStep { index, result })
    }
}

pub fn ok_result(output: &str) -> StepResult {
    StepResult {
        outcome: StepOutcome::Succeeded,
        exit_code: Some(0),
        duration_ms: 1234,
        output_tail: output.into(),
        detail: None,
        ..Default::default()
    }
}

pub fn failed_result(code: i32, output: &str) -> StepResult {
    StepResult {
        outcome: StepOutcome::Failed,
        exit_code: Some(code),
        duration_ms: 4321,
        output_tail: output.into(),
        detail: None,
        ..Default::default()
    }
}

pub const ALERT_GROUP: &str = "{}:{alertname=\"HighErrorRate\"}";

/// One Alertmanager notification about checkout-api, as the edge maps it: `firing` or all
/// resolved, with `alerts` alerts.
pub fn alert_group(firing: bool, alerts: usize) -> proposal::AlertGroup {
    let labels = |instance: usize| {
        BTreeMap::from([
            ("alertname".to_owned(), "HighErrorRate".to_owned()),
            ("service".to_owned(), "checkout-api".to_owned()),
            ("instance".to_owned(), format!("pod-{instance}")),
        ])
    };
    proposal::AlertGroup {
        group_key: ALERT_GROUP.into(),
        service: "checkout-api".into(),
        severity: Severity::High,
        target: Some("41".into()),
        channel: ChannelId(CHANNEL.into()),
        alerts: (1..=alerts)
            .map(|n| proposal::AlertSummary {
                name: "HighErrorRate".into(),
                firing,
                summary: Some(format!("error rate 12% on pod-{n}")),
                labels: labels(n),
                starts_at: Some(at(-10)),
                ends_at: (!firing).then(|| at(20)),
                source: Some("https://prometheus.example.com/graph?g0.expr=rate(http_5xx[5m])".into()),
            })
            .collect(),
        common_labels: BTreeMap::from([
            ("alertname".to_owned(), "HighErrorRate".to_owned()),
            ("service".to_owned(), "checkout-api".to_owned()),
        ]),
        external_url: Some("https://alertmanager.example.com".into()),
        truncated: 0,
    }
}
