//! Webhook payloads the benches send, built from the recorded fixtures in tests/fixtures.

use std::path::PathBuf;

/// A recorded `pull_request.opened` payload without its `*_url` fields and padded to ~8 KB,
/// the size of a typical delivery, with a task list item in the PR body.
pub fn pull_request_opened() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/github-webhooks/pull_request/opened.payload.json");
    let text = std::fs::read_to_string(&path).expect("fixture");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
    strip_urls(&mut v);
    let base = serde_json::to_vec(&v).expect("json").len();
    let pad = 8192usize.saturating_sub(base + 40);
    v["pull_request"]["body"] = format!(
        "- [ ] image-refresh fedora-41\n{}",
        "Some description text. ".repeat(pad / 23)
    )
    .into();
    serde_json::to_vec(&v).expect("json")
}

/// Drops every `*_url` field, recursively: they are most of the recorded payload's bulk.
fn strip_urls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| !k.ends_with("_url"));
            m.values_mut().for_each(strip_urls);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_urls),
        _ => {}
    }
}
