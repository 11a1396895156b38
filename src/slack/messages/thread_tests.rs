//! What the thread says when it fell behind Slack's pace: messages built from others, read as
//! a person scrolling the channel reads them.
use super::*;
use crate::domain::fixtures::*;
use crate::domain::{Action, Actor, StepResult};

/// A run that went through while its thread waited: one message, the end first, then the start
/// announcement quoted as it was, then each step, then the customer notice; nothing of the
/// messages it stands for is lost.
#[test]
fn a_run_said_together_leads_with_its_end_and_keeps_every_part() {
    let story = Story::requested(crate::domain::Severity::Critical, None)
        .act(&Actor::system(), Action::StartRun)
        .step(0, ok_result("rolled back to release 40"))
        .step(1, ok_result("200 OK"));
    let link = thread_link("C0INCIDENTS", "1790000000.000001");
    let announced =
        |which: crate::templates::Announcement| announcement(&story.rollback, which, which.default_text(), &link, None);
    let results: Vec<(usize, &StepResult)> = (0..2).map(|i| (i, story.rollback.last_result(i).unwrap())).collect();
    let steps = steps_finished(&story.rollback, &results);
    let started = announced(crate::templates::Announcement::Started);
    let end = announced(crate::templates::Announcement::Succeeded);
    let notice = announced(crate::templates::Announcement::CustomerNotice);
    let together = run_said_together(end.clone(), started.clone(), Some(steps.clone()), Some(notice.clone()));
    assert!(together.text.starts_with(&end.text), "{}", together.text);
    for line in started.text.lines() {
        assert!(together.text.contains(&format!(">{line}")), "{line}");
    }
    assert!(together.text.contains(&steps.text) && together.text.ends_with(&notice.text));
    insta::assert_snapshot!(together.text);
    let bare = run_said_together(end.clone(), started, None, None);
    assert!(!bare.text.contains("Customer notice"), "{}", bare.text);
}
