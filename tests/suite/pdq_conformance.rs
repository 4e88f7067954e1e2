//! Conformance of livegate's PDQ with Meta's C++ reference (PyPI `pdqhash` in `.venv`):
//! every hash, quality and dihedral variant of a generated corpus must be identical, through
//! the `livegate hash` CLI and through the library on raw (padded-stride) buffers.

use crate::support;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use livegate_signals::hash256::Hash256;
use livegate_signals::pdq::{Image, LumaFormula, PdqHasher, PixelLayout};
use serde_json::Value;

const VARIANTS: [&str; 8] = [
    "original",
    "rot90",
    "rot180",
    "rot270",
    "flipx",
    "flipy",
    "flipplus1",
    "flipminus1",
];

struct Expected {
    file: String,
    hash: String,
    quality: u64,
    dihedral: Vec<String>,
    dihedral_quality: u64,
}

fn generate_corpus(dir: &Path) -> Vec<Expected> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pdq/corpus.py");
    let status = Command::new(support::venv_python())
        .arg(&script)
        .arg(dir)
        .status()
        .expect("run corpus.py");
    assert!(
        status.success(),
        "corpus.py failed (pdqhash missing? run scripts/install-deps.sh)"
    );
    let text = std::fs::read_to_string(dir.join("expected.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            Expected {
                file: v["file"].as_str().unwrap().to_owned(),
                hash: v["hash"].as_str().unwrap().to_owned(),
                quality: v["quality"].as_u64().unwrap(),
                dihedral: v["dihedral"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| h.as_str().unwrap().to_owned())
                    .collect(),
                dihedral_quality: v["dihedral_quality"].as_u64().unwrap(),
            }
        })
        .collect()
}

fn livegate_hash(dir: &Path, flags: &[&str], files: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .current_dir(dir)
        .arg("hash")
        .args(flags)
        .args(files)
        .output()
        .expect("run livegate hash");
    assert!(
        output.status.success(),
        "livegate hash {flags:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The hash-list rule (README): the first field that is 64 hex digits is the hash.
fn first_hash_field(line: &str) -> Option<&str> {
    line.split([',', '\t'])
        .find(|field| field.len() == 64 && field.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn hashes_are_identical_to_meta_pdqhash() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = generate_corpus(dir.path());
    assert!(corpus.len() >= 30, "corpus too small: {}", corpus.len());
    let files: Vec<&str> = corpus.iter().map(|e| e.file.as_str()).collect();

    // Plain text output: HASH,QUALITY,FILENAME, a valid hash list.
    let stdout = String::from_utf8(livegate_hash(dir.path(), &[], &files).stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), corpus.len());
    let mut mismatches = Vec::new();
    for (line, expected) in lines.iter().zip(&corpus) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert_eq!(first_hash_field(line), Some(fields[0]), "{line}");
        assert_eq!(fields[2], expected.file);
        if fields[0] != expected.hash || fields[1] != expected.quality.to_string() {
            mismatches.push(format!(
                "{}: livegate {},{} reference {},{}",
                expected.file, fields[0], fields[1], expected.hash, expected.quality
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    let flat = corpus.iter().filter(|e| e.file.starts_with("flat"));
    assert!(flat.clone().count() >= 3 && flat.clone().all(|e| e.quality == 0));

    // --dihedral: 8 lines per file, variant last, in the reference's order.
    let stdout =
        String::from_utf8(livegate_hash(dir.path(), &["--dihedral"], &files).stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 8 * corpus.len());
    for (group, expected) in lines.chunks(8).zip(&corpus) {
        for ((line, name), reference) in group.iter().zip(VARIANTS).zip(&expected.dihedral) {
            let want = format!(
                "{reference},{},{},{name}",
                expected.dihedral_quality, expected.file
            );
            assert_eq!(*line, want);
            assert!(first_hash_field(line).is_some());
        }
    }

    // --json: the same records as JSON lines.
    let stdout = String::from_utf8(livegate_hash(dir.path(), &["--json"], &files).stdout).unwrap();
    for (line, expected) in stdout.lines().zip(&corpus) {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["hash"], expected.hash.as_str());
        assert_eq!(v["quality"], expected.quality);
        assert_eq!(v["file"], expected.file.as_str());
        assert!(v.get("pts").is_none(), "images have no pts: {line}");
    }

    // The library on raw buffers whose rows are padded (stride > width × 3).
    let mut hasher = PdqHasher::new();
    let by_name: HashMap<&str, &Expected> = corpus.iter().map(|e| (e.file.as_str(), e)).collect();
    for name in ["mixed-65x65.png", "noise-333x257.png", "text-400x300.png"] {
        let rgb = image::open(dir.path().join(name)).unwrap().into_rgb8();
        let (width, height) = (rgb.width() as usize, rgb.height() as usize);
        let stride = width * 3 + 13;
        let mut padded = vec![0xa5u8; stride * height];
        for (row, src) in padded
            .chunks_mut(stride)
            .zip(rgb.as_raw().chunks(width * 3))
        {
            row[..width * 3].copy_from_slice(src);
        }
        let image = Image {
            data: &padded,
            width,
            height,
            stride,
        };
        let out = hasher
            .hash(image, PixelLayout::Rgb8(LumaFormula::Float64Rounded))
            .unwrap();
        let expected = by_name[name];
        assert_eq!(
            out.hash,
            expected.hash.parse::<Hash256>().unwrap(),
            "{name}"
        );
        assert_eq!(u64::from(out.quality), expected.quality, "{name}");
    }
}

#[test]
fn unreadable_files_are_reported_and_the_others_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.png");
    let pixels = image::RgbImage::from_fn(80, 60, |x, y| image::Rgb([x as u8 * 3, y as u8 * 4, 7]));
    pixels.save(&good).unwrap();
    let corrupt = dir.path().join("corrupt.png");
    let mut bytes = std::fs::read(&good).unwrap();
    bytes.truncate(60);
    std::fs::write(&corrupt, bytes).unwrap();
    let missing = dir.path().join("missing.png");

    let output = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .arg("hash")
        .args([&corrupt, &missing, &good])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.trim_end().ends_with("good.png"), "{stdout}");
    assert!(stderr.contains("corrupt.png"), "{stderr}");
    assert!(stderr.contains("missing.png"), "{stderr}");
}
