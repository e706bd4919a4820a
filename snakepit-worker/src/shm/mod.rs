//! Zero-copy transfer of large arrays: a shared-memory arena per worker, and the handles that
//! travel in calls and results instead of the bytes.
//!
//! Ownership is explicit. The host owns its [`Arena`] (memfd segments, mapped by the worker
//! through `/proc/<host pid>/fd/N`): it allocates a region per large argument, writes it, sends a
//! handle, and drops the region when the call ends — on success, error, timeout, cancellation
//! or worker death alike, because the region lives in the call's future. The worker owns its
//! result segments: it writes a large result into a region of its own and sends a handle; the
//! host maps the segment once and returns the result as [`bytes::Bytes`] viewing the mapping;
//! when the last clone is dropped the host flags the region released and the worker reuses
//! it. A result that is a view of an argument's region (an echo) comes back without any copy:
//! the result keeps the argument's region alive instead.
//!
//! Handles travel as JSON markers (`{"__snakepit_array__": {...}}`) in the arguments and the
//! result, so both transports carry them unchanged. Below `zero_copy.threshold_bytes`, or when
//! shared memory is unavailable, the bytes ride in the message (`binary_parameters`).

mod alloc;
mod arena;
mod peer;
mod segment;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};
use snakepit_core::array::{array_marker, ArrayData, ARRAY_MARKER_KEY};
use snakepit_core::config::ZeroCopySettings;
use snakepit_core::{Error, Payload, ToolCall};

use arena::{Arena, Region};
use peer::PeerSegments;

/// Tracing target of the zero-copy export, import and fallback events.
pub const ZERO_COPY_TARGET: &str = "snakepit::zero_copy";

/// The environment variable carrying the pool's zero-copy settings to the worker.
pub const ZERO_COPY_ENV_VAR: &str = "SNAKEPIT_ZERO_COPY";

/// One worker's zero-copy state: the host arena and the host's view of the worker's segments.
#[derive(Debug)]
pub struct ZeroCopy {
    settings: ZeroCopySettings,
    arena: Arc<Arena>,
    peer: PeerSegments,
}

/// The argument regions of one call; they return to the arena when this is dropped.
#[derive(Debug, Default)]
pub struct CallRegions(Vec<Arc<Region>>);

impl CallRegions {
    fn containing(&self, segment_id: &str, offset: usize, len: usize) -> Option<&Arc<Region>> {
        self.0.iter().find(|r| {
            r.segment_id == segment_id && offset >= r.offset && offset + len <= r.offset + r.len
        })
    }
}

/// A slice of an argument region returned as a result (an echo): keeps the region alive.
struct EchoedRegion {
    region: Arc<Region>,
    start: usize,
    len: usize,
}

impl AsRef<[u8]> for EchoedRegion {
    fn as_ref(&self) -> &[u8] {
        let all = AsRef::<[u8]>::as_ref(&*self.region);
        all.get(self.start..self.start + self.len).unwrap_or(&[])
    }
}

/// Counts of what is in flight, for leak checks and stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroCopyStats {
    /// Argument regions handed out and not yet returned.
    pub argument_regions: usize,
    /// Bytes of those argument regions (rounded up to the alignment).
    pub argument_bytes: usize,
    /// Result regions of the worker that the host still holds.
    pub result_regions: usize,
    /// Bytes of host shared memory mapped.
    pub mapped_bytes: usize,
}

impl ZeroCopy {
    /// The zero-copy state of worker `worker_id` (process `pid`) of run `run_id`.
    pub fn new(settings: ZeroCopySettings, run_id: &str, worker_id: &str, pid: u32) -> Self {
        let prefix = format!("snakepit-{}-{worker_id}", short(run_id));
        Self {
            settings,
            arena: Arena::new(prefix),
            peer: PeerSegments::new(pid),
        }
    }

    /// The settings as the worker reads them from [`ZERO_COPY_ENV_VAR`].
    pub fn env_value(settings: &ZeroCopySettings) -> String {
        format!(
            r#"{{"enabled":{},"threshold_bytes":{}}}"#,
            settings.enabled, settings.threshold_bytes
        )
    }

    /// Returns what is in flight.
    pub fn stats(&self) -> ZeroCopyStats {
        ZeroCopyStats {
            argument_regions: self.arena.live_regions(),
            argument_bytes: self.arena.used_bytes(),
            result_regions: self.peer.held(),
            mapped_bytes: self.arena.mapped_bytes(),
        }
    }

    /// Replaces the call's array arguments by handles: large ones written into the arena,
    /// small ones (or all, when shared memory fails) as bytes inside the message.
    pub fn place(&self, call: &mut ToolCall) -> Result<CallRegions, Error> {
        let mut regions = CallRegions::default();
        for (name, array) in std::mem::take(&mut call.arrays) {
            let mut desc = array.describe();
            let len = array.bytes.len();
            let mut placed = false;
            if self.settings.applies_to(len) {
                match self.write_region(&array.bytes) {
                    Ok(region) => {
                        desc.insert("shm".into(), handle_of(&region));
                        tracing::debug!(target: ZERO_COPY_TARGET, event = "export", argument = %name, bytes = len, "array placed in shared memory");
                        regions.0.push(Arc::new(region));
                        placed = true;
                    }
                    Err(e) => {
                        tracing::warn!(target: ZERO_COPY_TARGET, event = "fallback", argument = %name, bytes = len, error = %e, "shared memory unavailable; the array travels in the message");
                    }
                }
            }
            if !placed {
                let key = format!("{ARRAY_MARKER_KEY}:{name}");
                desc.insert("inline".into(), Value::String(key.clone()));
                call.binary_args.insert(key, array.bytes);
            }
            let mut marker = Map::new();
            marker.insert(ARRAY_MARKER_KEY.into(), Value::Object(desc));
            call.args.insert(name, Value::Object(marker));
        }
        Ok(regions)
    }

    fn write_region(&self, bytes: &[u8]) -> std::io::Result<Region> {
        let region = self.arena.allocate(bytes.len())?;
        region.segment.write(region.offset, bytes)?;
        Ok(region)
    }

    /// Replaces the array handles in a result by [`ArrayData`] in `payload.arrays` (their
    /// markers keep only the description plus an `id`); a result that is one bytes buffer
    /// becomes `payload.binary`.
    pub fn resolve(&self, payload: &mut Payload, regions: &CallRegions) -> Result<(), Error> {
        resolve_markers(payload, |desc, inline| {
            if let Some(shm) = desc.get("shm").and_then(Value::as_object) {
                return self.view(shm, regions);
            }
            inline
                .ok_or_else(|| "the handle names neither shared memory nor inline bytes".to_owned())
        })
    }

    fn view(&self, shm: &Map<String, Value>, regions: &CallRegions) -> Result<Bytes, String> {
        let text = |k: &str| shm.get(k).and_then(Value::as_str).unwrap_or_default();
        let num = |k: &str| shm.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
        let (segment, offset, len) = (text("segment"), num("offset"), num("length"));
        if self.arena.owns(segment) {
            // The worker returned (a view of) an argument: hand back the argument's region.
            let region = regions.containing(segment, offset, len).ok_or_else(|| {
                format!("the worker returned a range of host segment {segment} that no argument of this call owns")
            })?;
            tracing::debug!(target: ZERO_COPY_TARGET, event = "import", bytes = len, echoed = true, "result is an argument's region");
            return Ok(Bytes::from_owner(EchoedRegion {
                region: region.clone(),
                start: offset - region.offset,
                len,
            }));
        }
        let bytes = self
            .peer
            .view(segment, text("path"), num("size"), offset, len)?;
        tracing::debug!(target: ZERO_COPY_TARGET, event = "import", bytes = len, echoed = false, "result mapped from worker memory");
        Ok(bytes)
    }
}

fn handle_of(region: &Region) -> Value {
    serde_json::json!({
        "path": region.segment.path(),
        "segment": region.segment_id,
        "size": region.segment.len(),
        "offset": region.offset,
        "length": region.len,
    })
}

fn short(run_id: &str) -> &str {
    run_id.get(..12).unwrap_or(run_id)
}

/// Walks the result (iteratively: results may be deep) and resolves every array marker with
/// `fetch(description, inline bytes)`; inline bytes are the message's `binary_result`.
fn resolve_markers(
    payload: &mut Payload,
    mut fetch: impl FnMut(&Map<String, Value>, Option<Bytes>) -> Result<Bytes, String>,
) -> Result<(), Error> {
    if !contains_marker(&payload.json) {
        return Ok(());
    }
    let mut inline = payload.binary.take();
    let mut next_id = 0usize;
    let mut found = Vec::new();
    let mut stack: Vec<&mut Value> = vec![&mut payload.json];
    while let Some(value) = stack.pop() {
        let is_marker = array_marker(value).is_some();
        match value {
            Value::Object(map) if is_marker => {
                let Some(Value::Object(desc)) = map.get_mut(ARRAY_MARKER_KEY) else {
                    continue;
                };
                let bytes = fetch(
                    desc,
                    if desc.contains_key("inline") {
                        inline.take()
                    } else {
                        None
                    },
                )
                .map_err(|why| Error::validation("array result", why))?;
                let data = ArrayData::from_description(desc, bytes)?;
                let id = next_id.to_string();
                next_id += 1;
                desc.remove("shm");
                desc.remove("inline");
                desc.insert("id".into(), Value::String(id.clone()));
                found.push((id, data));
            }
            Value::Object(map) => stack.extend(map.values_mut()),
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
    payload.binary = inline;
    for (id, data) in found {
        payload.arrays.insert(id, data);
    }
    if let Some(data) = payload.array().cloned() {
        if data.format == snakepit_core::ArrayFormat::Bytes {
            payload.binary = Some(data.bytes);
        }
    }
    Ok(())
}

fn contains_marker(value: &Value) -> bool {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                if map.contains_key(ARRAY_MARKER_KEY) {
                    return true;
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items.iter()),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests;
