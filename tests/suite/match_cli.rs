//! `livegate match` end to end: a list file on disk, hex, image and video queries, CSV and
//! JSON output, exit status.

use std::process::Command;

const STORED: &str = "285d55000075f70a007d0855227fa2fd08750add7708d7a808d5fda208555d00";
const ONE_BIT_AWAY: &str = "285d55000075f70a007d0855227fa2fd08750add7708d7a808d5fda208555d01";
const FAR: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn livegate_match(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_livegate"))
        .arg("match")
        .args(args)
        .output()
        .expect("livegate runs")
}

fn write_list(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("known.csv");
    std::fs::write(&path, format!("# known\n{STORED},100,cat.jpg\n")).unwrap();
    path.display().to_string()
}

#[test]
fn prints_one_line_per_match_and_no_match_lines() {
    let dir = tempfile::tempdir().unwrap();
    let list = write_list(&dir);
    let output = livegate_match(&["--list", &list, ONE_BIT_AWAY, FAR]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout,
        format!(
            "query,matched_hash,distance,list_line,fields\n\
             {ONE_BIT_AWAY},{STORED},1,{list}:2,100,cat.jpg\n{FAR},no match,,,\n"
        )
    );
    // Nothing matched: exit 1, as grep; an error: 2.
    let output = livegate_match(&["--list", &list, FAR]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let output = livegate_match(&["--list", &list, "no-such-file.mp4"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("neither a 64-hex-digit hash nor a file"),
        "{stderr}"
    );
}

#[test]
fn json_output_and_max_distance() {
    let dir = tempfile::tempdir().unwrap();
    let list = write_list(&dir);
    let output = livegate_match(&[
        "--list",
        &list,
        "--json",
        "--max-distance",
        "0",
        STORED,
        ONE_BIT_AWAY,
    ]);
    assert!(output.status.success(), "{output:?}");
    let records: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["matches"][0]["hash"], STORED);
    assert_eq!(records[0]["matches"][0]["distance"], 0);
    assert_eq!(records[0]["matches"][0]["line"], 2);
    assert_eq!(records[0]["matches"][0]["quality"], 100);
    assert_eq!(records[0]["matches"][0]["fields"], "100,cat.jpg");
    assert_eq!(records[1]["query"], ONE_BIT_AWAY);
    assert_eq!(records[1]["matches"].as_array().map(Vec::len), Some(0));
}

#[test]
fn a_bad_list_fails_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, format!("{STORED}\nnot a hash\n")).unwrap();
    let output = livegate_match(&["--list", &path.display().to_string(), STORED]);
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!(
            "{}:2: no field is a 64-hex-digit hash",
            path.display()
        )),
        "{stderr}"
    );
}

#[test]
fn image_queries_match_the_list_livegate_hash_made_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let image_path = dir.path().join("frame.png");
    let picture = image::RgbImage::from_fn(320, 200, |x, y| {
        image::Rgb([(x % 256) as u8, ((x * y) % 251) as u8, (y * 3 % 256) as u8])
    });
    picture.save(&image_path).unwrap();
    let hashed = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .arg("hash")
        .arg(&image_path)
        .output()
        .expect("livegate hash runs");
    assert!(hashed.status.success(), "{hashed:?}");
    let list = dir.path().join("frames.csv");
    std::fs::write(&list, &hashed.stdout).unwrap();
    let output = livegate_match(&[
        "--list",
        list.to_str().unwrap(),
        image_path.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let hash = String::from_utf8(hashed.stdout).unwrap()[..64].to_string();
    let query = image_path.display();
    assert!(
        stdout.contains(&format!("\n{query},{hash},0,")),
        "image query should match its own hash at distance 0: {stdout}"
    );
}

#[test]
fn video_queries_look_up_a_frame_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    crate::support::encode_clip(&clip, crate::support::MANDELBROT, 3);
    let hashed = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .arg("hash")
        .arg(&clip)
        .output()
        .expect("livegate hash runs");
    assert!(hashed.status.success(), "{hashed:?}");
    let list = dir.path().join("clip.csv");
    std::fs::write(&list, &hashed.stdout).unwrap();
    let output = livegate_match(&["--list", list.to_str().unwrap(), clip.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    // Each sampled frame (0, 1 and 2 s) is a query of its own, matching its own hash.
    for pts in ["0.000", "1.000", "2.000"] {
        let query = format!("{}@{pts},", clip.display());
        assert!(
            stdout
                .lines()
                .any(|line| line.starts_with(&query) && line.split(',').nth(2) == Some("0")),
            "{query}: {stdout}"
        );
    }
}
