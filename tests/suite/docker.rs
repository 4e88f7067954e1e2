//! The Docker files stay in step with the repository without a Docker engine: the image
//! installs its packages with scripts/install-deps.sh, the runtime libraries are the
//! ones the build links, the container config is valid, compose's fleet runs two nodes on
//! one NATS with that config plus `[cluster]`, and the Grafana dashboard only queries
//! metrics livegate exports.

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
