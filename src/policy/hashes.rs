//! The hash rules: what a sample's PDQ list matches call for, by list action, with
//! k-of-n confirmation of borderline `cut` list matches.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Evidence, PolicyConfig, Proposal, Verdict};
use crate::signals::lists::{ListAction, ListMatch};

/// One stream's hash-rule state: the recent samples' cut-list matches.
#[derive(Debug)]
pub(super) struct HashRules {
    config: Arc<PolicyConfig>,
    /// For each of the last `confirm_window` samples, the cut lists it matched.
    recent: VecDeque<Vec<Arc<str>>>,
}

impl HashRules {
    pub(super) fn new(config: Arc<PolicyConfig>) -> Self {
        HashRules {
            recent: VecDeque::with_capacity(config.confirm_window),
            config,
        }
    }

    /// What one sample's `matches` (nearest first) call for; `None` when none matched.
    /// Ranks a confirmed cut over an alert list over an unconfirmed cut over a log list.
    pub(super) fn propose(&mut self, matches: &[ListMatch]) -> Option<Proposal> {
        let cut_lists = dedup_lists(
            matches
                .iter()
                .filter(|found| found.action == ListAction::Cut)
                .map(|found| Arc::clone(&found.list)),
        );
        if self.recent.len() == self.config.confirm_window {
            self.recent.pop_front();
        }
        self.recent.push_back(cut_lists);

        if let Some(proposal) = self.confirmed_cut(matches) {
            return Some(proposal);
        }
        let strongest = |action: ListAction| matches.iter().find(|found| found.action == action);
        if let Some(found) = strongest(ListAction::Alert) {
            return Some(proposal(
                Verdict::Alert,
                found,
                format!(
                    "alert list {} matched at distance {}",
                    found.list, found.distance
                ),
            ));
        }
        if let Some(found) = strongest(ListAction::Cut) {
            let seen = self.samples_matching(&found.list);
            return Some(awaiting_confirmation(proposal(
                Verdict::Log,
                found,
                format!(
                    "cut list {} matched at distance {} (> {}): {seen} of {} needed matches in the last {} samples",
                    found.list,
                    found.distance,
                    self.config.cut_immediately_within,
                    self.config.confirm_matches,
                    self.config.confirm_window
                ),
            )));
        }
        matches.first().map(|found| {
            proposal(
                Verdict::Log,
                found,
                format!(
                    "log list {} matched at distance {}",
                    found.list, found.distance
                ),
            )
        })
    }

    /// The first cut-list match that cuts: near enough at once, or confirmed.
    fn confirmed_cut(&self, matches: &[ListMatch]) -> Option<Proposal> {
        matches
            .iter()
            .filter(|found| found.action == ListAction::Cut)
            .find_map(|found| {
                if found.distance <= self.config.cut_immediately_within {
                    Some(proposal(
                        Verdict::Cut,
                        found,
                        format!(
                            "cut list {} matched at distance {} (≤ {}, immediate)",
                            found.list, found.distance, self.config.cut_immediately_within
                        ),
                    ))
                } else {
                    let seen = self.samples_matching(&found.list);
                    (seen >= self.config.confirm_matches).then(|| {
                        proposal(
                            Verdict::Cut,
                            found,
                            format!(
                                "cut list {} matched at distance {}, confirmed by {seen} of the last {} samples",
                                found.list,
                                found.distance,
                                self.recent.len()
                            ),
                        )
                    })
                }
            })
    }

    fn samples_matching(&self, list: &str) -> usize {
        self.recent
            .iter()
            .filter(|lists| lists.iter().any(|matched| &**matched == list))
            .count()
    }
}

fn proposal(verdict: Verdict, found: &ListMatch, reason: String) -> Proposal {
    Proposal {
        verdict,
        evidence: Evidence::Pdq(found.clone()),
        reason,
        awaiting_confirmation: false,
    }
}

fn awaiting_confirmation(proposal: Proposal) -> Proposal {
    Proposal {
        awaiting_confirmation: true,
        ..proposal
    }
}

fn dedup_lists(lists: impl Iterator<Item = Arc<str>>) -> Vec<Arc<str>> {
    let mut unique: Vec<Arc<str>> = Vec::new();
    for list in lists {
        if !unique.contains(&list) {
            unique.push(list);
        }
    }
    unique
}
