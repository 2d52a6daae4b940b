//! The protocol's three descriptions agree: every example in PROTOCOL.md parses with the Rust
//! types and matches protocol.schema.json, every frame type of the schema has an example, and
//! every variant of the Rust types is in the schema.

use palisade_realtime_client::protocol::{ClientFrame, ServerFrame};
use serde_json::Value;

const DOCUMENT: &str = include_str!("../PROTOCOL.md");
const SCHEMA: &str = include_str!("../protocol.schema.json");

/// The examples of one side (`client` or `server`).
fn examples(side: &str) -> Vec<Value> {
    let fence = format!("```json {side}\n");
    DOCUMENT
        .split(fence.as_str())
        .skip(1)
        .map(|rest| {
            let json = rest.split("```").next().unwrap();
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
        })
        .collect()
}

fn variants(schema: &Value, side: &str) -> Vec<Value> {
    schema["$defs"][side]["oneOf"].as_array().unwrap().clone()
}

fn type_of(variant: &Value) -> &str {
    variant["properties"]["type"]["const"].as_str().unwrap()
}

/// Whether `value` matches `schema`, for the subset of JSON Schema the file uses.
fn check(value: &Value, schema: &Value, at: &str) {
    if let Some(expected) = schema.get("const") {
        assert_eq!(value, expected, "{at}");
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let object = value
                .as_object()
                .unwrap_or_else(|| panic!("{at}: not an object"));
            let properties = schema["properties"].as_object().unwrap();
            for required in schema["required"].as_array().unwrap() {
                let name = required.as_str().unwrap();
                assert!(object.contains_key(name), "{at}: {name} missing");
            }
            for (name, field) in object {
                let property = properties
                    .get(name)
                    .unwrap_or_else(|| panic!("{at}: {name} is not in the schema"));
                check(field, property, &format!("{at}.{name}"));
            }
        }
        Some("string") => {
            let text = value
                .as_str()
                .unwrap_or_else(|| panic!("{at}: not a string"));
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
                assert!(text.chars().count() as u64 <= max, "{at}");
            }
        }
        Some("integer") => {
            assert!(value.is_i64() || value.is_u64(), "{at}: not an integer");
            if schema.get("minimum").is_some() {
                assert!(value.is_u64(), "{at}: negative");
            }
        }
        Some("boolean") => assert!(value.is_boolean(), "{at}: not a boolean"),
        _ => {}
    }
}

fn client_type(frame: &ClientFrame) -> &'static str {
    match frame {
        ClientFrame::Subscribe { .. } => "subscribe",
        ClientFrame::Unsubscribe { .. } => "unsubscribe",
        ClientFrame::Publish { .. } => "publish",
        ClientFrame::Ack { .. } => "ack",
        ClientFrame::Refresh { .. } => "refresh",
    }
}

fn server_type(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Welcome { .. } => "welcome",
        ServerFrame::Subscribed { .. } => "subscribed",
        ServerFrame::Message { .. } => "message",
        ServerFrame::Unsubscribed { .. } => "unsubscribed",
        ServerFrame::Published { .. } => "published",
        ServerFrame::Refreshed { .. } => "refreshed",
        ServerFrame::Error { .. } => "error",
    }
}

fn agree(side: &str, parse: impl Fn(&Value) -> Result<&'static str, String>) {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let variants = variants(&schema, side);
    let mut shown = std::collections::BTreeSet::new();
    for example in examples(side) {
        let parsed = parse(&example).unwrap_or_else(|e| panic!("{e}: {example}"));
        let variant = variants
            .iter()
            .find(|v| type_of(v) == parsed)
            .unwrap_or_else(|| panic!("{parsed} is not in the schema"));
        check(&example, variant, parsed);
        shown.insert(parsed);
    }
    let all: std::collections::BTreeSet<&str> = variants.iter().map(type_of).collect();
    assert_eq!(
        shown, all,
        "every {side} frame of the schema has an example"
    );
}

#[test]
fn client_frames_agree() {
    agree("client", |v| {
        serde_json::from_value::<ClientFrame>(v.clone())
            .map(|f| client_type(&f))
            .map_err(|e| e.to_string())
    });
}

#[test]
fn server_frames_agree() {
    agree("server", |v| {
        serde_json::from_value::<ServerFrame>(v.clone())
            .map(|f| server_type(&f))
            .map_err(|e| e.to_string())
    });
}
