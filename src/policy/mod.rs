//! Signals → one verdict. Per stream, each rule set proposes what a sample's signals
//! call for — [`hashes`] for PDQ list matches, [`descriptor`] for descriptor list
//! matches, [`classifier`] for classifier scores —
//! the strongest proposal wins (cut over alert over log), and then one tail applies to
//! whichever signal decided: an allowlisted stream's cut becomes an alert, shadow mode's
//! a `shadow_cut`, because a false cut takes a real broadcaster off the air.
//!
//! Confirmation (per rule set): a match on a `cut` list at a distance within
//! `cut_immediately_within` cuts on that one sample (near-identical footage); a match
//! nearer the list's threshold cuts only once `confirm_matches` of the last
//! `confirm_window` samples matched that list, so one borderline keyframe never ends a
//! broadcast. Descriptor lists (per list: `cut_immediately_above`, then k of n described
//! keyframes) and classifier rules (k of n classified samples) confirm the same way.
//!
//! Gate mode never releases a keyframe that matched a cut-action list or rule, and
//! release is in order, so it cannot wait for later samples to confirm: on a gated
//! stream a cut awaiting confirmation cuts at once. The allowlist and shadow mode still
//! apply after that (an alert, a `shadow_cut`: released and audited).

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::config::InvalidKey;
use crate::signals::classifier::{ClassifierConfig, LabelScore};
use crate::signals::descriptor_lists::{DescriptorListConfig, DescriptorListMatch};
use crate::signals::lists::ListMatch;

pub mod allowlist;
mod classifier;
mod descriptor;
mod hashes;

pub use allowlist::RuntimeAllowlist;
use classifier::ClassifierRules;
use descriptor::DescriptorRules;
pub use descriptor::DescriptorSignal;
use hashes::HashRules;

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
    pub fn validate(&self) -> Result<(), InvalidKey> {
        let invalid = |key: &str, message: &str| {
            Err(InvalidKey::new(
                format!("policy.{key}"),
                message.to_string(),
            ))
        };
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
            return Err(InvalidKey::new(
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// No signal called for anything.
    Clear,
    /// Matches to record only (`log` lists and rules, or a cut awaiting confirmation).
    Log,
    /// Matches someone should review now (`alert` lists and rules, allowlisted
    /// would-be cuts).
    Alert,
    /// Shadow mode: this would have been cut.
    ShadowCut,
    Cut,
}

/// The signal that decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Evidence {
    /// A PDQ list match.
    Pdq(ListMatch),
    /// A classifier label's score, with its box for a detection model.
    Classifier {
        label: Arc<str>,
        score: f32,
        bbox: Option<[f32; 4]>,
    },
    /// A descriptor list match, with the name of the view that matched.
    Descriptor {
        found: DescriptorListMatch,
        view: &'static str,
    },
}

/// The verdict with its evidence: the decisive signal and why it decided so.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    pub evidence: Option<Evidence>,
    pub reason: String,
}

/// What one rule set calls for, before the allowlist and shadow mode: `Cut` here means
/// a confirmed cut rule fired.
#[derive(Debug, Clone, PartialEq)]
struct Proposal {
    verdict: Verdict,
    evidence: Evidence,
    reason: String,
    /// A cut rule fired but awaits confirmation (`verdict` is `Log`).
    awaiting_confirmation: bool,
}

/// One sample's signals. A signal that was not computed for this sample is `None` (the
/// classifier and the descriptor run on every nth sample, on their own threads), so its
/// rules' confirmation windows do not move; `Some(&[])` means computed, nothing found. A
/// new signal is a new field here and a rule set beside [`hashes`], [`descriptor`] and
/// [`classifier`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Signals<'a> {
    /// PDQ list matches, nearest first.
    pub pdq: Option<&'a [ListMatch]>,
    /// Classifier scores of the sample's picture.
    pub classifier: Option<&'a [LabelScore]>,
    /// Descriptor list matches of the sample's views.
    pub descriptor: Option<DescriptorSignal<'a>>,
}

impl<'a> Signals<'a> {
    pub fn pdq(matches: &'a [ListMatch]) -> Self {
        Signals {
            pdq: Some(matches),
            ..Signals::default()
        }
    }

    pub fn classifier(scores: &'a [LabelScore]) -> Self {
        Signals {
            classifier: Some(scores),
            ..Signals::default()
        }
    }

    pub fn descriptor(signal: DescriptorSignal<'a>) -> Self {
        Signals {
            descriptor: Some(signal),
            ..Signals::default()
        }
    }
}

/// The rule sets a stream's policy is made of, beside the hash lists' (which are always
/// there): the classifier's rules and the descriptor lists, when configured.
#[derive(Debug, Clone, Default)]
pub struct SignalRules {
    pub classifier: Option<Arc<ClassifierConfig>>,
    /// `[[descriptorlist]]`; empty without `[descriptor]`.
    pub descriptor_lists: Arc<[DescriptorListConfig]>,
    /// Keys allowlisted at run time (from the review console), consulted at every
    /// decision.
    pub allowlist: Arc<RuntimeAllowlist>,
}

/// One stream's policy: every rule set's state and the stream's allowlisting.
#[derive(Debug)]
pub struct StreamPolicy {
    config: Arc<PolicyConfig>,
    /// Allowlisted by the config (`allow_apps`, `allow_key_fingerprints`).
    allowlisted: bool,
    /// The key, looked up in the run-time allowlist at each decision.
    key_fingerprint: Option<String>,
    runtime_allowlist: Arc<RuntimeAllowlist>,
    hashes: HashRules,
    classifier: Option<ClassifierRules>,
    descriptor: DescriptorRules,
    /// Gate mode: a cut awaiting confirmation cuts.
    gated: bool,
}

impl StreamPolicy {
    pub fn new(
        config: Arc<PolicyConfig>,
        rules: &SignalRules,
        app: &str,
        key_fingerprint: Option<&str>,
    ) -> Self {
        StreamPolicy {
            allowlisted: config.allows(app, key_fingerprint),
            key_fingerprint: key_fingerprint.map(str::to_string),
            runtime_allowlist: Arc::clone(&rules.allowlist),
            hashes: HashRules::new(Arc::clone(&config)),
            classifier: rules.classifier.clone().map(ClassifierRules::new),
            descriptor: DescriptorRules::new(Arc::clone(&rules.descriptor_lists)),
            config,
            gated: false,
        }
    }

    /// A gated stream's policy (gate mode): cuts need no confirmation.
    pub fn gated(self, gated: bool) -> Self {
        StreamPolicy { gated, ..self }
    }

    /// Allowlisted by the config or, now, at run time.
    pub fn is_allowlisted(&self) -> bool {
        self.allowlisted
            || self
                .key_fingerprint
                .as_deref()
                .is_some_and(|key| self.runtime_allowlist.contains(key))
    }

    /// Decides on one sample's signals.
    pub fn decide(&mut self, signals: &Signals<'_>) -> Decision {
        let hashes = signals.pdq.and_then(|matches| self.hashes.propose(matches));
        let classifier = match (&mut self.classifier, signals.classifier) {
            (Some(rules), Some(scores)) => rules.propose(scores),
            _ => None,
        };
        let descriptor = signals
            .descriptor
            .and_then(|signal| self.descriptor.propose(&signal));
        // The strongest proposal wins; on a tie the first (hashes, then descriptors, then
        // the classifier: the more specific signal is the better evidence).
        let strongest = [hashes, descriptor, classifier]
            .into_iter()
            .flatten()
            .reduce(|best, next| {
                if next.verdict > best.verdict {
                    next
                } else {
                    best
                }
            });
        match strongest {
            Some(proposal) => self.tail(proposal),
            None => Decision {
                verdict: Verdict::Clear,
                evidence: None,
                reason: "no match".into(),
            },
        }
    }

    /// The one allowlist and shadow-mode tail, whatever signal proposed the cut.
    fn tail(&self, proposal: Proposal) -> Decision {
        let Proposal {
            verdict,
            evidence,
            reason,
            awaiting_confirmation,
        } = proposal;
        let (verdict, reason) = if self.gated && awaiting_confirmation {
            (
                Verdict::Cut,
                format!("{reason}; gate mode cuts without confirmation"),
            )
        } else {
            (verdict, reason)
        };
        let (verdict, reason) = match verdict {
            Verdict::Cut if self.is_allowlisted() => (
                Verdict::Alert,
                format!("{reason}; allowlisted stream, not cut"),
            ),
            Verdict::Cut if self.config.mode == PolicyMode::Shadow => (
                Verdict::ShadowCut,
                format!("{reason}; shadow mode, not cut"),
            ),
            verdict => (verdict, reason),
        };
        Decision {
            verdict,
            evidence: Some(evidence),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::lists::ListAction;
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
        StreamPolicy::new(
            Arc::new(config),
            &SignalRules::default(),
            "live",
            Some("0123456789abcdef"),
        )
    }

    #[test]
    fn a_near_identical_match_cuts_at_once() {
        let mut policy = policy(PolicyConfig::default());
        let decision = policy.decide(&Signals::pdq(&[found("known", ListAction::Cut, 3)]));
        assert_eq!(decision.verdict, Verdict::Cut);
        assert!(decision.reason.contains("immediate"), "{}", decision.reason);
    }

    #[test]
    fn a_borderline_match_needs_confirmation() {
        let mut policy = policy(PolicyConfig::default());
        assert_eq!(
            policy
                .decide(&Signals::pdq(&[found("known", ListAction::Cut, 28)]))
                .verdict,
            Verdict::Log
        );
        assert_eq!(policy.decide(&Signals::pdq(&[])).verdict, Verdict::Clear);
        let decision = policy.decide(&Signals::pdq(&[found("known", ListAction::Cut, 29)]));
        assert_eq!(decision.verdict, Verdict::Cut, "{}", decision.reason);
        assert!(
            decision.reason.contains("confirmed by 2"),
            "{}",
            decision.reason
        );
    }

    #[test]
    fn a_gated_stream_cuts_without_confirmation_unless_shadowed() {
        let borderline = [found("known", ListAction::Cut, 28)];
        let decision = policy(PolicyConfig::default())
            .gated(true)
            .decide(&Signals::pdq(&borderline));
        assert_eq!(decision.verdict, Verdict::Cut, "{}", decision.reason);
        assert!(
            decision
                .reason
                .contains("gate mode cuts without confirmation"),
            "{}",
            decision.reason
        );
        // An alert list is not a cut list: it stays an alert.
        let alert = [found("watch", ListAction::Alert, 28)];
        let decision = policy(PolicyConfig::default())
            .gated(true)
            .decide(&Signals::pdq(&alert));
        assert_eq!(decision.verdict, Verdict::Alert);
        let shadow = PolicyConfig {
            mode: PolicyMode::Shadow,
            ..PolicyConfig::default()
        };
        let decision = policy(shadow)
            .gated(true)
            .decide(&Signals::pdq(&borderline));
        assert_eq!(decision.verdict, Verdict::ShadowCut, "{}", decision.reason);
    }

    #[test]
    fn confirmation_expires_outside_the_window() {
        let mut policy = policy(PolicyConfig::default());
        policy.decide(&Signals::pdq(&[found("known", ListAction::Cut, 28)]));
        policy.decide(&Signals::pdq(&[]));
        policy.decide(&Signals::pdq(&[]));
        assert_eq!(
            policy
                .decide(&Signals::pdq(&[found("known", ListAction::Cut, 28)]))
                .verdict,
            Verdict::Log
        );
    }

    #[test]
    fn confirmation_counts_per_list() {
        let mut policy = policy(PolicyConfig::default());
        policy.decide(&Signals::pdq(&[found("a", ListAction::Cut, 28)]));
        let decision = policy.decide(&Signals::pdq(&[found("b", ListAction::Cut, 28)]));
        assert_eq!(decision.verdict, Verdict::Log);
    }

    #[test]
    fn shadow_mode_never_cuts() {
        let mut policy = policy(PolicyConfig {
            mode: PolicyMode::Shadow,
            ..PolicyConfig::default()
        });
        let decision = policy.decide(&Signals::pdq(&[found("known", ListAction::Cut, 0)]));
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
            let decision = policy.decide(&Signals::pdq(&[found("known", ListAction::Cut, 0)]));
            assert_eq!(decision.verdict, Verdict::Alert);
            assert!(decision.reason.contains("allowlisted"));
        }
    }

    #[test]
    fn the_runtime_allowlist_applies_to_live_and_new_streams() {
        let allowlist = Arc::new(RuntimeAllowlist::default());
        let rules = SignalRules {
            allowlist: Arc::clone(&allowlist),
            ..SignalRules::default()
        };
        let config = Arc::new(PolicyConfig {
            cut_immediately_within: 64,
            ..PolicyConfig::default()
        });
        let new_policy = || {
            StreamPolicy::new(
                Arc::clone(&config),
                &rules,
                "live",
                Some("0123456789abcdef"),
            )
        };
        let cut = [found("known", ListAction::Cut, 0)];
        let mut live = new_policy();
        assert_eq!(live.decide(&Signals::pdq(&cut)).verdict, Verdict::Cut);
        allowlist
            .add(allowlist::AllowlistEntry {
                key_fingerprint: "0123456789abcdef".into(),
                actor: "alice".into(),
                time: String::new(),
                reason: "our own channel".into(),
                evidence: None,
            })
            .expect("room");
        // The live stream's next decision and a new stream's both see the entry.
        assert_eq!(live.decide(&Signals::pdq(&cut)).verdict, Verdict::Alert);
        assert_eq!(
            new_policy().decide(&Signals::pdq(&cut)).verdict,
            Verdict::Alert
        );
        assert!(allowlist.remove("0123456789abcdef").is_some());
        assert_eq!(live.decide(&Signals::pdq(&cut)).verdict, Verdict::Cut);
    }

    #[test]
    fn list_actions_rank_cut_over_alert_over_log() {
        let mut policy = policy(PolicyConfig::default());
        let matches = [
            found("logged", ListAction::Log, 1),
            found("alerting", ListAction::Alert, 2),
            found("cutting", ListAction::Cut, 5),
        ];
        assert_eq!(policy.decide(&Signals::pdq(&matches)).verdict, Verdict::Cut);
        let decision = policy.decide(&Signals::pdq(&matches[..2]));
        assert_eq!(decision.verdict, Verdict::Alert);
        assert!(
            matches!(&decision.evidence, Some(Evidence::Pdq(found)) if &*found.list == "alerting"),
            "{decision:?}"
        );
        assert_eq!(
            policy.decide(&Signals::pdq(&matches[..1])).verdict,
            Verdict::Log
        );
    }

    fn classifier_rules() -> Arc<ClassifierConfig> {
        let text = "model = \"m.onnx\"\ninput_size = [4, 2]\nlabels = [\"a\", \"b\"]\n\
                    [[rule]]\nlabel = \"a\"\nthreshold = 0.5\naction = \"cut\"\nconfirm_matches = 2\nconfirm_window = 3\n\
                    [[rule]]\nlabel = \"b\"\nthreshold = 0.7\n";
        Arc::new(toml::from_str(text).expect("classifier config"))
    }

    fn score(label: &str, score: f32) -> LabelScore {
        LabelScore {
            label: Arc::from(label),
            score,
            bbox: None,
        }
    }

    fn with_classifier(config: PolicyConfig) -> StreamPolicy {
        StreamPolicy::new(
            Arc::new(config),
            &SignalRules {
                classifier: Some(classifier_rules()),
                ..SignalRules::default()
            },
            "live",
            Some("0123456789abcdef"),
        )
    }

    fn classified(policy: &mut StreamPolicy, scores: &[LabelScore]) -> Decision {
        policy.decide(&Signals::classifier(scores))
    }

    #[test]
    fn classifier_rules_confirm_k_of_n() {
        let mut policy = with_classifier(PolicyConfig::default());
        let clear = classified(&mut policy, &[score("a", 0.4), score("b", 0.69)]);
        assert_eq!((clear.verdict, clear.evidence), (Verdict::Clear, None));
        let first = classified(&mut policy, &[score("a", 0.6)]);
        assert_eq!(first.verdict, Verdict::Log, "{}", first.reason);
        assert!(first.reason.contains("awaiting confirmation"));
        let alert = classified(&mut policy, &[score("b", 0.7)]);
        assert_eq!(alert.verdict, Verdict::Alert);
        assert!(
            matches!(&alert.evidence, Some(Evidence::Classifier { label, .. }) if &**label == "b")
        );
        // Samples 2..4: a fired in sample 2 and 4 — confirmed, and cut outranks b's alert.
        let cut = classified(&mut policy, &[score("a", 0.55), score("b", 0.9)]);
        assert_eq!(cut.verdict, Verdict::Cut, "{}", cut.reason);
        assert_eq!(
            cut.evidence,
            Some(Evidence::Classifier {
                label: Arc::from("a"),
                score: 0.55,
                bbox: None
            })
        );
    }

    #[test]
    fn one_tail_applies_to_hash_and_classifier_cuts() {
        let shadow = PolicyConfig {
            mode: PolicyMode::Shadow,
            ..PolicyConfig::default()
        };
        let allowlisted = PolicyConfig {
            allow_apps: vec!["live".into()],
            ..PolicyConfig::default()
        };
        for (config, verdict, wording) in [
            (shadow, Verdict::ShadowCut, "; shadow mode, not cut"),
            (allowlisted, Verdict::Alert, "; allowlisted stream, not cut"),
        ] {
            let mut policy = with_classifier(config);
            let hash = policy.decide(&Signals::pdq(&[found("known", ListAction::Cut, 0)]));
            assert_eq!(hash.verdict, verdict);
            assert!(hash.reason.ends_with(wording), "{}", hash.reason);
            classified(&mut policy, &[score("a", 0.9)]);
            let model = classified(&mut policy, &[score("a", 0.9)]);
            assert_eq!(model.verdict, verdict);
            assert!(model.reason.ends_with(wording), "{}", model.reason);
        }
    }

    #[test]
    fn hash_and_classifier_rules_share_one_stream_policy_without_moving_each_other() {
        let mut policy = with_classifier(PolicyConfig::default());
        // A borderline cut-list match, then classifier samples, then the confirming
        // match: the classifier's samples do not push the first one out of the window.
        let first = policy.decide(&Signals::pdq(&[found("known", ListAction::Cut, 28)]));
        assert_eq!(first.verdict, Verdict::Log);
        for _ in 0..3 {
            classified(&mut policy, &[score("b", 0.1)]);
        }
        let second = policy.decide(&Signals::pdq(&[found("known", ListAction::Cut, 28)]));
        assert_eq!(second.verdict, Verdict::Cut, "{}", second.reason);
        // Both signals in one sample: the stronger proposal wins.
        let both = policy.decide(&Signals {
            pdq: Some(&[found("logged", ListAction::Log, 1)]),
            classifier: Some(&[score("b", 0.8)]),
            descriptor: None,
        });
        assert_eq!(both.verdict, Verdict::Alert);
        assert!(matches!(both.evidence, Some(Evidence::Classifier { .. })));
    }

    fn descriptor_list(name: &str, action: ListAction) -> DescriptorListConfig {
        DescriptorListConfig {
            action,
            ..DescriptorListConfig::new(name, std::path::Path::new("list.txt"))
        }
    }

    fn with_descriptor_lists(config: PolicyConfig) -> StreamPolicy {
        StreamPolicy::new(
            Arc::new(config),
            &SignalRules {
                descriptor_lists: vec![
                    descriptor_list("footage", ListAction::Cut),
                    descriptor_list("review", ListAction::Alert),
                ]
                .into(),
                ..SignalRules::default()
            },
            "live",
            Some("0123456789abcdef"),
        )
    }

    fn described(list: &str, view: usize, score: f32) -> DescriptorListMatch {
        DescriptorListMatch {
            list: Arc::from(list),
            action: ListAction::Cut,
            list_version: 1,
            view,
            score,
            source: "original.mp4".into(),
            pts: Some(12.5),
            label: "case 7".into(),
            line: Some(4),
        }
    }

    fn describe(policy: &mut StreamPolicy, matches: &[DescriptorListMatch]) -> Decision {
        let views = crate::descriptor::views::ViewSet::Standard.views();
        policy.decide(&Signals::descriptor(DescriptorSignal { matches, views }))
    }

    #[test]
    fn a_strong_descriptor_match_cuts_at_once_naming_the_view_and_entry() {
        let mut policy = with_descriptor_lists(PolicyConfig::default());
        let decision = describe(&mut policy, &[described("footage", 1, 0.82)]);
        assert_eq!(decision.verdict, Verdict::Cut, "{}", decision.reason);
        assert!(
            decision.reason.contains("view top_left_75 scored 0.820")
                && decision
                    .reason
                    .contains("original.mp4 at 12.500 s (line 4)")
                && decision.reason.contains("immediate"),
            "{}",
            decision.reason
        );
        assert!(matches!(
            decision.evidence,
            Some(Evidence::Descriptor {
                view: "top_left_75",
                ..
            })
        ));
    }

    #[test]
    fn a_weaker_descriptor_match_confirms_k_of_n_described_keyframes() {
        let mut policy = with_descriptor_lists(PolicyConfig::default());
        let first = describe(&mut policy, &[described("footage", 0, 0.6)]);
        assert_eq!(first.verdict, Verdict::Log);
        assert!(
            first.reason.contains("awaiting confirmation"),
            "{}",
            first.reason
        );
        // Keyframes that were not described (hash samples) do not move the window.
        for _ in 0..5 {
            policy.decide(&Signals::pdq(&[]));
        }
        assert_eq!(describe(&mut policy, &[]).verdict, Verdict::Clear);
        let second = describe(&mut policy, &[described("footage", 6, 0.55)]);
        assert_eq!(second.verdict, Verdict::Cut, "{}", second.reason);
        assert!(second.reason.contains("confirmed"), "{}", second.reason);
        // Out of the window: two misses between weak matches.
        let mut policy = with_descriptor_lists(PolicyConfig::default());
        describe(&mut policy, &[described("footage", 0, 0.6)]);
        describe(&mut policy, &[]);
        describe(&mut policy, &[]);
        assert_eq!(
            describe(&mut policy, &[described("footage", 0, 0.6)]).verdict,
            Verdict::Log
        );
    }

    #[test]
    fn descriptor_list_actions_and_the_one_tail_apply() {
        let mut policy = with_descriptor_lists(PolicyConfig::default());
        let alert = describe(&mut policy, &[described("review", 0, 0.95)]);
        assert_eq!(alert.verdict, Verdict::Alert);
        // The cut list outranks the alert list in one keyframe.
        let both = describe(
            &mut policy,
            &[described("review", 0, 0.95), described("footage", 0, 0.9)],
        );
        assert_eq!(both.verdict, Verdict::Cut);
        for (config, verdict) in [
            (
                PolicyConfig {
                    mode: PolicyMode::Shadow,
                    ..PolicyConfig::default()
                },
                Verdict::ShadowCut,
            ),
            (
                PolicyConfig {
                    allow_key_fingerprints: vec!["0123456789abcdef".into()],
                    ..PolicyConfig::default()
                },
                Verdict::Alert,
            ),
        ] {
            let mut policy = with_descriptor_lists(config);
            let decision = describe(&mut policy, &[described("footage", 0, 0.9)]);
            assert_eq!(decision.verdict, verdict, "{}", decision.reason);
        }
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
                    .map(|invalid| invalid.key)
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
