//! Reading saved events: a file holds one JSON event (or an array of them), or JSON lines.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

/// One event read from a file, or why a line could not be read; `source` is `file` or `file:line`.
pub struct Item {
    pub source: String,
    pub value: Result<Value, String>,
}

pub fn read_events(path: &Path) -> anyhow::Result<Vec<Item>> {
    let name = path.display().to_string();
    let text = if name == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading stdin")?;
        s
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {name}"))?
    };
    // A whole-file document first (pretty-printed events span lines), JSON lines otherwise.
    if let Ok(value) = serde_json::from_str::<Value>(&text) {
        return Ok(match value {
            Value::Array(events) => events
                .into_iter()
                .enumerate()
                .map(|(i, v)| Item { source: format!("{name}[{i}]"), value: Ok(v) })
                .collect(),
            one => vec![Item { source: name, value: Ok(one) }],
        });
    }
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| Item {
            source: format!("{name}:{}", i + 1),
            value: serde_json::from_str(line).map_err(|e| format!("not JSON: {e}")),
        })
        .collect())
}
