//! The descriptor rules (`[[descriptorlist]]`): what a described keyframe's list matches
//! call for. Each list judges its own matches: a `cut` list's match at
//! `cut_immediately_above` or more cuts on that keyframe (an edited copy scores 0.7 and
//! up, unrelated pictures about 0.02 ± 0.055); a weaker match (from `min_cosine` on) cuts
//! once `confirm_matches` of the list's last `confirm_window` described keyframes
//! matched. Only described keyframes move the window, so a stream described every few
//! keyframes confirms over the same number of descriptions as one described on every
//! keyframe.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Evidence, Proposal, Verdict};
use crate::descriptor::views::View;
use crate::signals::descriptor_lists::{DescriptorListConfig, DescriptorListMatch};
use crate::signals::lists::ListAction;

/// One described keyframe's signal: its list matches (the best per list) and the views
/// it was described as, which the matches' `view` index.
#[derive(Debug, Clone, Copy)]
pub struct DescriptorSignal<'a> {
    pub matches: &'a [DescriptorListMatch],
    pub views: &'a [View],
}

/// One stream's descriptor-rule state: per list, whether each of its last
/// `confirm_window` described keyframes matched.
#[derive(Debug)]
pub(super) struct DescriptorRules {
    lists: Arc<[DescriptorListConfig]>,
    recent: Vec<VecDeque<bool>>,
}

impl DescriptorRules {
    pub(super) fn new(lists: Arc<[DescriptorListConfig]>) -> Self {
        let recent = lists
            .iter()
            .map(|list| VecDeque::with_capacity(list.confirm_window))
            .collect();
        DescriptorRules { lists, recent }
    }

    /// What one described keyframe's matches call for: the strongest list's proposal;
    /// `None` when no list matched.
    pub(super) fn propose(&mut self, signal: &DescriptorSignal<'_>) -> Option<Proposal> {
        let mut strongest: Option<Proposal> = None;
        for (list, recent) in self.lists.iter().zip(&mut self.recent) {
            let found = signal
                .matches
                .iter()
                .filter(|found| *found.list == *list.name)
                .max_by(|a, b| a.score.total_cmp(&b.score));
            if recent.len() == list.confirm_window {
                recent.pop_front();
            }
            recent.push_back(found.is_some());
            let Some(found) = found else { continue };
            let seen = recent.iter().filter(|matched| **matched).count();
            let view = signal
                .views
                .get(found.view)
                .map_or("unknown", |view| view.name);
            let what = format!(
                "descriptor list {}: view {view} scored {:.3} against {}{}",
                found.list,
                found.score,
                describe_entry(found),
                if found.score >= list.cut_immediately_above {
                    format!(
                        " (at or above cut_immediately_above {})",
                        list.cut_immediately_above
                    )
                } else {
                    format!(
                        " ({seen} of {} needed in the last {} described keyframes, min_cosine {})",
                        list.confirm_matches, list.confirm_window, list.min_cosine
                    )
                }
            );
            let (verdict, reason) = match list.action {
                ListAction::Log => (Verdict::Log, what),
                ListAction::Alert => (Verdict::Alert, what),
                ListAction::Cut if found.score >= list.cut_immediately_above => {
                    (Verdict::Cut, format!("{what}: immediate cut"))
                }
                ListAction::Cut if seen >= list.confirm_matches => {
                    (Verdict::Cut, format!("{what}: confirmed"))
                }
                ListAction::Cut => (Verdict::Log, format!("{what}: awaiting confirmation")),
            };
            if strongest
                .as_ref()
                .is_none_or(|current| verdict > current.verdict)
            {
                strongest = Some(Proposal {
                    verdict,
                    evidence: Evidence::Descriptor {
                        found: found.clone(),
                        view,
                    },
                    reason,
                    awaiting_confirmation: list.action == ListAction::Cut
                        && verdict == Verdict::Log,
                });
            }
        }
        strongest
    }
}

/// The matched entry as the reason names it: its source and time, or its file line.
fn describe_entry(found: &DescriptorListMatch) -> String {
    let place = match (found.source.is_empty(), found.pts) {
        (false, Some(pts)) => format!("{} at {pts:.3} s", found.source),
        (false, None) => found.source.clone(),
        (true, _) => "an entry".to_string(),
    };
    match found.line {
        Some(line) => format!("{place} (line {line})"),
        None => format!("{place} (added at run time)"),
    }
}
