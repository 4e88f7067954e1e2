//! The README's shell examples, run as written: every ```sh block must say whether it is
//! run (`<!-- example: run … -->` just before it) or why not (`<!-- example: not run here
//! (…) -->`), and the ones that are run are run by bash (`-euo pipefail`) with the
//! `livegate` binary on `PATH`, in a folder holding what they name (`clip.mp4`,
//! `photo.jpg`, `my.toml` and its relative list). Examples on the embedded default config's
//! fixed ports share them with the demo's test, one at a time.

use crate::support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The README's ```sh blocks: (the marker line before it, its text).
fn shell_examples() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md");
    let lines: Vec<&str> = readme.lines().collect();
    let mut examples = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        if lines[index] == "```sh" {
            let marker = index
                .checked_sub(1)
                .map_or(String::new(), |before| lines[before].to_string());
            let end = lines[index + 1..]
                .iter()
                .position(|line| *line == "```")
                .map(|offset| index + 1 + offset)
                .expect("a closed code block");
            examples.push((marker, lines[index + 1..end].join("\n") + "\n"));
            index = end;
        }
        index += 1;
    }
    examples
}

/// Runs `script` with bash in `dir`, livegate on `PATH`, in a process group of its own
/// that is killed afterwards (a background `livegate run` included, even on failure).
fn run_example(script: &str, dir: &Path) -> (bool, String) {
    let binary_dir = Path::new(env!("CARGO_BIN_EXE_livegate"))
        .parent()
        .expect("the binary's folder");
    let path = format!(
        "{}:{}",
        binary_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output_file = dir.join("example-output.txt");
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("LIVEGATE_ADMIN_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&output_file).expect("output file"))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&output_file)
                .expect("output file"),
        ))
        .process_group(0)
        .spawn()
        .expect("run bash");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // SAFETY: kill(2) on the process group this test created; no memory is involved.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
    let output = std::fs::read_to_string(&output_file).unwrap_or_default();
    (status.is_some_and(|status| status.success()), output)
}

#[test]
fn every_shell_example_is_run_or_says_why_not_and_the_run_ones_work() {
    let examples = shell_examples();
    assert!(examples.len() >= 4, "{} shell examples", examples.len());
    let dir = support::scratch_dir();
    support::encode_clip(&dir.path().join("clip.mp4"), support::TEST_PATTERN, 3);
    let photo = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("mandelbrot=s=640x480")
        .args(["-frames:v", "1"])
        .arg(dir.path().join("photo.jpg"))
        .status()
        .expect("run ffmpeg");
    assert!(photo.success(), "photo.jpg");
    std::fs::create_dir(dir.path().join("lists")).expect("lists folder");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("lists/example.csv"),
        dir.path().join("lists/known.csv"),
    )
    .expect("copy the example list");
    std::fs::write(
        dir.path().join("my.toml"),
        "[[ingest]]\nlisten = \"127.0.0.1:1935\"\norigin = \"127.0.0.1:1936\"\n\
         [[hashlist]]\nname = \"known\"\npath = \"lists/known.csv\"\n",
    )
    .expect("write my.toml");

    let mut run = 0;
    for (marker, script) in &examples {
        assert!(
            marker.starts_with("<!-- example: run")
                || marker.starts_with("<!-- example: not run here ("),
            "a README shell example must be run by this test or say why not (marker line before \
             ```sh: `<!-- example: run … -->` or `<!-- example: not run here (…) -->`):\n{script}"
        );
        if !marker.starts_with("<!-- example: run") {
            continue;
        }
        // The embedded default config listens on fixed ports, as the demo does.
        let _ports = script
            .contains("livegate run")
            .then(|| support::default_ports_lock());
        let (ok, output) = run_example(script, dir.path());
        assert!(ok, "README example failed:\n{script}\n-- output:\n{output}");
        run += 1;
    }
    assert!(run >= 2, "only {run} examples run");
    // What the examples left behind says they did their job.
    let hashes = std::fs::read_to_string(dir.path().join("hashes.csv")).expect("hashes.csv");
    assert!(hashes.lines().count() >= 2, "{hashes}");
    let effective = std::fs::read_to_string(dir.path().join("effective.toml")).expect("effective");
    assert!(
        effective.contains(&dir.path().join("lists/known.csv").display().to_string()),
        "the list path is relative to my.toml's folder:\n{effective}"
    );
}
