//! The classifier rules (`[[classifier.rule]]`): what a classified picture's label
//! scores call for, each rule confirming k of its last n classified samples.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Evidence, Proposal, Verdict};
use crate::signals::classifier::{ClassifierConfig, LabelScore, RuleAction};

/// One stream's classifier-rule state: for each rule, whether it fired on each of its
/// last `confirm_window` classified samples.
#[derive(Debug)]
pub(super) struct ClassifierRules {
    config: Arc<ClassifierConfig>,
    recent: Vec<VecDeque<bool>>,
}

impl ClassifierRules {
    pub(super) fn new(config: Arc<ClassifierConfig>) -> Self {
        let recent = config
            .rules
            .iter()
            .map(|rule| VecDeque::with_capacity(rule.confirm_window))
            .collect();
        ClassifierRules { config, recent }
    }

    /// What one picture's scores call for: the strongest rule that fired; `None` when
    /// none did.
    pub(super) fn propose(&mut self, scores: &[LabelScore]) -> Option<Proposal> {
        let mut strongest: Option<Proposal> = None;
        for (rule, recent) in self.config.rules.iter().zip(&mut self.recent) {
            let best = scores
                .iter()
                .filter(|found| *found.label == *rule.label)
                .max_by(|a, b| a.score.total_cmp(&b.score));
            let fired = best.filter(|found| found.score >= rule.threshold);
            if recent.len() == rule.confirm_window {
                recent.pop_front();
            }
            recent.push_back(fired.is_some());
            let Some(found) = fired else { continue };
            let seen = recent.iter().filter(|fired| **fired).count();
            let what = format!(
                "classifier label {} scored {:.3} (threshold {}, {seen} of {} needed in the last {} samples)",
                found.label, found.score, rule.threshold, rule.confirm_matches, rule.confirm_window
            );
            let awaiting = rule.action == RuleAction::Cut && seen < rule.confirm_matches;
            let (verdict, reason) = match rule.action {
                _ if seen < rule.confirm_matches => {
                    (Verdict::Log, format!("{what}: awaiting confirmation"))
                }
                RuleAction::Log => (Verdict::Log, what),
                RuleAction::Alert => (Verdict::Alert, what),
                RuleAction::Cut => (Verdict::Cut, what),
            };
            if strongest
                .as_ref()
                .is_none_or(|current| verdict > current.verdict)
            {
                strongest = Some(Proposal {
                    verdict,
                    evidence: Evidence::Classifier {
                        label: Arc::clone(&found.label),
                        score: found.score,
                        bbox: found.bbox,
                    },
                    reason,
                    awaiting_confirmation: awaiting,
                });
            }
        }
        strongest
    }
}
