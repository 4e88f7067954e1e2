//! Signals → verdict. Per stream, turns each analysed sample's list matches into what
//! should happen: nothing, log, alert, or cut — with confirmation, shadow mode and an
//! allowlist, because a false cut takes a real broadcaster off the air.
//!
//! Confirmation: a match on a `cut` list at a distance within `cut_immediately_within`
//! cuts on that one sample (near-identical footage); a match nearer the list's threshold
//! cuts only once `confirm_matches` of the last `confirm_window` samples matched that
//! list, so one borderline keyframe never ends a broadcast.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

use crate::signals::lists::{ListAction, ListMatch};

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Cuts happen.
    Enforce,
    /// Everything is analysed and audited; what would be cut is recorded as
    /// `shadow_cut` and the stream keeps flowing.
    Shadow,
}

/// What to do when analysis cannot keep up with a stream (its samples are shed).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OverloadMode {
    /// Keep the stream, shed samples, alert.
    Open,
    /// Cut a stream that has gone `max_unanalysed_ms` without an analysed keyframe
    /// while keyframes kept arriving.
    Closed,
}

/// `[policy]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default = "defaults::mode")]
    pub mode: PolicyMode,
    /// A cut-list match at this Hamming distance or less cuts on one sample.
    #[serde(default = "defaults::cut_immediately_within")]
    pub cut_immediately_within: u32,
    /// Farther matches cut once this many of the last `confirm_window` samples matched.
    #[serde(default = "defaults::confirm_matches")]
    pub confirm_matches: usize,
    #[serde(default = "defaults::confirm_window")]
    pub confirm_window: usize,
    /// Apps whose streams are reviewed, never cut (matches become alerts).
    #[serde(default)]
    pub allow_apps: Vec<String>,
    /// Stream keys never cut, by fingerprint: the 16 hex digits livegate logs after `#`
    /// (the start of the key's SHA-256), so the allowlist holds no secrets.
    #[serde(default)]
    pub allow_key_fingerprints: Vec<String>,
    #[serde(default = "defaults::on_overload")]
    pub on_overload: OverloadMode,
    /// With `on_overload = "closed"`: how long a stream may go unanalysed.
    #[serde(default = "defaults::max_unanalysed_ms")]
    pub max_unanalysed_ms: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            mode: defaults::mode(),
            cut_immediately_within: defaults::cut_immediately_within(),
            confirm_matches: defaults::confirm_matches(),
            confirm_window: defaults::confirm_window(),
            allow_apps: Vec::new(),
            allow_key_fingerprints: Vec::new(),
            on_overload: defaults::on_overload(),
            max_unanalysed_ms: defaults::max_unanalysed_ms(),
        }
    }
}

mod defaults {
    use super::{OverloadMode, PolicyMode};

    pub fn mode() -> PolicyMode {
        PolicyMode::Enforce
    }
    pub fn cut_immediately_within() -> u32 {
        20
    }
    pub fn confirm_matches() -> usize {
        2
    }
    pub fn confirm_window() -> usize {
        3
    }
    pub fn on_overload() -> OverloadMode {
        OverloadMode::Open
    }
    pub fn max_unanalysed_ms() -> u64 {
        10_000
    }
}

impl PolicyConfig {
    /// Checks ranges; the error is `(key, message)` for the config's error type.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let invalid =
            |key: &str, message: &str| Err((format!("policy.{key}"), message.to_string()));
        if self.confirm_window == 0 || self.confirm_window > 64 {
            return invalid("confirm_window", "must be between 1 and 64");
        }
        if self.confirm_matches == 0 || self.confirm_matches > self.confirm_window {
            return invalid(
                "confirm_matches",
                "must be between 1 and policy.confirm_window",
            );
        }
        if self.cut_immediately_within > 64 {
            return invalid("cut_immediately_within", "must be at most 64");
        }
        if let Some(bad) = self.allow_key_fingerprints.iter().find(|fingerprint| {
            fingerprint.len() != 16 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit())
        }) {
            return Err((
                "policy.allow_key_fingerprints".into(),
                format!("{bad:?} is not a key fingerprint (16 hex digits, as logged after '#')"),
            ));
        }
        if self.max_unanalysed_ms == 0 {
            return invalid("max_unanalysed_ms", "must be greater than 0");
        }
        Ok(())
    }

    /// Whether a stream of `app` with this key fingerprint is allowlisted.
    pub fn allows(&self, app: &str, key_fingerprint: Option<&str>) -> bool {
        self.allow_apps.iter().any(|allowed| allowed == app)
            || key_fingerprint.is_some_and(|fingerprint| {
                self.allow_key_fingerprints
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(fingerprint))
            })
    }
}

/// What the policy decided for one sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No list matched.
    Clear,
    /// Matches to record only (`log` lists, or a `cut` list awaiting confirmation).
    Log,
    /// Matches someone should review now (`alert` lists, allowlisted would-be cuts).
    Alert,
    /// Shadow mode: this would have been cut.
    ShadowCut,
    Cut,
}

/// The verdict with its evidence: the decisive match and why it decided so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub evidence: Option<ListMatch>,
    pub reason: String,
}

/// One stream's policy state: the recent samples' cut-list matches.
#[derive(Debug)]
pub struct StreamPolicy {
    config: Arc<PolicyConfig>,
    allowlisted: bool,
    /// For each of the last `confirm_window` samples, the cut lists it matched.
    recent: VecDeque<Vec<Arc<str>>>,
}

impl StreamPolicy {
    pub fn new(config: Arc<PolicyConfig>, app: &str, key_fingerprint: Option<&str>) -> Self {
        let allowlisted = config.allows(app, key_fingerprint);
        let window = config.confirm_window;
        StreamPolicy {
            config,
            allowlisted,
            recent: VecDeque::with_capacity(window),
        }
    }

    pub fn is_allowlisted(&self) -> bool {
        self.allowlisted
    }

    /// Decides on one analysed sample; `matches` are its list matches, nearest first.
    pub fn decide(&mut self, matches: &[ListMatch]) -> Decision {
        let cut_lists: Vec<Arc<str>> = dedup_lists(
            matches
                .iter()
                .filter(|found| found.action == ListAction::Cut)
                .map(|found| Arc::clone(&found.list)),
        );
        if self.recent.len() == self.config.confirm_window {
            self.recent.pop_front();
        }
        self.recent.push_back(cut_lists);

        if let Some(decision) = self.cut_decision(matches) {
            return decision;
        }
        let strongest = |action: ListAction| matches.iter().find(|found| found.action == action);
        if let Some(found) = strongest(ListAction::Alert) {
            return Decision {
                verdict: Verdict::Alert,
                evidence: Some(found.clone()),
                reason: format!(
                    "alert list {} matched at distance {}",
                    found.list, found.distance
                ),
            };
        }
        if let Some(found) = strongest(ListAction::Cut) {
            let seen = self.samples_matching(&found.list);
            return Decision {
                verdict: Verdict::Log,
                evidence: Some(found.clone()),
                reason: format!(
                    "cut list {} matched at distance {} (> {}): {seen} of {} needed matches in the last {} samples",
                    found.list,
                    found.distance,
                    self.config.cut_immediately_within,
                    self.config.confirm_matches,
                    self.config.confirm_window
                ),
            };
        }
        match matches.first() {
            Some(found) => Decision {
                verdict: Verdict::Log,
                evidence: Some(found.clone()),
                reason: format!(
                    "log list {} matched at distance {}",
                    found.list, found.distance
                ),
            },
            None => Decision {
                verdict: Verdict::Clear,
                evidence: None,
                reason: "no match".into(),
            },
        }
    }

    /// A confirmed cut-list match, turned into Cut, ShadowCut or (allowlisted) Alert.
    fn cut_decision(&self, matches: &[ListMatch]) -> Option<Decision> {
        let confirmed = matches
            .iter()
            .filter(|found| found.action == ListAction::Cut)
            .find_map(|found| {
                if found.distance <= self.config.cut_immediately_within {
                    Some((
                        found,
                        format!(
                            "cut list {} matched at distance {} (≤ {}, immediate)",
                            found.list, found.distance, self.config.cut_immediately_within
                        ),
                    ))
                } else {
                    let seen = self.samples_matching(&found.list);
                    (seen >= self.config.confirm_matches).then(|| {
                        (
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
            })?;
        let (found, reason) = confirmed;
        let (verdict, reason) = if self.allowlisted {
            (
                Verdict::Alert,
                format!("{reason}; allowlisted stream, not cut"),
            )
        } else if self.config.mode == PolicyMode::Shadow {
            (
                Verdict::ShadowCut,
                format!("{reason}; shadow mode, not cut"),
            )
        } else {
            (Verdict::Cut, reason)
        };
        Some(Decision {
            verdict,
            evidence: Some(found.clone()),
            reason,
        })
    }

    fn samples_matching(&self, list: &str) -> usize {
        self.recent
            .iter()
            .filter(|lists| lists.iter().any(|matched| &**matched == list))
            .count()
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

#[cfg(test)]
mod tests {
    use super::*;
    use livegate_signals::hash256::Hash256;

    fn found(list: &str, action: ListAction, distance: u32) -> ListMatch {
        ListMatch {
            list: Arc::from(list),
            action,
            list_version: 1,
            variant: 0,
            hash: Hash256::from_bytes([7; 32]),
            distance,
            quality: Some(100),
            line: Some(1),
            fields: String::new(),
        }
    }

    fn policy(config: PolicyConfig) -> StreamPolicy {
        StreamPolicy::new(Arc::new(config), "live", Some("0123456789abcdef"))
    }

    #[test]
    fn a_near_identical_match_cuts_at_once() {
        let mut policy = policy(PolicyConfig::default());
        let decision = policy.decide(&[found("known", ListAction::Cut, 3)]);
        assert_eq!(decision.verdict, Verdict::Cut);
        assert!(decision.reason.contains("immediate"), "{}", decision.reason);
    }

    #[test]
    fn a_borderline_match_needs_confirmation() {
        let mut policy = policy(PolicyConfig::default());
        assert_eq!(
            policy
                .decide(&[found("known", ListAction::Cut, 28)])
                .verdict,
            Verdict::Log
        );
        assert_eq!(policy.decide(&[]).verdict, Verdict::Clear);
        let decision = policy.decide(&[found("known", ListAction::Cut, 29)]);
        assert_eq!(decision.verdict, Verdict::Cut, "{}", decision.reason);
        assert!(
            decision.reason.contains("confirmed by 2"),
            "{}",
            decision.reason
        );
    }

    #[test]
    fn confirmation_expires_outside_the_window() {
        let mut policy = policy(PolicyConfig::default());
        policy.decide(&[found("known", ListAction::Cut, 28)]);
        policy.decide(&[]);
        policy.decide(&[]);
        assert_eq!(
            policy
                .decide(&[found("known", ListAction::Cut, 28)])
                .verdict,
            Verdict::Log
        );
    }

    #[test]
    fn confirmation_counts_per_list() {
        let mut policy = policy(PolicyConfig::default());
        policy.decide(&[found("a", ListAction::Cut, 28)]);
        let decision = policy.decide(&[found("b", ListAction::Cut, 28)]);
        assert_eq!(decision.verdict, Verdict::Log);
    }

    #[test]
    fn shadow_mode_never_cuts() {
        let mut policy = policy(PolicyConfig {
            mode: PolicyMode::Shadow,
            ..PolicyConfig::default()
        });
        let decision = policy.decide(&[found("known", ListAction::Cut, 0)]);
        assert_eq!(decision.verdict, Verdict::ShadowCut);
    }

    #[test]
    fn allowlisted_streams_are_alerted_not_cut() {
        for config in [
            PolicyConfig {
                allow_apps: vec!["live".into()],
                ..PolicyConfig::default()
            },
            PolicyConfig {
                allow_key_fingerprints: vec!["0123456789ABCDEF".into()],
                ..PolicyConfig::default()
            },
        ] {
            let mut policy = policy(config);
            assert!(policy.is_allowlisted());
            let decision = policy.decide(&[found("known", ListAction::Cut, 0)]);
            assert_eq!(decision.verdict, Verdict::Alert);
            assert!(decision.reason.contains("allowlisted"));
        }
    }

    #[test]
    fn list_actions_rank_cut_over_alert_over_log() {
        let mut policy = policy(PolicyConfig::default());
        let matches = [
            found("logged", ListAction::Log, 1),
            found("alerting", ListAction::Alert, 2),
            found("cutting", ListAction::Cut, 5),
        ];
        assert_eq!(policy.decide(&matches).verdict, Verdict::Cut);
        let decision = policy.decide(&matches[..2]);
        assert_eq!(decision.verdict, Verdict::Alert);
        assert_eq!(
            decision.evidence.map(|found| found.list),
            Some(Arc::from("alerting"))
        );
        assert_eq!(policy.decide(&matches[..1]).verdict, Verdict::Log);
    }

    #[test]
    fn validation_names_the_key() {
        let bad = [
            PolicyConfig {
                confirm_window: 0,
                ..PolicyConfig::default()
            },
            PolicyConfig {
                confirm_matches: 5,
                ..PolicyConfig::default()
            },
            PolicyConfig {
                allow_key_fingerprints: vec!["the-key-itself".into()],
                ..PolicyConfig::default()
            },
        ];
        let keys: Vec<String> = bad
            .iter()
            .map(|config| {
                config
                    .validate()
                    .err()
                    .map(|(key, _)| key)
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            keys,
            [
                "policy.confirm_window",
                "policy.confirm_matches",
                "policy.allow_key_fingerprints"
            ]
        );
        assert!(PolicyConfig::default().validate().is_ok());
    }
}
