//! `/metrics`: livegate's counters in the Prometheus/OpenMetrics text format, via
//! `prometheus-client` (the Prometheus project's own Rust client).
//!
//! Most numbers already exist as atomics where the work happens (sessions, analysis
//! stats, the actuator, the lists); a [`Collector`] reads them at scrape time, so the
//! relay's path gains nothing. Only what needs an observation point lives here, in
//! [`Observations`]: the analysis-latency and time-to-cut histograms, cuts by reason
//! and matches by list — touched once per analysed keyframe or per cut, never per read.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use crate::actions::{AuditEvent, AuditRecord};
use crate::config::OnParseError;
use crate::session::Refusal;
use crate::session::Services;
use crate::signals::lists::{ListMatch, ListSet};
use crate::stream::UninspectableReason;

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
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListLabel {
    list: String,
}

/// Seconds from a keyframe's arrival to its analysis finishing.
const ANALYSIS_LATENCY_BUCKETS: [f64; 12] = [
    0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Seconds from the decisive keyframe's arrival to both sockets closed.
const TIME_TO_CUT_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0,
];

/// The metrics that need an observation where the event happens.
#[derive(Debug)]
pub struct Observations {
    analysis_latency: Histogram,
    time_to_cut: Histogram,
    cuts: Family<ReasonLabel, Counter>,
    matches: Family<ListLabel, Counter>,
}

impl Default for Observations {
    fn default() -> Self {
        let cuts = Family::default();
        for reason in CutReason::ALL {
            // Present from the start at 0, so rates and alerts work before the first cut.
            cuts.get_or_create_owned(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        Observations {
            analysis_latency: Histogram::new(ANALYSIS_LATENCY_BUCKETS),
            time_to_cut: Histogram::new(TIME_TO_CUT_BUCKETS),
            cuts,
            matches: Family::default(),
        }
    }
}

impl Observations {
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

    /// One cut, from the audit record the relay writes once the sockets are closed.
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
}

/// The registry `/metrics` renders.
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub fn new(services: &Arc<Services>, lists: &Arc<ListSet>) -> Metrics {
        let mut registry = Registry::default();
        let observations = &services.analysis.stats.observations;
        for name in lists.names() {
            // Every configured list shows up, at 0 until it matches.
            observations.matches.get_or_create_owned(&ListLabel {
                list: name.to_string(),
            });
        }
        registry.register(
            "livegate_analysis_latency_seconds",
            "Seconds from a sampled keyframe's arrival to the end of its analysis",
            observations.analysis_latency.clone(),
        );
        registry.register(
            "livegate_time_to_cut_seconds",
            "Seconds from the matching keyframe's first byte to both sockets closed",
            observations.time_to_cut.clone(),
        );
        registry.register(
            "livegate_cuts",
            "Streams cut, by reason (policy, manual, overload)",
            observations.cuts.clone(),
        );
        registry.register(
            "livegate_matches",
            "Analysed keyframes that matched a hash list, by list",
            observations.matches.clone(),
        );
        registry.register_collector(Box::new(LiveCounters {
            services: Arc::clone(services),
            lists: Arc::clone(lists),
        }));
        Metrics { registry }
    }

    /// The exposition text.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Numbers read at scrape time from where they are kept.
#[derive(Clone)]
struct LiveCounters {
    services: Arc<Services>,
    lists: Arc<ListSet>,
}

impl std::fmt::Debug for LiveCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveCounters")
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for LiveCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let registry = &self.services.registry;
        let stats = &self.services.analysis.stats;
        let actuator = self.services.analysis.actuator();
        let gauge = ConstGauge::new(registry.len() as i64);
        gauge.encode(encoder.encode_descriptor(
            "livegate_streams_active",
            "Publisher connections being relayed",
            None,
            gauge.metric_type(),
        )?)?;
        let mut refused = encoder.encode_descriptor(
            "livegate_connections_refused",
            "Publisher connections refused at accept, by reason (max_connections, per_client)",
            None,
            MetricType::Counter,
        )?;
        for refusal in Refusal::ALL {
            ConstCounter::new(registry.refused_for(refusal))
                .encode(refused.encode_family(&[("reason", refusal.as_str())])?)?;
        }
        let bytes = registry.bytes_relayed();
        let mut family = encoder.encode_descriptor(
            "livegate_bytes_relayed",
            "Bytes relayed, by direction",
            None,
            MetricType::Counter,
        )?;
        for (direction, value) in [
            ("publisher_to_origin", bytes.publisher_to_origin),
            ("origin_to_publisher", bytes.origin_to_publisher),
        ] {
            ConstCounter::new(value).encode(family.encode_family(&[("direction", direction)])?)?;
        }
        for (name, help, value) in [
            (
                "livegate_keyframes_seen",
                "Keyframes demuxed from publishers",
                &stats.keyframes_offered,
            ),
            (
                "livegate_keyframes_skipped_by_rate",
                "Keyframes not sampled because of analysis.max_samples_per_second",
                &stats.keyframes_skipped_by_rate,
            ),
            (
                "livegate_keyframes_analysed",
                "Keyframes decoded, hashed and looked up",
                &stats.samples_analysed,
            ),
            (
                "livegate_samples_shed",
                "Sampled keyframes dropped because a stream's analysis queue was full",
                &stats.samples_shed,
            ),
            (
                "livegate_decoder_errors",
                "Keyframes that could not be decoded or hashed",
                &stats.decoder_errors,
            ),
            (
                "livegate_keyframes_concealed",
                "Keyframes decoded with error concealment (part of the picture made up)",
                &stats.keyframes_concealed,
            ),
        ] {
            counter(&mut encoder, name, help, value.load(Ordering::Relaxed))?;
        }
        let mut uninspectable = encoder.encode_descriptor(
            "livegate_streams_uninspectable",
            "Streams analysis could not inspect (picture over analysis.max_picture_pixels, \
             keyframe over analysis.max_concealed_fraction concealed), by reason and by the \
             on_parse_error applied (cut, or pass: relayed unanalysed)",
            None,
            MetricType::Counter,
        )?;
        for reason in UninspectableReason::ALL {
            for (on_parse_error, label) in
                [(OnParseError::Cut, "cut"), (OnParseError::Pass, "pass")]
            {
                ConstCounter::new(stats.streams_uninspectable(reason, on_parse_error)).encode(
                    uninspectable
                        .encode_family(&[("reason", reason.as_str()), ("on_parse_error", label)])?,
                )?;
            }
        }
        if let Some(classifier) = self.services.analysis.classifier() {
            let stats = &classifier.stats;
            for (name, help, value) in [
                (
                    "livegate_classifier_pictures",
                    "Keyframe pictures the classifier model ran on",
                    &stats.pictures_classified,
                ),
                (
                    "livegate_classifier_shed",
                    "Pictures dropped because the classifier queue was full",
                    &stats.pictures_shed,
                ),
                (
                    "livegate_classifier_errors",
                    "Pictures the classifier model failed on",
                    &stats.errors,
                ),
                (
                    "livegate_classifier_verdicts",
                    "Classified pictures on which a classifier rule fired",
                    &stats.verdicts,
                ),
            ] {
                counter(&mut encoder, name, help, value.load(Ordering::Relaxed))?;
            }
        }
        counter(
            &mut encoder,
            "livegate_webhook_failures",
            "Webhook deliveries that failed after every retry",
            actuator.webhook_failures(),
        )?;
        let status = self.lists.status();
        let mut hashes = encoder.encode_descriptor(
            "livegate_hashlist_hashes",
            "Hashes in the active version of each list",
            None,
            MetricType::Gauge,
        )?;
        for list in &status {
            ConstGauge::new(list.hashes as i64)
                .encode(hashes.encode_family(&[("list", list.name.as_str())])?)?;
        }
        let mut versions = encoder.encode_descriptor(
            "livegate_hashlist_version",
            "Version of the active list (1 at startup, +1 per reload or addition)",
            None,
            MetricType::Gauge,
        )?;
        for list in &status {
            ConstGauge::new(list.version as i64)
                .encode(versions.encode_family(&[("list", list.name.as_str())])?)?;
        }
        let mut reloaded = encoder.encode_descriptor(
            "livegate_hashlist_last_reload_timestamp_seconds",
            "Unix time at which the active version of each list was loaded",
            None,
            MetricType::Gauge,
        )?;
        for list in &status {
            let seconds = list
                .loaded_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |since| since.as_secs_f64());
            ConstGauge::new(seconds)
                .encode(reloaded.encode_family(&[("list", list.name.as_str())])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::SignalRecord;
    use crate::stream::StreamId;

    fn render(observations: Observations) -> String {
        let mut registry = Registry::default();
        registry.register("livegate_cuts", "cuts", observations.cuts.clone());
        registry.register(
            "livegate_time_to_cut_seconds",
            "time",
            observations.time_to_cut.clone(),
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        text
    }

    #[test]
    fn cuts_are_counted_by_reason_with_their_time() {
        let observations = Observations::default();
        let mut policy = AuditRecord::now(AuditEvent::Cut, StreamId::local(1), "matched");
        policy.signal = Some(SignalRecord {
            kind: "pdq",
            list: "known".into(),
            hash: String::new(),
            matched_hash: String::new(),
            distance: Some(0),
            quality: Some(100),
            variant: "original".into(),
            label: String::new(),
            score: None,
            bbox: None,
        });
        policy.time_to_cut_ms = Some(42.0);
        observations.record_cut(&policy);
        observations.record_cut(&AuditRecord::now(
            AuditEvent::ManualCut,
            StreamId::local(2),
            "operator",
        ));
        observations.record_cut(&AuditRecord::now(
            AuditEvent::Match,
            StreamId::local(3),
            "not a cut",
        ));
        let text = render(observations);
        assert!(
            text.contains("livegate_cuts_total{reason=\"policy\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("livegate_cuts_total{reason=\"manual\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("livegate_cuts_total{reason=\"overload\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("livegate_time_to_cut_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("livegate_time_to_cut_seconds_bucket{le=\"0.05\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("livegate_time_to_cut_seconds_bucket{le=\"0.035\"} 0"),
            "{text}"
        );
    }
}
