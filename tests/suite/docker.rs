//! The Docker files stay in step with the repository without a Docker engine: the image
//! installs its packages with scripts/install-deps.sh, the runtime libraries are the
//! ones the build links, the container config is valid, compose's fleet runs two nodes on
//! one NATS with that config plus `[cluster]`, the Grafana dashboard only queries
//! metrics livegate exports, and the build context holds every file the release build
//! reads (manifests, sources, embedded files — none of them under `tests/`).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|error| panic!("{}: {error}", full.display()))
}

fn package_set(set: &str) -> Vec<String> {
    let output = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-deps.sh"))
        .args(["--list", set])
        .output()
        .expect("run install-deps.sh --list");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn each_image_stage_installs_its_packages_with_the_script() {
    let dockerfile = repo_file("docker/Dockerfile");
    let stages: Vec<&str> = dockerfile.split("\nFROM ").skip(1).collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    assert!(
        stages[0].contains("install-deps.sh --build"),
        "{}",
        stages[0]
    );
    assert!(
        stages[1].contains("install-deps.sh --runtime"),
        "{}",
        stages[1]
    );
    assert!(
        !dockerfile.contains("apt-get install"),
        "packages must come from install-deps.sh, not a second list"
    );
    let runtime = stages[1];
    assert!(runtime.starts_with("debian:bookworm-slim"), "{runtime}");
    assert!(
        runtime.contains("\nUSER livegate"),
        "runs as a non-root user"
    );
    assert!(runtime.contains("EXPOSE 1935 8935"));
    assert!(runtime.contains("/healthz"));
}

#[test]
fn runtime_packages_hold_the_libraries_the_build_links() {
    let runtime: BTreeSet<String> = package_set("runtime").into_iter().collect();
    let mut checked = 0;
    for dev in package_set("build") {
        let Some(stem) = dev.strip_suffix("-dev") else {
            continue;
        };
        // Debian names a -dev package's shared library after it with the soname
        // version: libavcodec-dev depends on libavcodec59.
        let output = Command::new("dpkg-query")
            .args(["-W", "-f=${Depends}", &dev])
            .output()
            .expect("dpkg-query (Debian)");
        assert!(
            output.status.success(),
            "{dev} is not installed: run scripts/install-deps.sh"
        );
        let depends = String::from_utf8_lossy(&output.stdout).to_string();
        let libraries: Vec<&str> = depends
            .split([',', '|'])
            .filter_map(|entry| entry.split_whitespace().next())
            .filter(|name| {
                name.strip_prefix(stem).is_some_and(|version| {
                    !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit())
                })
            })
            .collect();
        for library in libraries {
            assert!(
                runtime.contains(library),
                "{dev} links {library}, missing from install-deps.sh's runtime packages"
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} FFmpeg libraries checked");
}

#[test]
fn the_container_config_is_valid() {
    let config = livegate::config::Config::parse(&repo_file("docker/livegate.toml"), "docker")
        .expect("docker/livegate.toml is a valid config");
    assert_eq!(config.ingest[0].listen.port(), 1935);
    let admin = config.admin.expect("the container serves the admin API");
    assert_eq!(admin.listen.port(), 8935);
    assert!(
        admin.token.is_none(),
        "the token comes from the environment"
    );
    assert!(repo_file("docker/compose.yml").contains("LIVEGATE_ADMIN_TOKEN"));
}

#[test]
fn compose_runs_two_nodes_sharing_one_nats_with_the_container_config_plus_a_cluster() {
    let fleet = repo_file("docker/livegate-cluster.toml");
    let config = livegate::config::Config::parse(&fleet, "docker fleet")
        .expect("docker/livegate-cluster.toml is a valid config");
    assert!(config.to_toml().contains("nats://nats:4222"));
    // The same config as a single container's, plus [cluster] and learning.
    let mut fleet: toml::Table = fleet.parse().expect("TOML");
    let single: toml::Table = repo_file("docker/livegate.toml").parse().expect("TOML");
    let cluster = fleet.remove("cluster").expect("a [cluster] section");
    assert_eq!(
        cluster.get("servers"),
        Some(&toml::Value::from(vec!["nats://nats:4222"]))
    );
    assert!(
        cluster.get("node").is_none(),
        "one config for both nodes: each is named after its host name"
    );
    let learn_into = fleet["actuator"]
        .as_table_mut()
        .and_then(|actuator| actuator.remove("learn_into"));
    assert_eq!(learn_into, Some(toml::Value::from("known")));
    assert_eq!(
        fleet, single,
        "docker/livegate-cluster.toml drifted from docker/livegate.toml"
    );

    let compose = repo_file("docker/compose.yml");
    for expected in [
        "image: nats:2.9-alpine",
        r#"command: ["-js", "-sd", "/data"]"#,
        "- nats-data:/data",
        "hostname: livegate-a",
        "hostname: livegate-b",
        "- ./livegate-cluster.toml:/etc/livegate/livegate.toml:ro",
    ] {
        assert!(compose.contains(expected), "compose.yml lacks {expected:?}");
    }
    let prometheus = repo_file("docker/prometheus.yml");
    assert!(
        prometheus.contains("livegate-a:8935") && prometheus.contains("livegate-b:8935"),
        "{prometheus}"
    );
}

#[test]
fn the_dashboard_queries_exported_metrics() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&repo_file("docker/grafana/dashboards/livegate.json"))
            .expect("dashboard JSON");
    let exported = repo_file("src/admin/metrics.rs");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let mut names = BTreeSet::new();
    for target in panels
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
    {
        let expr = target["expr"].as_str().expect("expr");
        let mut rest = expr;
        while let Some(start) = rest.find("livegate_") {
            let name: String = rest[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[start + name.len()..];
            names.insert(name);
        }
    }
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        let base = ["_bucket", "_total"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        assert!(
            exported.contains(&format!("\"{base}\"")),
            "the dashboard queries {name}, which src/admin/metrics.rs does not export"
        );
    }
}

/// The paths `COPY`ed from the build context into the build stage (sources of each
/// `COPY` without `--from`, relative to the repository root).
fn build_stage_copies(dockerfile: &str) -> Vec<String> {
    let build_stage = dockerfile.split("\nFROM ").nth(1).expect("a build stage");
    build_stage
        .lines()
        .filter_map(|line| line.strip_prefix("COPY "))
        .filter(|args| !args.contains("--from"))
        .flat_map(|args| {
            let words: Vec<&str> = args.split_whitespace().collect();
            words[..words.len() - 1]
                .iter()
                .map(|source| source.trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether a `.dockerignore` pattern (`*` matching one path segment) covers `path` or a
/// folder holding it.
fn ignored_by(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    path.len() >= pattern.len()
        && pattern.iter().zip(&path).all(|(want, have)| {
            *want == "*"
                || want == have
                || want.strip_suffix('*').is_some_and(|p| have.starts_with(p))
        })
}

/// Every file `cargo build -p livegate` reads: the workspace's manifests (cargo loads
/// them all), the lock file, and for livegate and each crate it depends on by path, its
/// manifest, `build.rs` and sources, and every file they `include_str!`/`include_bytes!`.
fn files_the_release_build_reads(root: &Path) -> BTreeSet<String> {
    let relative = |path: &Path| -> String {
        let path = path
            .canonicalize()
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let root = root.canonicalize().expect("repository root");
        path.strip_prefix(&root)
            .unwrap_or_else(|_| panic!("{} is outside the repository", path.display()))
            .to_string_lossy()
            .into_owned()
    };
    let manifest = |dir: &Path| -> toml::Table {
        std::fs::read_to_string(dir.join("Cargo.toml"))
            .expect("a manifest")
            .parse()
            .expect("a TOML manifest")
    };
    let mut files = BTreeSet::from(["Cargo.lock".to_string(), "Cargo.toml".to_string()]);
    let root_manifest = manifest(root);
    for member in root_manifest["workspace"]["members"]
        .as_array()
        .expect("members")
    {
        files.insert(relative(
            &root
                .join(member.as_str().expect("a path"))
                .join("Cargo.toml"),
        ));
    }
    let mut packages = vec![root.to_path_buf()];
    let mut seen = BTreeSet::new();
    while let Some(dir) = packages.pop() {
        if !seen.insert(relative(&dir)) {
            continue;
        }
        let package = manifest(&dir);
        for section in ["dependencies", "build-dependencies"] {
            let Some(dependencies) = package.get(section).and_then(|d| d.as_table()) else {
                continue;
            };
            for dependency in dependencies.values() {
                if let Some(path) = dependency.get("path").and_then(|p| p.as_str()) {
                    packages.push(dir.join(path));
                }
            }
        }
        files.insert(relative(&dir.join("Cargo.toml")));
        let mut sources = vec![dir.join("src")];
        if dir.join("build.rs").exists() {
            files.insert(relative(&dir.join("build.rs")));
            files.extend(literal_includes(&dir.join("build.rs")).map(|f| relative(&dir.join(f))));
        }
        while let Some(folder) = sources.pop() {
            for entry in std::fs::read_dir(&folder).expect("a source folder") {
                let path = entry.expect("a folder entry").path();
                if path.is_dir() {
                    sources.push(path);
                    continue;
                }
                files.insert(relative(&path));
                if path.extension().is_some_and(|e| e == "rs") {
                    let folder = path.parent().expect("a folder").to_path_buf();
                    files.extend(literal_includes(&path).map(|f| relative(&folder.join(f))));
                }
            }
        }
    }
    files
}

/// The literal paths of a source file's `include_str!` / `include_bytes!` calls, outside
/// its unit tests (a `#[cfg(test)] mod` closing the file, as this codebase writes them:
/// a release build does not compile it).
fn literal_includes(source: &Path) -> impl Iterator<Item = String> {
    let whole = std::fs::read_to_string(source).expect("a source file");
    let text = whole
        .find("#[cfg(test)]\nmod ")
        .map_or(whole.as_str(), |tests| &whole[..tests]);
    let mut found = Vec::new();
    for macro_name in ["include_str!(\"", "include_bytes!(\""] {
        for (at, _) in text.match_indices(macro_name) {
            let rest = &text[at + macro_name.len()..];
            if let Some(end) = rest.find('"') {
                found.push(rest[..end].to_string());
            }
        }
    }
    found.into_iter()
}

#[test]
fn the_image_build_context_holds_every_file_the_release_build_reads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = repo_file("docker/Dockerfile");
    let copies = build_stage_copies(&dockerfile);
    let ignore = repo_file("docker/Dockerfile.dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let needed = files_the_release_build_reads(root);
    assert!(
        needed.contains("docs/openapi.json") && needed.contains("config/default.toml"),
        "the embedded files are found: {needed:?}"
    );
    for file in &needed {
        let copied = copies
            .iter()
            .any(|copy| copy == "." || file == copy || file.starts_with(&format!("{copy}/")));
        assert!(
            copied,
            "the image build reads {file}, which docker/Dockerfile does not COPY"
        );
        if let Some(pattern) = patterns.iter().find(|pattern| ignored_by(pattern, file)) {
            panic!("the image build reads {file}, which the .dockerignore excludes ({pattern})");
        }
    }
    // Fixtures and test files stay out of the image's build: the release binary embeds
    // none of them.
    assert!(
        !needed.iter().any(|file| file.starts_with("tests/")),
        "the release build reads test files: {needed:?}"
    );
}
