//! Boxes ticked on a post-incident checklist: each change on the record, then the message
//! redrawn for everyone.
use super::*;
use crate::slack::inbound::BoxesTicked;
use crate::slack::wire::ChecklistBoxes;

pub(super) async fn handle_ticks(state: &HttpState, ticks: BoxesTicked) -> Response {
    let engine = &state.engine;
    // Answered where the boxes are, like a click.
    let click = ButtonClick {
        team_id: ticks.team_id.clone(),
        user_id: ticks.user_id.clone(),
        channel_id: ticks.channel_id.clone(),
        action_id: ticks.action_id.clone(),
        value: String::new(),
        trigger_id: None,
    };
    let answer = |text: String| answer_to(&click, text);
    let outcome: anyhow::Result<()> = async {
        let boxes = ChecklistBoxes::decode(&ticks.action_id);
        let ticked = ChecklistBoxes::decode_ticked(&ticks.ticked);
        let (Some(boxes), Some(ticked)) = (boxes, ticked) else {
            return engine.tell(&[answer(messages::unknown_button().text)]).await;
        };
        let actor = clicker(state, &click).await;
        match engine
            .tick_checklist(
                boxes.rollback,
                boxes.checklist,
                boxes.section,
                ticked,
                &actor,
                &ticks.message_ts,
            )
            .await?
        {
            Ok(_) => Ok(()),
            Err(refusal) => engine.tell(&[answer(messages::refusal(&refusal).text)]).await,
        }
    }
    .await;
    answered(engine, &click, outcome).await
}
