//! The README's first command, run as CI runs it: the demo must cut the listed stream
//! and let the benign one flow (the script exits non-zero otherwise). It needs ports
//! 1935, 1936 and 8935, as the embedded default config does.

use std::process::Command;

#[test]
fn the_demo_cuts_the_listed_stream_and_keeps_the_benign_one() {
    let root = env!("CARGO_MANIFEST_DIR");
    let _ports = crate::support::default_ports_lock();
    let output = Command::new("bash")
        .arg(format!("{root}/scripts/demo.sh"))
        .env("LIVEGATE_BIN", env!("CARGO_BIN_EXE_livegate"))
        .current_dir(root)
        .output()
        .expect("run scripts/demo.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("listed stream CUT"), "{stdout}");
    assert!(
        stdout.contains("benign stream flowed to its end: the origin recorded 360 frames"),
        "{stdout}"
    );
    assert!(stdout.contains("== demo OK"), "{stdout}");
}
