//! The live half of the dataplane benchmark: fill later.
use crowd::enforce::{Settings, object::Loaded};
use serde_json::Value;

pub fn run(_loaded: &mut Loaded, _settings: &Settings, _quick: bool) -> Value {
    Value::Null
}
