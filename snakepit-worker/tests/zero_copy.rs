//! Zero-copy arrays with a real worker: round trips through shared memory and inside the
//! message, and no region left behind after a crash, a timeout, an error or a dropped call.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{json, Value};
use snakepit_core::config::{PoolConfig, TransportKind};
use snakepit_core::{ArrayData, ArrayFormat, DType, ErrorKind, Payload, ToolCall, WorkerId};
use snakepit_worker::{python_env, RunContext, Worker, WorkerSpec};

#[macro_use]
mod support;

/// A worker on `transport` whose arrays take shared memory from `threshold` bytes on.
async fn worker(
    transport: TransportKind,
    id: &str,
    threshold: usize,
    tweak: impl FnOnce(&mut PoolConfig),
) -> Worker {
    let mut pool = PoolConfig::showcase(1);
    pool.transport = transport;
    pool.heartbeat.enabled = false;
    pool.startup_timeout = Duration::from_secs(60);
    pool.zero_copy.threshold_bytes = threshold;
    tweak(&mut pool);
    let python = python_env::ensure_python(None).await.expect("python");
    let spec = WorkerSpec::new(WorkerId::new(id), pool, python);
    Worker::start(spec, RunContext::new().unwrap())
        .await
        .unwrap()
}

fn call(tool: &str, args: Value, name: &str, array: ArrayData) -> ToolCall {
    ToolCall::new(tool, args).unwrap().with_array(name, array)
}

/// One array of each dtype and of 0, 1 and 3 dimensions.
fn samples() -> Vec<ArrayData> {
    vec![
        ArrayData::from_vec((0..3000).map(|i| i as f32 * 0.5).collect(), vec![3000]).unwrap(),
        ArrayData::from_vec(
            (0..2 * 3 * 400).map(|i| i as f64 - 7.25).collect(),
            vec![2, 3, 400],
        )
        .unwrap(),
        ArrayData::from_vec((0..5000).map(|i| i as i64 * -3).collect(), vec![5000]).unwrap(),
        ArrayData::from_vec(
            (0..9000).map(|i| (i % 251) as u8).collect(),
            vec![30, 30, 10],
        )
        .unwrap(),
        ArrayData::from_bools(
            &(0..4096).map(|i| i % 3 == 0).collect::<Vec<_>>(),
            vec![4096],
        )
        .unwrap(),
        ArrayData::from_slice(&[42.0f64], vec![]).unwrap(),
    ]
}

async fn round_trips(w: &Worker, expect_shared: bool) {
    for array in samples() {
        let info = w
            .execute(call("array_info", json!({}), "x", array.clone()))
            .await
            .unwrap();
        assert_eq!(
            info.json["type"],
            json!("ndarray"),
            "{array:?}: {}",
            info.json
        );
        assert_eq!(info.json["dtype"], json!(array.dtype.as_str()));
        assert_eq!(info.json["shape"], json!(array.shape));
        assert_eq!(info.json["dlpack"], json!(true), "{}", info.json);
        let echoed = w
            .execute(call("array_echo", json!({}), "x", array.clone()))
            .await
            .unwrap();
        let back = echoed
            .array()
            .unwrap_or_else(|| panic!("no array in {echoed:?}"));
        assert_eq!(back, &array);
        let shared = w.client().zero_copy().stats().argument_regions > 0;
        assert_eq!(
            shared,
            expect_shared && array.bytes.len() >= 64,
            "{array:?}"
        );
        drop(echoed);
    }
    assert_eq!(w.client().zero_copy().stats().argument_regions, 0);
}

on_both_transports! {
    #[tokio::test]
    async fn arrays_of_every_dtype_and_rank_round_trip_through_shared_memory(transport: TransportKind) {
        let w = worker(transport, "zc_shm", 64, |_| {}).await;
        round_trips(&w, true).await;
        // A computed result is written into the worker's own memory and released after use.
        let x = ArrayData::from_vec((0..1 << 16).map(|i| i as f32).collect(), vec![256, 256]).unwrap();
        let scaled = w
            .execute(call("array_scale", json!({"factor": 3.0}), "x", x))
            .await
            .unwrap();
        let out = scaled.array().unwrap();
        assert_eq!(out.as_slice::<f32>().unwrap()[1000], 3000.0);
        assert_eq!(w.client().zero_copy().stats().result_regions, 1);
        drop(scaled);
        assert_eq!(w.client().zero_copy().stats().result_regions, 0);
        let stats = w
            .execute(ToolCall::new("zero_copy_stats", json!({})).unwrap())
            .await
            .unwrap();
        assert_eq!(stats.json["regions_in_use"], json!(0), "{}", stats.json);
        w.stop().await;
    }
}

on_both_transports! {
    #[tokio::test]
    async fn arrays_below_the_threshold_travel_inside_the_message(transport: TransportKind) {
        let w = worker(transport, "zc_inline", 1 << 30, |_| {}).await;
        round_trips(&w, false).await;
        w.stop().await;
    }
}

on_both_transports! {
    #[tokio::test]
    async fn non_contiguous_results_and_bytes_keep_their_layout(transport: TransportKind) {
        let w = worker(transport, "zc_layout", 64, |_| {}).await;
        let x = ArrayData::from_vec((0..12).map(|i| i as i64).collect(), vec![3, 4]).unwrap();
        let t = w
            .execute(call("array_transpose", json!({}), "x", x))
            .await
            .unwrap();
        let t = t.array().unwrap();
        assert_eq!(t.shape, vec![4, 3]);
        assert_eq!(
            &*t.as_slice::<i64>().unwrap(),
            &[0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
        );
        let blob: Vec<u8> = (0..100_000).map(|i| (i % 7) as u8).collect();
        let echoed = w
            .execute(call(
                "array_echo",
                json!({}),
                "x",
                ArrayData::bytes(blob.clone()),
            ))
            .await
            .unwrap();
        assert_eq!(echoed.binary.as_deref(), Some(&blob[..]));
        assert_eq!(echoed.array().unwrap().format, ArrayFormat::Bytes);
        w.stop().await;
    }
}

on_both_transports! {
    #[tokio::test]
    async fn without_numpy_arrays_arrive_as_memoryviews_and_still_round_trip(transport: TransportKind) {
        let fake = tempfile::tempdir().unwrap();
        std::fs::create_dir(fake.path().join("numpy")).unwrap();
        std::fs::write(
            fake.path().join("numpy/__init__.py"),
            "raise ImportError('numpy is hidden by the zero-copy test')\n",
        )
        .unwrap();
        let path = fake.path().display().to_string();
        let w = worker(transport, "zc_nonumpy", 64, |p| {
            p.adapter_env.insert("PYTHONPATH".into(), path);
        })
        .await;
        let x = ArrayData::from_vec((0..1000).map(|i| i as f64).collect(), vec![10, 100]).unwrap();
        let info = w
            .execute(call("array_info", json!({}), "x", x.clone()))
            .await
            .unwrap();
        assert_eq!(info.json["type"], json!("memoryview"), "{}", info.json);
        assert_eq!(info.json["format"], json!("d"));
        assert_eq!(info.json["shape"], json!([10, 100]));
        let back = w
            .execute(call("array_echo", json!({}), "x", x.clone()))
            .await
            .unwrap();
        assert_eq!(back.array().unwrap(), &x);
        assert_eq!(back.array().unwrap().dtype, DType::F64);
        w.stop().await;
    }
}

fn held_args(w: &Worker) -> usize {
    w.client().zero_copy().stats().argument_regions
}

on_both_transports! {
    #[tokio::test]
    async fn no_region_leaks_on_error_timeout_dropped_call_or_worker_death(transport: TransportKind) {
        let w = worker(transport, "zc_faults", 64, |_| {}).await;
        let big = || ArrayData::from_vec(vec![1.0f64; 50_000], vec![50_000]).unwrap();
        // The tool raises.
        let err = w
            .execute(call(
                "array_scale",
                json!({"factor": "not a number"}),
                "x",
                big(),
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::PythonException | ErrorKind::Validation
            ),
            "{err}"
        );
        assert_eq!(held_args(&w), 0);
        // The caller gives up (timeout drops the future mid-call).
        let slow = w.execute(call("array_hold", json!({"ms": 3000}), "x", big()));
        assert!(tokio::time::timeout(Duration::from_millis(300), slow)
            .await
            .is_err());
        assert_eq!(held_args(&w), 0);
        // The next call works.
        let n: Payload = w
            .execute(call("array_hold", json!({"ms": 0}), "x", big()))
            .await
            .unwrap();
        assert_eq!(n.json, json!(400_000));
        // The worker is SIGKILLed mid-call.
        let client = w.client();
        let pending = tokio::spawn(async move {
            client
                .execute(call("array_hold", json!({"ms": 5000}), "x", big()))
                .await
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while held_args(&w) == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        w.kill();
        let outcome = pending.await.unwrap();
        assert!(outcome.is_err(), "{outcome:?}");
        assert_eq!(held_args(&w), 0);
    }
}

on_both_transports! {
    #[tokio::test]
    async fn arrow_batches_and_ndarrays_cross_in_both_directions(transport: TransportKind) {
        use std::sync::Arc;

        use arrow_array::{ArrayRef, BooleanArray, Float32Array, Int64Array, RecordBatch, StringArray};

        let batch = RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..20_000)) as ArrayRef,
            ),
            (
                "x",
                Arc::new(Float32Array::from_iter_values(
                    (0..20_000).map(|i| i as f32 / 3.0),
                )) as ArrayRef,
            ),
            (
                "label",
                Arc::new(StringArray::from_iter_values(
                    (0..20_000).map(|i| format!("row{i}")),
                )) as ArrayRef,
            ),
            (
                "keep",
                Arc::new(BooleanArray::from_iter(
                    (0..20_000).map(|i| Some(i % 2 == 0)),
                )) as ArrayRef,
            ),
        ])
        .unwrap();
        for (id, threshold) in [("zc_arrow_shm", 64), ("zc_arrow_inline", 1 << 30)] {
            let w = worker(transport, id, threshold, |_| {}).await;
            let data = ArrayData::from_record_batches(std::slice::from_ref(&batch)).unwrap();
            let info = w
                .execute(call("array_info", json!({}), "x", data.clone()))
                .await
                .unwrap();
            assert_eq!(info.json["num_rows"], json!(20_000), "{}", info.json);
            assert_eq!(info.json["columns"], json!(["id", "x", "label", "keep"]));
            let back = w
                .execute(call("array_echo", json!({}), "x", data))
                .await
                .unwrap();
            let batches = back.array().unwrap().to_record_batches().unwrap();
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            assert_eq!(rows, 20_000);
            assert_eq!(batches[0].schema(), batch.schema());
            assert_eq!(batches[0].column(2), batch.column(2));

            // A strided (transposed) ndarray goes out in C order and comes back as an ndarray.
            let m = ndarray::Array2::from_shape_fn((300, 200), |(i, j)| (i * 1000 + j) as f64);
            let t = ArrayData::from_ndarray(&m.t()).unwrap();
            let echoed = w
                .execute(call("array_echo", json!({}), "x", t))
                .await
                .unwrap();
            let back = echoed.array().unwrap();
            assert_eq!(back.to_ndarray::<f64>().unwrap(), m.t().into_dyn());
            if threshold == 64 {
                // Shared-memory results are aligned: a view, no copy.
                assert_eq!(back.view_ndarray::<f64>().unwrap(), m.t().into_dyn());
            }
            w.stop().await;
        }
    }
}
