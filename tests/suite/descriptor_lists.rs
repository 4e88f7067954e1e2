//! Descriptor lists through the admin API of the livegate binary, with `[descriptor]`
//! naming `sscd_distilled.onnx` (installed by scripts/install-deps.sh; never copied) and a
//! `[[descriptorlist]]` written by `livegate describe`: listing, adding the descriptors
//! of another photograph as `livegate describe` writes them (near-duplicates skipped),
//! a reload (through the API and on SIGHUP) keeping the addition, and bad bodies named by
//! line; and an addition on one node of a fleet reaching another.

use crate::descriptor::{describe, photo, sscd_distilled};
use crate::support;

use std::path::Path;
use std::time::Duration;
use support::http::{HttpResponse, Request, metric, scrape};
use support::nats::NatsServer;
use support::{Livegate, free_port, local};

const TOKEN: &str = "test-admin-token-descriptors";

fn assert_status(response: &HttpResponse, status: u16) {
    assert_eq!(response.status, status, "{response:?}");
}

/// A node with `[descriptor]` and the `[[descriptorlist]]` `known` read from `list`, and
/// `extra` sections.
fn config(model: &Path, list: &Path, extra: &str) -> String {
    format!(
        "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{origin}\"\n\
         [descriptor]\nmodel = {model:?}\nruntime_library = {runtime:?}\n\
         [[descriptorlist]]\nname = \"known\"\npath = {list:?}\nmin_cosine = 0.6\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n{extra}",
        listen = local(free_port()),
        origin = support::start_closing_origin(usize::MAX),
        model = model.display().to_string(),
        runtime = support::onnx_runtime_library().display().to_string(),
        list = list.display().to_string(),
    )
}

/// The `known` list's entry of `GET /v1/descriptorlists`.
fn known_list(admin: std::net::SocketAddr) -> serde_json::Value {
    Request::get("/v1/descriptorlists")
        .token(TOKEN)
        .send(admin)
        .json()["descriptorlists"][0]
        .clone()
}

#[test]
fn descriptors_added_on_one_node_reach_another_through_the_fleet() {
    let model = sscd_distilled();
    let dir = tempfile::tempdir().expect("tempdir");
    let coffee_png = dir.path().join("coffee.png");
    photo("coffee.png")
        .save(&coffee_png)
        .expect("save the photograph");
    let astronaut_png = dir.path().join("astronaut.png");
    photo("astronaut.png")
        .save(&astronaut_png)
        .expect("save the photograph");
    let list = dir.path().join("known.txt");
    std::fs::write(&list, describe(&model, "case 13", &[&astronaut_png])).expect("write list");
    let coffee = describe(&model, "case 13", &[&coffee_png]);

    let nats = NatsServer::start();
    let cluster = |node: &str| {
        format!(
            "[cluster]\nservers = [{url:?}]\nnode = \"{node}\"\n",
            url = nats.url()
        )
    };
    let a = Livegate::start(&config(&model, &list, &cluster("desc-a")), 1);
    let b = Livegate::start(&config(&model, &list, &cluster("desc-b")), 1);
    let added = Request::post("/v1/descriptorlists/known/descriptors", &coffee)
        .token(TOKEN)
        .send(a.admin_addr());
    assert_status(&added, 200);
    assert_eq!(added.json()["added"], 1, "{added:?}");

    // B holds the photograph's descriptor without its file changing, and says where
    // it came from.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while known_list(b.admin_addr())["descriptors"] != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "B never received the descriptor: {}",
            known_list(b.admin_addr())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(known_list(b.admin_addr())["added_at_runtime"], 1);
    let status = Request::get("/v1/cluster")
        .token(TOKEN)
        .send(b.admin_addr())
        .json();
    assert_eq!(status["applied"]["descriptors"], 1, "{status}");
    assert_eq!(status["skipped"], 0, "{status}");
    // A published it once and did not apply its own message again.
    let status = Request::get("/v1/cluster")
        .token(TOKEN)
        .send(a.admin_addr())
        .json();
    assert_eq!(
        (
            &status["published"]["descriptors"],
            &status["applied"]["descriptors"]
        ),
        (&1.into(), &0.into()),
        "{status}"
    );
    assert_eq!(known_list(a.admin_addr())["descriptors"], 2);
}

#[test]
fn descriptors_are_listed_added_from_describe_output_and_kept_across_reloads() {
    let model = sscd_distilled();
    let dir = tempfile::tempdir().expect("tempdir");
    let picture = |name: &str| {
        let path = dir.path().join(name);
        photo(name).save(&path).expect("save the photograph");
        path
    };
    let astronaut = describe(&model, "case 12", &[&picture("astronaut.png")]);
    let coffee = describe(&model, "case 12", &[&picture("coffee.png")]);
    let list = dir.path().join("known.txt");
    std::fs::write(&list, &astronaut).expect("write list");

    let livegate = Livegate::start(&config(&model, &list, ""), 1);
    let admin = livegate.admin_addr();
    let post = |path: &str, body: &[u8]| Request::post(path, body).token(TOKEN).send(admin);

    let listed = Request::get("/v1/descriptorlists").token(TOKEN).send(admin);
    assert_status(&listed, 200);
    let listed = listed.json();
    assert_eq!(listed["model"]["tag"], "sscd_distilled", "{listed}");
    assert_eq!(listed["model"]["dim"], 512, "{listed}");
    let known = &listed["descriptorlists"][0];
    assert_eq!(
        (&known["name"], &known["descriptors"], &known["version"]),
        (&"known".into(), &1.into(), &1.into()),
        "{listed}"
    );
    assert_eq!(known["min_cosine"], 0.6, "{listed}");
    assert_status(&Request::get("/v1/descriptorlists").send(admin), 401);

    // Another photograph is new; posting it again, or the listed one, adds nothing.
    let added = post("/v1/descriptorlists/known/descriptors", &coffee);
    assert_status(&added, 200);
    let added = added.json();
    assert_eq!(
        (&added["added"], &added["descriptors"], &added["version"]),
        (&1.into(), &2.into(), &2.into()),
        "{added}"
    );
    for body in [&coffee, &astronaut] {
        let again = post("/v1/descriptorlists/known/descriptors", body).json();
        assert_eq!(
            (
                &again["added"],
                &again["already_present"],
                &again["version"]
            ),
            (&0.into(), &1.into(), &2.into()),
            "{again}"
        );
    }

    // A reload re-reads the file and keeps the addition.
    let reloaded = post("/v1/descriptorlists/known/reload", b"");
    assert_status(&reloaded, 200);
    let reloaded = reloaded.json();
    assert_eq!(
        (&reloaded["descriptors"], &reloaded["version"]),
        (&2.into(), &3.into()),
        "{reloaded}"
    );
    // SIGHUP reloads descriptor lists too, still keeping the addition.
    livegate.signal("HUP");
    livegate.wait_for_logs(
        |lines| {
            lines.iter().any(|line| {
                line["message"] == "descriptor list loaded"
                    && line["list"] == "known"
                    && line["version"] == 4
                    && line["descriptors"] == 2
            })
        },
        Duration::from_secs(10),
        "the SIGHUP reload",
    );
    let metrics = scrape(admin);
    assert_eq!(
        metric(
            &metrics,
            "livegate_descriptorlist_descriptors{list=\"known\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(&metrics, "livegate_descriptorlist_version{list=\"known\"}"),
        4.0
    );
    assert!(
        metric(
            &metrics,
            "livegate_descriptorlist_memory_bytes{list=\"known\"}"
        ) > 1024.0
    );

    // Bad bodies are named by line; unknown lists are 404.
    let header = String::from_utf8_lossy(&coffee)
        .lines()
        .next()
        .expect("header")
        .to_string();
    let cases = [
        (
            format!("{header}\nAAAA,x.jpg\n"),
            "line 2: field 1 (vector): 4 base64 characters, 684 encode 512 components",
        ),
        (
            "livegate-descriptors 1 model=sscd dim=512\n".to_string(),
            "line 1: list made by model=sscd dim=512, expected model=sscd_distilled dim=512",
        ),
        (
            format!("{header}\n"),
            "the body holds no descriptor: send a descriptor list as `livegate describe` writes it \
             (the header `livegate-descriptors 1 model=sscd_distilled dim=512`, then one record a line)",
        ),
    ];
    for (body, expected) in cases {
        let refused = post("/v1/descriptorlists/known/descriptors", body.as_bytes());
        assert_status(&refused, 400);
        assert_eq!(refused.error(), expected);
    }
    let unknown = post("/v1/descriptorlists/other/descriptors", &coffee);
    assert_status(&unknown, 404);
    assert_eq!(unknown.error(), "no [[descriptorlist]] named \"other\"");
    assert_status(&post("/v1/descriptorlists/other/reload", b""), 404);
    let status = Request::get("/v1/descriptorlists")
        .token(TOKEN)
        .send(admin)
        .json();
    assert_eq!(status["descriptorlists"][0]["version"], 4, "{status}");
    assert_eq!(
        status["descriptorlists"][0]["added_at_runtime"], 1,
        "{status}"
    );
}
