//! `livegate match`: look hashes, images or videos up in a hash list file and print the
//! matches.
//!
//! A video query is hashed every `--every` seconds (as `livegate hash` does) and each
//! sampled frame is a query of its own, named `FILE@PTS`. Output: a header line
//! `query,matched_hash,distance,list_line,fields`, then one line per match (nearest
//! first; `fields` are the list line's other fields), or `QUERY,no match,,,` for a query
//! matching nothing. With `--json`, one JSON object per query: `{"query", "hash",
//! "matches": [{"hash", "distance", "line", "quality", "duplicates", "fields"}]}`.
//! Exit status, as grep's: 0 when some query matched, 1 when none did, 2 on an error.

use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use livegate::media::decode::{Sampling, VideoFile};
use livegate::media::frame::FrameHasher;
use livegate_signals::hash256::Hash256;
use livegate_signals::hashlist::{HashList, ListLimits};
use livegate_signals::index::HashIndex;
use livegate_signals::pdq::PdqHasher;

#[derive(Args)]
pub struct MatchArgs {
    /// Hash list file (livegate hash output, Meta or vPDQ CSV, or one hash per line).
    #[arg(long)]
    pub list: PathBuf,
    /// Largest Hamming distance reported.
    #[arg(long, default_value_t = 31, value_parser = clap::value_parser!(u32).range(0..=256))]
    pub max_distance: u32,
    /// Print one JSON object per query.
    #[arg(long)]
    pub json: bool,
    /// Seconds between the frames of a video query that are looked up.
    #[arg(long, default_value_t = 1.0, value_parser = super::hash::parse_positive_seconds)]
    pub every: f64,
    /// Hashes (64 hex digits), image files or video files.
    #[arg(required = true)]
    pub queries: Vec<String>,
}

/// Exit status when no query matched (grep's).
const NO_MATCH: u8 = 1;

pub fn run(args: MatchArgs) -> anyhow::Result<ExitCode> {
    let list = HashList::load(&args.list, &ListLimits::default())?;
    let metadata = list.metadata;
    let index = HashIndex::new(list.hashes)?;
    let mut neighbors = Vec::new();
    let list_name = args.list.display();
    let mut matched_any = false;
    if !args.json {
        println!("query,matched_hash,distance,list_line,fields");
    }
    for query in &args.queries {
        for (name, hash) in query_hashes(query, args.every)? {
            index.search_into(&hash, args.max_distance, &mut neighbors);
            matched_any |= !neighbors.is_empty();
            let matches = neighbors.iter().map(|neighbor| {
                let entry = metadata.get(neighbor.id as usize);
                (
                    index.hashes()[neighbor.id as usize],
                    neighbor.distance,
                    entry,
                )
            });
            if args.json {
                let matches: Vec<serde_json::Value> = matches
                    .map(|(matched, distance, entry)| {
                        serde_json::json!({
                            "hash": matched.to_hex(),
                            "distance": distance,
                            "line": entry.and_then(|entry| entry.line),
                            "quality": entry.and_then(|entry| entry.quality),
                            "duplicates": entry.map(|entry| entry.duplicates),
                            "fields": entry.map(|entry| entry.fields),
                        })
                    })
                    .collect();
                let record = serde_json::json!({
                    "query": name,
                    "hash": hash.to_hex(),
                    "matches": matches,
                });
                println!("{record}");
            } else if neighbors.is_empty() {
                println!("{name},no match,,,");
            } else {
                for (matched, distance, entry) in matches {
                    let line = entry.and_then(|entry| entry.line).unwrap_or(0);
                    let fields = entry.map(|entry| entry.fields).unwrap_or_default();
                    println!("{name},{matched},{distance},{list_name}:{line},{fields}");
                }
            }
        }
    }
    Ok(if matched_any {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NO_MATCH)
    })
}

/// The hashes a query stands for, each with its name: a hex hash itself, an image's
/// hash, or a video's frames every `every` seconds (`FILE@PTS`).
fn query_hashes(query: &str, every: f64) -> anyhow::Result<Vec<(String, Hash256)>> {
    if let Ok(hash) = Hash256::from_hex(query) {
        return Ok(vec![(query.to_string(), hash)]);
    }
    let path = Path::new(query);
    anyhow::ensure!(
        path.is_file(),
        "query {query:?} is neither a 64-hex-digit hash nor a file"
    );
    if super::hash::is_image(path) {
        return Ok(vec![(query.to_string(), hash_image(path)?)]);
    }
    let mut video = VideoFile::open(path).with_context(|| {
        format!("query {query:?}: neither an image livegate reads nor a video FFmpeg opens")
    })?;
    let mut frames = FrameHasher::new();
    let mut hashes = Vec::new();
    video
        .sample(Sampling::Every(every), |frame, pts| -> anyhow::Result<()> {
            hashes.push((format!("{query}@{pts:.3}"), frames.hash_frame(frame)?.hash));
            Ok(())
        })
        .with_context(|| format!("query {query:?}: decoding the video"))?;
    anyhow::ensure!(
        !hashes.is_empty(),
        "query {query:?}: no video frame decoded"
    );
    Ok(hashes)
}

/// PDQ hash of an image file, for queries that are not hex hashes: the same pixels and
/// luma as `livegate hash`, so a list made with it matches its own images at distance 0.
fn hash_image(path: &Path) -> anyhow::Result<Hash256> {
    let output = super::hash::pdq_of_image(path, &mut PdqHasher::new())
        .with_context(|| format!("{}: hashing the image", path.display()))?;
    Ok(output.hash)
}
