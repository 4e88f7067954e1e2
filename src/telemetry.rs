//! Telemetry that needs an observation point where the event happens: the
//! analysis-latency and time-to-cut histograms, cuts by reason, matches by list,
//! verdicts by signal and session ends by closer and kind — touched once per analysed
//! keyframe, per verdict, per cut or per session, never per read.
//!
//! Counters that already exist as atomics where the work happens (sessions, analysis
//! stats, the lists) are read at scrape time by the admin's renderer; this module owns
//! only what is observed. It imports nothing from admin: admin registers and encodes
//! what it finds here.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::time::Duration;

use crate::actions::{AuditEvent, AuditRecord};
use crate::session::{Closer, EndKind};
use crate::signals::lists::ListMatch;

/// Why a stream was cut, as the `reason` label of `livegate_cuts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CutReason {
    /// A cut list matched (the audit record carries the signal).
    Policy,
    /// An operator cut it through the admin API.
    Manual,
    /// Analysis fell behind with `on_overload = "closed"`.
    Overload,
}

impl CutReason {
    const ALL: [CutReason; 3] = [CutReason::Policy, CutReason::Manual, CutReason::Overload];

    pub fn as_str(self) -> &'static str {
        match self {
            CutReason::Policy => "policy",
            CutReason::Manual => "manual",
            CutReason::Overload => "overload",
        }
    }

    /// The reason of a cut's audit record; `None` for records that are not cuts.
    /// Policy cuts always carry their signal, overload cuts never do.
    pub fn of(record: &AuditRecord) -> Option<CutReason> {
        match record.event {
            AuditEvent::ManualCut => Some(CutReason::Manual),
            AuditEvent::Cut if record.signal.is_some() => Some(CutReason::Policy),
            AuditEvent::Cut => Some(CutReason::Overload),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ListLabel {
    list: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct VerdictLabel {
    /// The deciding signal's audit kind: `pdq`, `descriptor` or `classifier`.
    signal: &'static str,
    /// The audit event: `match`, `alert`, `shadow_cut` or `cut`.
    event: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SessionEndLabel {
    closer: &'static str,
    kind: &'static str,
}

/// Seconds from a keyframe's arrival to its analysis finishing.
const ANALYSIS_LATENCY_BUCKETS: [f64; 12] = [
    0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Seconds from the decisive keyframe's arrival to both sockets closed.
const TIME_TO_CUT_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0,
];

/// Session ends present at 0 from the start, so that rates and alerts on them work
/// before the first one: the routine ends and every verdict-driven end. Other
/// combinations appear when they first happen (98 series nobody reads would bloat
/// every scrape).
const SESSION_ENDS_AT_START: [(Closer, EndKind); 9] = [
    (Closer::Publisher, EndKind::Closed),
    (Closer::Publisher, EndKind::Reset),
    (Closer::Publisher, EndKind::Timeout),
    (Closer::Origin, EndKind::Closed),
    (Closer::Policy, EndKind::PolicyCut),
    (Closer::Policy, EndKind::Banned),
    (Closer::Operator, EndKind::OperatorCut),
    (Closer::Overload, EndKind::OverloadCut),
    (Closer::Shutdown, EndKind::Shutdown),
];

/// The observed metrics, shared by analysis, actions and sessions; admin renders them.
#[derive(Debug)]
pub struct Telemetry {
    analysis_latency: Histogram,
    time_to_cut: Histogram,
    cuts: Family<ReasonLabel, Counter>,
    matches: Family<ListLabel, Counter>,
    verdicts: Family<VerdictLabel, Counter>,
    sessions_closed: Family<SessionEndLabel, Counter>,
    gate: crate::session::GateMetrics,
}

impl Default for Telemetry {
    fn default() -> Self {
        let cuts = Family::default();
        for reason in CutReason::ALL {
            // Present from the start at 0, so rates and alerts work before the first cut.
            cuts.get_or_create_owned(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        let sessions_closed = Family::default();
        for (closer, kind) in SESSION_ENDS_AT_START {
            sessions_closed.get_or_create_owned(&SessionEndLabel::new(closer, kind));
        }
        Telemetry {
            analysis_latency: Histogram::new(ANALYSIS_LATENCY_BUCKETS),
            time_to_cut: Histogram::new(TIME_TO_CUT_BUCKETS),
            cuts,
            matches: Family::default(),
            verdicts: Family::default(),
            sessions_closed,
            gate: crate::session::GateMetrics::default(),
        }
    }
}

impl SessionEndLabel {
    fn new(closer: Closer, kind: EndKind) -> Self {
        SessionEndLabel {
            closer: closer.as_str(),
            kind: kind.as_str(),
        }
    }
}

impl Telemetry {
    /// One analysed keyframe: its latency and the lists it matched (each list once).
    pub fn record_analysis(&self, latency: Duration, matches: &[ListMatch]) {
        self.analysis_latency.observe(latency.as_secs_f64());
        for (index, found) in matches.iter().enumerate() {
            if matches[..index].iter().all(|seen| seen.list != found.list) {
                self.matches
                    .get_or_create(&ListLabel {
                        list: found.list.to_string(),
                    })
                    .inc();
            }
        }
    }

    /// One cut, from the audit record written once the sockets are closed.
    pub fn record_cut(&self, record: &AuditRecord) {
        let Some(reason) = CutReason::of(record) else {
            return;
        };
        self.cuts
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
        if let Some(milliseconds) = record.time_to_cut_ms {
            self.time_to_cut.observe(milliseconds / 1000.0);
        }
    }

    /// One verdict more than clear, by the signal that decided it
    /// (`livegate_verdicts_total`).
    pub fn record_verdict(&self, signal: &'static str, event: AuditEvent) {
        self.verdicts
            .get_or_create(&VerdictLabel {
                signal,
                event: event.as_str(),
            })
            .inc();
    }

    /// One session ended, by whom and how (`livegate_sessions_closed_total`).
    pub fn session_closed(&self, closer: Closer, kind: EndKind) {
        self.sessions_closed
            .get_or_create(&SessionEndLabel::new(closer, kind))
            .inc();
    }

    /// Makes `list` show up in `livegate_matches_total` at 0 until it matches.
    pub fn expect_list(&self, list: &str) {
        self.matches.get_or_create_owned(&ListLabel {
            list: list.to_string(),
        });
    }

    /// Gate mode's held bytes and keyframes, hold times and give-ups.
    pub fn gate(&self) -> &crate::session::GateMetrics {
        &self.gate
    }

    pub fn analysis_latency(&self) -> &Histogram {
        &self.analysis_latency
    }

    pub fn time_to_cut(&self) -> &Histogram {
        &self.time_to_cut
    }

    pub fn cuts(&self) -> &Family<ReasonLabel, Counter> {
        &self.cuts
    }

    pub fn matches(&self) -> &Family<ListLabel, Counter> {
        &self.matches
    }

    pub fn verdicts(&self) -> &Family<VerdictLabel, Counter> {
        &self.verdicts
    }

    pub fn sessions_closed(&self) -> &Family<SessionEndLabel, Counter> {
        &self.sessions_closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::SignalRecord;
    use crate::stream::StreamId;
    use prometheus_client::registry::Registry;

    fn render(telemetry: &Telemetry) -> String {
        let mut registry = Registry::default();
        registry.register("livegate_cuts", "cuts", telemetry.cuts().clone());
        registry.register(
            "livegate_time_to_cut_seconds",
            "time",
            telemetry.time_to_cut().clone(),
        );
        registry.register(
            "livegate_sessions_closed",
            "ends",
            telemetry.sessions_closed().clone(),
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        text
    }

    #[test]
    fn cuts_are_counted_by_reason_with_their_time() {
        let telemetry = Telemetry::default();
        let mut policy = AuditRecord::now(AuditEvent::Cut, StreamId::local(1), "matched");
        policy.signal = Some(SignalRecord::classifier("a", 0.9, None));
        policy.time_to_cut_ms = Some(42.0);
        telemetry.record_cut(&policy);
        telemetry.record_cut(&AuditRecord::now(
            AuditEvent::ManualCut,
            StreamId::local(2),
            "operator",
        ));
        telemetry.record_cut(&AuditRecord::now(
            AuditEvent::Match,
            StreamId::local(3),
            "not a cut",
        ));
        let text = render(&telemetry);
        for expected in [
            "livegate_cuts_total{reason=\"policy\"} 1",
            "livegate_cuts_total{reason=\"manual\"} 1",
            "livegate_cuts_total{reason=\"overload\"} 0",
            "livegate_time_to_cut_seconds_count 1",
            "livegate_time_to_cut_seconds_bucket{le=\"0.05\"} 1",
            "livegate_time_to_cut_seconds_bucket{le=\"0.035\"} 0",
        ] {
            assert!(text.contains(expected), "{expected} missing from {text}");
        }
    }

    #[test]
    fn session_ends_are_counted_by_closer_and_kind() {
        let telemetry = Telemetry::default();
        telemetry.session_closed(Closer::Operator, EndKind::OperatorCut);
        telemetry.session_closed(Closer::Publisher, EndKind::NotProtocol);
        let text = render(&telemetry);
        for expected in [
            "livegate_sessions_closed_total{closer=\"operator\",kind=\"operator_cut\"} 1",
            "livegate_sessions_closed_total{closer=\"publisher\",kind=\"not_protocol\"} 1",
            "livegate_sessions_closed_total{closer=\"policy\",kind=\"policy_cut\"} 0",
        ] {
            assert!(text.contains(expected), "{expected} missing from {text}");
        }
    }
}
