//! What the documents say of each carrier is what its module says: a carrier added, or a path or
//! key source changed, fails here until the README, the schema and the OpenAPI document follow.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::PathBuf;

use shared::carriers::KeySource;
use shared::Carrier;

fn read(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_readme_names_every_carriers_path_and_key_sources() {
    let readme = read("README.md");
    for carrier in Carrier::ALL {
        let spec = carrier.spec();
        assert!(
            readme.contains(spec.notify_path),
            "{carrier}: {}",
            spec.notify_path
        );
        for source in spec.key_sources {
            let named = match source {
                KeySource::Header(name) => format!("`{name}`"),
                KeySource::Authorization => "`Authorization`".to_owned(),
                KeySource::Query(name) => format!("`?{name}=`"),
                KeySource::BodyField(name) => format!("`{name}`"),
            };
            assert!(
                readme.contains(&named),
                "{carrier}: the README does not name {named}"
            );
        }
    }
}

#[test]
fn the_schema_and_the_admin_contract_list_exactly_the_carriers() {
    let schema: serde_json::Value =
        serde_json::from_str(&read("shared/schema/rms.tracking.v1.json")).unwrap();
    let listed: Vec<&str> = schema["properties"]["carrier"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let names: Vec<&str> = Carrier::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(listed, names);
    let openapi = read("docs/openapi.yaml");
    for name in names {
        assert!(
            openapi.contains(name),
            "docs/openapi.yaml does not list {name}"
        );
    }
}

#[test]
fn every_notify_path_is_a_route_of_the_template() {
    let template = read("infra/template.yaml");
    for carrier in Carrier::ALL {
        let path = carrier.spec().notify_path;
        assert!(
            template.contains(path),
            "infra/template.yaml has no route {path}"
        );
    }
}
