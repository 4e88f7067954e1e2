//! `livegate match`: look hashes (or images) up in a hash list file and print the matches.
//!
//! Output, one line per match: `QUERY,MATCHED_HASH,DISTANCE,FILE:LINE,FIELDS…` (nearest
//! first; FIELDS are the list line's other fields), or `QUERY,no match`. With `--json`,
//! one JSON object per query: `{"query", "hash", "matches": [{"hash", "distance", "line",
//! "quality", "duplicates", "fields"}]}`.

use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// Hashes (64 hex digits) or image files.
    #[arg(required = true)]
    pub queries: Vec<String>,
}

pub fn run(args: MatchArgs) -> anyhow::Result<ExitCode> {
    let list = HashList::load(&args.list, &ListLimits::default())?;
    let metadata = list.metadata;
    let index = HashIndex::new(list.hashes)?;
    let mut neighbors = Vec::new();
    let list_name = args.list.display();
    for query in &args.queries {
        let hash = match Hash256::from_hex(query) {
            Ok(hash) => hash,
            Err(_) => hash_image(Path::new(query))
                .with_context(|| format!("query {query:?} is not a 64-hex-digit hash"))?,
        };
        index.search_into(&hash, args.max_distance, &mut neighbors);
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
                "query": query,
                "hash": hash.to_hex(),
                "matches": matches,
            });
            println!("{record}");
        } else if neighbors.is_empty() {
            println!("{query},no match");
        } else {
            for (matched, distance, entry) in matches {
                let line = entry.and_then(|entry| entry.line).unwrap_or(0);
                let fields = entry.map(|entry| entry.fields).unwrap_or_default();
                println!("{query},{matched},{distance},{list_name}:{line},{fields}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// PDQ hash of an image file, for queries that are not hex hashes: the same pixels and
/// luma as `livegate hash`, so a list made with it matches its own images at distance 0.
fn hash_image(path: &Path) -> anyhow::Result<Hash256> {
    let output = super::hash::pdq_of_image(path, &mut PdqHasher::new())
        .with_context(|| format!("{}: hashing the image", path.display()))?;
    Ok(output.hash)
}
