//! Validating SARIF logs against the SARIF 2.1.0 JSON schema
//! (`tests/data/sarif-schema-2.1.0.json`, see `tests/data/README.md`) with
//! boon, format assertions on (`uri`, `uri-reference`, `date-time`). Shared
//! by the root crate's tests (each includes this file with `#[path]`).

/// The schema's `$id`, under which it is registered.
const SCHEMA_ID: &str =
    "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/master/Schemata/sarif-schema-2.1.0.json";

/// Every violation of the schema by `sarif` (a SARIF log as text), as one
/// message; `Ok` when it validates.
pub fn validate(sarif: &str) -> Result<(), String> {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../tests/data/sarif-schema-2.1.0.json")).expect("the schema is JSON");
    let log: serde_json::Value = serde_json::from_str(sarif).map_err(|e| format!("not JSON: {e}"))?;
    let mut compiler = boon::Compiler::new();
    compiler.enable_format_assertions();
    compiler.add_resource(SCHEMA_ID, schema).expect("the schema registers");
    let mut schemas = boon::Schemas::new();
    let index = compiler.compile(SCHEMA_ID, &mut schemas).expect("the schema compiles");
    schemas.validate(&log, index).map_err(|e| format!("{e:#}"))
}
