//! `/metrics`: livegate's counters in the Prometheus/OpenMetrics text format, via
//! `prometheus-client` (the Prometheus project's own Rust client).
//!
//! This file only renders. Most numbers exist as atomics where the work happens
//! (sessions, analysis stats, the actions, the lists); a [`Collector`] reads them at
//! scrape time, so the relay's path gains nothing. What needs an observation point (the
//! histograms, cuts by reason, matches by list, session ends by closer and kind) is
//! owned by [`Telemetry`]; its families are registered here.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeCounterValue, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use crate::analysis::Analysis;
use crate::backend::Fleet;
use crate::backend::cluster::Applied;
use crate::backend::cluster::outbox::Kind;
use crate::config::{OnParseError, Protocol};
use crate::session::{Refusal, SessionRegistry};
use crate::signals::descriptor_lists::DescriptorListSet;
use crate::signals::lists::ListSet;
use crate::stream::UninspectableReason;
use crate::telemetry::Telemetry;

/// The registry `/metrics` renders.
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// Renders the live `sessions`, `analysis` (with its actions and their telemetry),
    /// `lists` and `descriptor_lists`.
    pub fn new(
        sessions: Arc<SessionRegistry>,
        analysis: Arc<Analysis>,
        lists: Arc<ListSet>,
        descriptor_lists: Option<Arc<DescriptorListSet>>,
    ) -> Metrics {
        let mut registry = Registry::default();
        register_telemetry(&mut registry, analysis.actions().telemetry(), &lists);
        if let Some(fleet) = analysis.actions().backend().fleet() {
            registry.register(
                "livegate_cluster_apply_lag_seconds",
                "Seconds from a ban or an addition made on a node to applied on this one",
                fleet.status().apply_lag().clone(),
            );
        }
        registry.register_collector(Box::new(LiveCounters {
            sessions,
            analysis,
            lists,
            descriptor_lists,
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

/// Registers what telemetry observes.
fn register_telemetry(registry: &mut Registry, telemetry: &Telemetry, lists: &ListSet) {
    for name in lists.names() {
        // Every configured list shows up, at 0 until it matches.
        telemetry.expect_list(name);
    }
    registry.register(
        "livegate_analysis_latency_seconds",
        "Seconds from a sampled keyframe's arrival to the end of its analysis",
        telemetry.analysis_latency().clone(),
    );
    registry.register(
        "livegate_time_to_cut_seconds",
        "Seconds from the matching keyframe's first byte to both sockets closed",
        telemetry.time_to_cut().clone(),
    );
    registry.register(
        "livegate_cuts",
        "Streams cut, by reason (policy, manual, overload)",
        telemetry.cuts().clone(),
    );
    registry.register(
        "livegate_matches",
        "Analysed keyframes that matched a hash list, by list",
        telemetry.matches().clone(),
    );
    registry.register(
        "livegate_verdicts",
        "Verdicts more than clear, by the signal that decided (pdq, descriptor, classifier) \
         and the audit event (match, alert, shadow_cut, cut)",
        telemetry.verdicts().clone(),
    );
    registry.register(
        "livegate_sessions_closed",
        "Sessions ended, by who ended them (closer) and how (kind)",
        telemetry.sessions_closed().clone(),
    );
    let gate = telemetry.gate();
    registry.register(
        "livegate_gate_held_bytes",
        "Gate mode: publisher bytes held now, waiting for keyframe verdicts",
        gate.held_bytes.clone(),
    );
    registry.register(
        "livegate_gate_held_keyframes",
        "Gate mode: keyframes whose bytes are held now",
        gate.held_keyframes.clone(),
    );
    registry.register(
        "livegate_gate_hold_seconds",
        "Gate mode: seconds a keyframe's bytes were held before release",
        gate.hold_time.clone(),
    );
    registry.register(
        "livegate_gate_hold_timeouts",
        "Gate mode: keyframes the gate gave up holding, by cause (max_hold_ms, unjudged, \
         max_held_bytes) and on_hold_timeout (release: released with an alert; cut)",
        gate.gave_up.clone(),
    );
}

/// Numbers read at scrape time from where they are kept.
#[derive(Clone)]
struct LiveCounters {
    sessions: Arc<SessionRegistry>,
    analysis: Arc<Analysis>,
    lists: Arc<ListSet>,
    descriptor_lists: Option<Arc<DescriptorListSet>>,
}

impl std::fmt::Debug for LiveCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveCounters")
    }
}

/// Live streams by protocol, and the SRT links' health summed (or, for the RTT, the
/// worst) over the live SRT streams: gauges, since ended streams leave the sums.
fn encode_protocols(
    encoder: &mut DescriptorEncoder,
    registry: &SessionRegistry,
) -> Result<(), std::fmt::Error> {
    let sessions = registry.list();
    let mut family = encoder.encode_descriptor(
        "livegate_streams_by_protocol",
        "Publisher connections being relayed, by the listener's protocol",
        None,
        MetricType::Gauge,
    )?;
    for protocol in [Protocol::Rtmp, Protocol::Rtmps, Protocol::Srt] {
        let count = sessions
            .iter()
            .filter(|session| session.protocol() == Some(protocol))
            .count();
        ConstGauge::new(count as i64)
            .encode(family.encode_family(&[("protocol", protocol.as_str())])?)?;
    }
    let links: Vec<_> = sessions
        .iter()
        .filter_map(|session| session.srt.view())
        .collect();
    let sides = |link: &'static str| {
        links.iter().filter_map(move |view| match link {
            "publisher" => view.publisher.clone(),
            _ => view.origin.clone(),
        })
    };
    let mut rtt = encoder.encode_descriptor(
        "livegate_srt_rtt_max_milliseconds",
        "The largest round-trip time among live SRT links, by link (publisher, origin)",
        None,
        MetricType::Gauge,
    )?;
    for link in ["publisher", "origin"] {
        let worst = sides(link).map(|view| view.rtt_ms).fold(0.0, f64::max);
        ConstGauge::new(worst).encode(rtt.encode_family(&[("link", link)])?)?;
    }
    type Field = fn(&crate::ingest::srt::SrtLinkView) -> u64;
    let families: [(&str, &str, Field, Field); 3] = [
        (
            "livegate_srt_packets_lost",
            "Media packets lost on live SRT links before retransmission (publisher link: found missing by livegate; origin link: reported missing by the origin)",
            |view| view.packets_lost_receiving,
            |view| view.packets_lost_sending,
        ),
        (
            "livegate_srt_packets_retransmitted",
            "Media packets sent again on live SRT links (publisher link: by the publisher; origin link: by livegate)",
            |view| view.packets_retransmitted_received,
            |view| view.packets_retransmitted,
        ),
        (
            "livegate_srt_packets_dropped",
            "Media packets given up as too late on live SRT links (publisher link: by livegate's receiver; origin link: by livegate's sender)",
            |view| view.packets_dropped_receiving,
            |view| view.packets_dropped_sending,
        ),
    ];
    for (name, help, publisher, origin) in families {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (link, field) in [("publisher", publisher), ("origin", origin)] {
            let total: u64 = sides(link).map(|view| field(&view)).sum();
            ConstGauge::new(total as i64).encode(family.encode_family(&[("link", link)])?)?;
        }
    }
    Ok(())
}

fn counter<N: EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for LiveCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let registry = &self.sessions;
        let stats = &self.analysis.stats;
        let actions = self.analysis.actions();
        let gauge = ConstGauge::new(registry.len() as i64);
        gauge.encode(encoder.encode_descriptor(
            "livegate_streams_active",
            "Publisher connections being relayed",
            None,
            gauge.metric_type(),
        )?)?;
        encode_protocols(&mut encoder, registry)?;
        let mut refused = encoder.encode_descriptor(
            "livegate_connections_refused",
            "Publisher connections refused at accept or at the SRT handshake, by reason (max_connections, per_client, proxy_protocol, streamid)",
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
        if let Some(classifier) = self.analysis.classifier() {
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
        if let Some(descriptor) = self.analysis.descriptor() {
            let stats = &descriptor.stats;
            for (name, help, value) in [
                (
                    "livegate_descriptor_pictures",
                    "Keyframe pictures the descriptor model described",
                    &stats.pictures_described,
                ),
                (
                    "livegate_descriptor_views",
                    "Views of keyframe pictures described (a picture has one or more)",
                    &stats.views_described,
                ),
                (
                    "livegate_descriptor_shed",
                    "Pictures dropped because the descriptor queue was full",
                    &stats.pictures_shed,
                ),
                (
                    "livegate_descriptor_errors",
                    "Pictures the descriptor model failed on",
                    &stats.errors,
                ),
                (
                    "livegate_descriptor_matches",
                    "Described pictures that matched a descriptor list",
                    &stats.matches,
                ),
                (
                    "livegate_descriptor_verdicts",
                    "Described pictures on which a descriptor list's rule fired",
                    &stats.verdicts,
                ),
            ] {
                counter(&mut encoder, name, help, value.load(Ordering::Relaxed))?;
            }
            counter(
                &mut encoder,
                "livegate_descriptor_busy_seconds",
                "Seconds the descriptor workers spent describing and looking up",
                stats.describe_micros_total.load(Ordering::Relaxed) as f64 / 1e6,
            )?;
        }
        counter(
            &mut encoder,
            "livegate_webhook_failures",
            "Webhook deliveries that failed after every retry",
            actions.webhook_failures(),
        )?;
        if let Some(fleet) = actions.backend().fleet() {
            encode_cluster(&mut encoder, fleet)?;
        }
        let hash_lists: Vec<ListGauges> = self
            .lists
            .status()
            .into_iter()
            .map(|list| ListGauges {
                name: list.name,
                entries: list.hashes,
                version: list.version,
                loaded_at: list.loaded_at,
                memory_bytes: list.memory_bytes,
            })
            .collect();
        encode_list_gauges(&mut encoder, &HASHLIST_GAUGES, &hash_lists)?;
        if let Some(descriptor_lists) = &self.descriptor_lists {
            let descriptor_lists: Vec<ListGauges> = descriptor_lists
                .status()
                .into_iter()
                .map(|list| ListGauges {
                    name: list.name,
                    entries: list.descriptors,
                    version: list.version,
                    loaded_at: list.loaded_at,
                    memory_bytes: list.memory_bytes,
                })
                .collect();
            encode_list_gauges(&mut encoder, &DESCRIPTORLIST_GAUGES, &descriptor_lists)?;
        }
        Ok(())
    }
}

/// `[cluster]`'s connection, outbox, traffic and peers.
fn encode_cluster(encoder: &mut DescriptorEncoder, fleet: &Fleet) -> Result<(), std::fmt::Error> {
    let status = fleet.status();
    for (name, help, value) in [
        (
            "livegate_cluster_connected",
            "1 while this node is connected to NATS, 0 while it runs on local state",
            i64::from(status.connected()),
        ),
        (
            "livegate_cluster_outbox_messages",
            "Decisions (bans, additions, audit events) waiting to be published to the fleet",
            fleet.outbox_messages() as i64,
        ),
        (
            "livegate_cluster_peers",
            "Other nodes heard from in the last 5 seconds",
            status.peer_count() as i64,
        ),
    ] {
        let gauge = ConstGauge::new(value);
        gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
    }
    let oldest = ConstGauge::new(fleet.outbox_oldest_age().as_secs_f64());
    oldest.encode(encoder.encode_descriptor(
        "livegate_cluster_outbox_oldest_seconds",
        "Age of the oldest decision waiting to be published (the publishing lag)",
        None,
        oldest.metric_type(),
    )?)?;
    counter(
        encoder,
        "livegate_cluster_outbox_dropped",
        "Decisions dropped from a full outbox (cluster.outbox_max_messages)",
        fleet.outbox_dropped(),
    )?;
    counter(
        encoder,
        "livegate_cluster_outbox_refused",
        "Decisions JetStream refused for good (a full stream, an oversized message), dropped",
        fleet.outbox_refused(),
    )?;
    counter(
        encoder,
        "livegate_cluster_skipped",
        "Messages from the fleet not applied (malformed, or naming a list this node lacks)",
        status.skipped(),
    )?;
    let mut published = encoder.encode_descriptor(
        "livegate_cluster_published",
        "Messages this node published to JetStream and had acknowledged, by kind",
        None,
        MetricType::Counter,
    )?;
    for kind in Kind::ALL {
        ConstCounter::new(fleet.published(kind))
            .encode(published.encode_family(&[("kind", kind.as_str())])?)?;
    }
    let mut applied = encoder.encode_descriptor(
        "livegate_cluster_applied",
        "Bans, hashes and descriptors from the fleet applied on this node, by kind",
        None,
        MetricType::Counter,
    )?;
    for kind in Applied::ALL {
        ConstCounter::new(status.applied(kind))
            .encode(applied.encode_family(&[("kind", kind.as_str())])?)?;
    }
    Ok(())
}

/// What the per-list gauges show of one list's active version.
struct ListGauges {
    name: String,
    entries: usize,
    version: u64,
    loaded_at: SystemTime,
    memory_bytes: usize,
}

/// The names of one kind of list's gauges (spelled out: the dashboard test looks for
/// them in this file), and the words their help uses.
struct ListGaugeNames {
    /// "hash list".
    kind: &'static str,
    /// "hashes".
    entries_word: &'static str,
    entries: &'static str,
    version: &'static str,
    reloaded: &'static str,
    memory: &'static str,
}

const HASHLIST_GAUGES: ListGaugeNames = ListGaugeNames {
    kind: "hash list",
    entries_word: "hashes",
    entries: "livegate_hashlist_hashes",
    version: "livegate_hashlist_version",
    reloaded: "livegate_hashlist_last_reload_timestamp_seconds",
    memory: "livegate_hashlist_memory_bytes",
};

const DESCRIPTORLIST_GAUGES: ListGaugeNames = ListGaugeNames {
    kind: "descriptor list",
    entries_word: "descriptors",
    entries: "livegate_descriptorlist_descriptors",
    version: "livegate_descriptorlist_version",
    reloaded: "livegate_descriptorlist_last_reload_timestamp_seconds",
    memory: "livegate_descriptorlist_memory_bytes",
};

/// The four gauges of `names`, labelled by list.
fn encode_list_gauges(
    encoder: &mut DescriptorEncoder,
    names: &ListGaugeNames,
    lists: &[ListGauges],
) -> Result<(), std::fmt::Error> {
    let kind = names.kind;
    let family = |encoder: &mut DescriptorEncoder,
                  name: &str,
                  help: &str,
                  value: &dyn Fn(&ListGauges) -> f64| {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for list in lists {
            ConstGauge::new(value(list))
                .encode(family.encode_family(&[("list", list.name.as_str())])?)?;
        }
        Ok::<_, std::fmt::Error>(())
    };
    family(
        encoder,
        names.entries,
        &format!(
            "Number of {} in the active version of each {kind}",
            names.entries_word
        ),
        &|list| list.entries as f64,
    )?;
    family(
        encoder,
        names.version,
        &format!("Version of the active {kind} (1 at startup, +1 per reload or addition)"),
        &|list| list.version as f64,
    )?;
    family(
        encoder,
        names.reloaded,
        &format!("Unix time at which the active version of each {kind} was loaded"),
        &|list| {
            list.loaded_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |since| since.as_secs_f64())
        },
    )?;
    family(
        encoder,
        names.memory,
        &format!("Bytes held by the active version of each {kind} (entries, index, metadata)"),
        &|list| list.memory_bytes as f64,
    )
}
