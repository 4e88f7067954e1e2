//! `docs/openapi.json` and the admin router must agree: the same (method, path) pairs,
//! bearer auth exactly on `/v1/`, every path parameter declared, every `$ref` resolving.

use livegate::admin::routes::{AUTHENTICATED_PREFIX, OPENAPI_JSON, ROUTES};
use serde_json::Value;
use std::collections::BTreeSet;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn spec() -> Value {
    serde_json::from_str(OPENAPI_JSON).expect("docs/openapi.json is JSON")
}

/// Every (METHOD, path, operation) of the document.
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let paths = spec["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS.iter().filter_map(move |method| {
                item.get(*method)
                    .map(|operation| (method.to_uppercase(), path.clone(), operation.clone()))
            })
        })
        .collect()
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => spec
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("$ref {reference} does not resolve")),
        None => value,
    }
}

#[test]
fn the_document_describes_exactly_the_routes() {
    let spec = spec();
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    let documented: BTreeSet<(String, String)> = operations(&spec)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|route| (route.method.to_string(), route.path.to_string()))
        .collect();
    assert_eq!(
        documented.difference(&routed).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not routed"
    );
    assert_eq!(
        routed.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routed but not documented"
    );
}

#[test]
fn auth_and_parameters_are_declared() {
    let spec = spec();
    assert!(spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");
    for (method, path, operation) in operations(&spec) {
        let secured = operation["security"]
            .as_array()
            .is_some_and(|security| !security.is_empty());
        let needs_token = path.starts_with(AUTHENTICATED_PREFIX);
        assert_eq!(secured, needs_token, "{method} {path}: security");
        if needs_token {
            assert!(
                operation["responses"]["401"].is_object(),
                "{method} {path}: no 401"
            );
        }
        assert!(
            operation["responses"]["200"].is_object() || operation["responses"]["202"].is_object(),
            "{method} {path}: no success response"
        );
        let declared: BTreeSet<String> = operation["parameters"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|parameter| resolve(&spec, parameter))
            .filter(|parameter| parameter["in"] == "path")
            .filter_map(|parameter| parameter["name"].as_str().map(str::to_string))
            .collect();
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_string)
            .collect();
        assert_eq!(declared, in_path, "{method} {path}: path parameters");
    }
}

#[test]
fn every_reference_resolves() {
    fn walk(spec: &Value, value: &Value) {
        match value {
            Value::Object(map) => {
                if map.contains_key("$ref") {
                    resolve(spec, value);
                }
                map.values().for_each(|child| walk(spec, child));
            }
            Value::Array(items) => items.iter().for_each(|child| walk(spec, child)),
            _ => {}
        }
    }
    let spec = spec();
    walk(&spec, &spec);
}
