use serde_json::json;
use snakepit_core::{ArrayData, DType};

use super::peer::{HEADER, RELEASED};
use super::segment::Segment;
use super::*;

fn zero_copy(threshold: usize) -> ZeroCopy {
    let settings = ZeroCopySettings {
        enabled: true,
        threshold_bytes: threshold,
    };
    ZeroCopy::new(
        settings,
        "testrun0123456789",
        &format!("w{}", rand::random::<u32>()),
        std::process::id(),
    )
}

fn big_array() -> ArrayData {
    ArrayData::from_vec((0..1024).map(|i| i as f64).collect(), vec![32, 32]).unwrap()
}

#[test]
fn large_arguments_go_to_shared_memory_and_small_ones_inline() {
    let zc = zero_copy(4096);
    let mut call = ToolCall::new("t", json!({}))
        .unwrap()
        .with_array("big", big_array())
        .with_array(
            "small",
            ArrayData::from_slice(&[1u8, 2, 3], vec![3]).unwrap(),
        );
    let regions = zc.place(&mut call).unwrap();
    assert!(call.arrays.is_empty());
    let big = array_marker(&call.args["big"]).unwrap();
    assert_eq!(big["dtype"], json!("float64"));
    assert_eq!(big["shape"], json!([32, 32]));
    assert!(big["shm"]["path"].as_str().unwrap().starts_with("/proc/"));
    let small = array_marker(&call.args["small"]).unwrap();
    let key = small["inline"].as_str().unwrap();
    assert_eq!(&call.binary_args[key][..], &[1, 2, 3]);
    assert_eq!(zc.stats().argument_regions, 1);
    drop(regions);
    assert_eq!(zc.stats().argument_regions, 0);
}

#[test]
fn an_echoed_argument_comes_back_without_a_copy_and_keeps_its_region() {
    let zc = zero_copy(4096);
    let mut call = ToolCall::new("t", json!({}))
        .unwrap()
        .with_array("x", big_array());
    let regions = zc.place(&mut call).unwrap();
    let mut payload = Payload::json(call.args["x"].clone());
    zc.resolve(&mut payload, &regions).unwrap();
    drop(regions);
    let back = payload.array().unwrap().clone();
    assert_eq!(back, big_array());
    // The region lives as long as the result does.
    assert_eq!(zc.stats().argument_regions, 1);
    drop((payload, back));
    assert_eq!(zc.stats().argument_regions, 0);
}

#[test]
fn worker_regions_are_mapped_checked_and_flagged_released() {
    let zc = zero_copy(4096);
    let seg = Segment::create(
        &format!("snakepit-test-worker-{}", rand::random::<u32>()),
        1 << 16,
    )
    .unwrap();
    let data: Vec<u8> = (0..200u8).collect();
    seg.write(HEADER, &data).unwrap();
    let handle = |path: &str, offset: usize| {
        json!({"__snakepit_array__": {"format": "bytes", "dtype": "uint8", "shape": [200],
            "shm": {"path": path, "segment": "w-1", "size": 1 << 16, "offset": offset, "length": 200}}})
    };
    let mut payload = Payload::json(json!({"out": handle(seg.path(), HEADER)}));
    zc.resolve(&mut payload, &CallRegions::default()).unwrap();
    assert_eq!(&payload.array_at("/out").unwrap().bytes[..], &data[..]);
    assert_eq!(zc.stats().result_regions, 1);
    drop(payload);
    assert_eq!(zc.stats().result_regions, 0);
    assert_eq!(seg.slice(4, 4), &RELEASED.to_ne_bytes());

    for (path, offset) in [
        ("/etc/passwd", HEADER),
        (seg.path(), 0),
        (seg.path(), 1 << 16),
    ] {
        let mut bad = Payload::json(handle(path, offset));
        let err = zc.resolve(&mut bad, &CallRegions::default()).unwrap_err();
        assert_eq!(err.kind(), snakepit_core::ErrorKind::Validation, "{err}");
    }
}

#[test]
fn inline_results_take_the_binary_result_and_plain_values_pass_through() {
    let zc = zero_copy(4096);
    let mut payload = Payload {
        json: json!({"__snakepit_array__": {"format": "ndarray", "dtype": "int64", "shape": [2], "inline": "result"}}),
        binary: Some(Bytes::from(vec![
            1u8, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
        ])),
        ..Payload::default()
    };
    zc.resolve(&mut payload, &CallRegions::default()).unwrap();
    let a = payload.array().unwrap();
    assert_eq!(
        (a.dtype, &*a.as_slice::<i64>().unwrap()),
        (DType::I64, &[1i64, 2][..])
    );
    assert!(payload.binary.is_none());
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!([deep]);
    }
    let mut payload = Payload::json(deep);
    zc.resolve(&mut payload, &CallRegions::default()).unwrap();
    assert!(payload.arrays.is_empty());
}
