//! The end-to-end bench suite behind `cargo xtask bench`: latency, throughput, start-up, payload
//! and recovery, each figure next to a baseline measured in the same run.
//!
//! It is a `harness = false` bench so that it is built with the release-like `bench` profile.
//! Run it through `cargo xtask bench [--quick] [--only NAME]`; a plain `cargo bench` runs it
//! without `--suite`, which makes it print a hint and do nothing (the criterion benches run).
//! Every figure is the median over several rounds with the spread (min and max of the rounds).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use snakepit_core::config::{PoolConfig, TransportKind};
use snakepit_core::{ArrayData, Error, RunId, ToolCall, WorkerId};
use snakepit_pool::Pool;
use snakepit_worker::{RunContext, Worker, WorkerSpec};

#[path = "support/zygote_startup.rs"]
mod zygote_startup;

include!("support/groups.rs");

/// How much work each group does.
#[derive(Debug, Clone, Copy)]
struct Scale {
    quick: bool,
    rounds: usize,
}

/// One measured figure and its baseline from the same run.
struct Figure {
    name: String,
    unit: &'static str,
    rounds: Vec<f64>,
    baseline_name: String,
    baseline: Vec<f64>,
}

/// Median, min and max of per-round values.
fn summary(values: &[f64]) -> (f64, f64, f64) {
    let v = sorted(values.to_vec());
    let median = match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    };
    let min = v.first().copied().unwrap_or(f64::NAN);
    let max = v.last().copied().unwrap_or(f64::NAN);
    (median, min, max)
}

impl Figure {
    fn new(
        name: &str,
        unit: &'static str,
        rounds: &[f64],
        baseline_name: &str,
        baseline: &[f64],
    ) -> Self {
        Self {
            name: name.to_owned(),
            unit,
            rounds: rounds.to_vec(),
            baseline_name: baseline_name.to_owned(),
            baseline: baseline.to_vec(),
        }
    }

    fn to_json(&self) -> Value {
        let (value, min, max) = summary(&self.rounds);
        let (baseline, bmin, bmax) = summary(&self.baseline);
        json!({
            "name": self.name,
            "unit": self.unit,
            "median": value,
            "min": min,
            "max": max,
            "rounds": self.rounds,
            "baseline_name": self.baseline_name,
            "baseline_median": baseline,
            "baseline_min": bmin,
            "baseline_max": bmax,
            "baseline_rounds": self.baseline,
            "ratio": value / baseline,
        })
    }
}

fn table(figures: &[Figure]) -> String {
    let mut out = format!(
        "{:<34} {:>12} {:>23}   {:<30} {:>12} {:>8}\n",
        "figure", "median", "[min .. max]", "baseline", "median", "ratio"
    );
    for f in figures {
        let (v, lo, hi) = summary(&f.rounds);
        let (b, _, _) = summary(&f.baseline);
        out.push_str(&format!(
            "{:<34} {:>12} {:>23}   {:<30} {:>12} {:>7.2}x\n",
            f.name,
            format!("{} {}", fmt(v), f.unit),
            format!("[{} .. {}]", fmt(lo), fmt(hi)),
            f.baseline_name,
            format!("{} {}", fmt(b), f.unit),
            v / b
        ));
    }
    out
}

fn fmt(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// The transports measured side by side in the latency and throughput groups.
const TRANSPORTS: [TransportKind; 2] = [TransportKind::Fast, TransportKind::Grpc];

fn bench_config(size: usize) -> PoolConfig {
    bench_config_on(size, TransportKind::default())
}

fn bench_config_on(size: usize, transport: TransportKind) -> PoolConfig {
    let mut c = PoolConfig::showcase(size);
    c.transport = transport;
    c.heartbeat.enabled = false;
    c.startup_timeout = Duration::from_secs(300);
    c.startup_batch_delay = Duration::ZERO;
    c.queue_timeout = Duration::from_secs(120);
    c.max_queue_size = c.max_queue_size.max(1024);
    c
}

async fn ready_pool(size: usize) -> Result<Pool, Error> {
    ready_pool_on(size, TransportKind::default()).await
}

async fn ready_pool_on(size: usize, transport: TransportKind) -> Result<Pool, Error> {
    let pool = Pool::start(bench_config_on(size, transport)).await?;
    pool.await_ready(Duration::from_secs(300)).await?;
    Ok(pool)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = (sorted.len().saturating_sub(1) as f64 * q).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn noop() -> Result<ToolCall, Error> {
    ToolCall::new("noop", json!({}))
}

/// Runs the ProcessPoolExecutor baseline script once and returns its JSON.
async fn python_baseline(
    python: &Path,
    workers: usize,
    latency_calls: usize,
    throughput_calls: usize,
) -> Result<Value, Error> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/benchmarks/process_pool_baseline.py");
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .args([
            "--workers",
            &workers.to_string(),
            "--latency-calls",
            &latency_calls.to_string(),
            "--throughput-calls",
            &throughput_calls.to_string(),
        ])
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::pool(format!("cannot run {}: {e}", script.display())))?;
    if !out.status.success() {
        return Err(Error::pool(format!(
            "the Python baseline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::pool(format!("the Python baseline printed no JSON: {e}")))
}

fn field(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

/// A pool and a bare worker of one transport, measured side by side.
struct LatencySetup {
    transport: TransportKind,
    pool: Pool,
    bare: Worker,
    pool50: Vec<f64>,
    pool99: Vec<f64>,
    bare50: Vec<f64>,
    bare99: Vec<f64>,
}

impl LatencySetup {
    async fn start(transport: TransportKind, python: &Path) -> Result<Self, Error> {
        let pool = ready_pool_on(2, transport).await?;
        let spec = WorkerSpec::new(
            WorkerId::new(format!("bench_bare_{transport}_{}", RunId::generate())),
            bench_config_on(1, transport),
            python.to_path_buf(),
        );
        let bare = Worker::start(spec, RunContext::new()?).await?;
        let client = bare.client();
        for _ in 0..100 {
            pool.execute_call(noop()?).await?;
            client.execute(noop()?).await?;
        }
        Ok(Self {
            transport,
            pool,
            bare,
            pool50: vec![],
            pool99: vec![],
            bare50: vec![],
            bare99: vec![],
        })
    }

    /// One round of `calls` pool and bare calls, interleaved so both see the same noise.
    async fn round(&mut self, calls: usize) -> Result<(), Error> {
        let client = self.bare.client();
        let (mut p, mut b) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
        for _ in 0..calls {
            let call = noop()?;
            let t = Instant::now();
            self.pool.execute_call(call).await?;
            p.push(micros(t.elapsed()));
            let call = noop()?;
            let t = Instant::now();
            client.execute(call).await?;
            b.push(micros(t.elapsed()));
        }
        let (p, b) = (sorted(p), sorted(b));
        self.pool50.push(percentile(&p, 0.5));
        self.pool99.push(percentile(&p, 0.99));
        self.bare50.push(percentile(&b, 0.5));
        self.bare99.push(percentile(&b, 0.99));
        Ok(())
    }

    async fn figures(self, py50: &[f64], py99: &[f64], raw50: &[f64]) -> Vec<Figure> {
        self.bare.stop().await;
        self.pool.shutdown().await;
        let t = self.transport;
        let over50: Vec<f64> = self
            .pool50
            .iter()
            .zip(&self.bare50)
            .map(|(p, b)| p - b)
            .collect();
        let over99: Vec<f64> = self
            .pool99
            .iter()
            .zip(&self.bare99)
            .map(|(p, b)| p - b)
            .collect();
        let bare50 = format!("bare {t} WorkerClient p50");
        let bare99 = format!("bare {t} WorkerClient p99");
        vec![
            Figure::new(
                &format!("latency/{t} pool p50"),
                "us",
                &self.pool50,
                &bare50,
                &self.bare50,
            ),
            Figure::new(
                &format!("latency/{t} pool p99"),
                "us",
                &self.pool99,
                &bare99,
                &self.bare99,
            ),
            Figure::new(
                &format!("latency/{t} pool p50"),
                "us",
                &self.pool50,
                "ProcessPoolExecutor(2) p50",
                py50,
            ),
            Figure::new(
                &format!("latency/{t} pool p99"),
                "us",
                &self.pool99,
                "ProcessPoolExecutor(2) p99",
                py99,
            ),
            Figure::new(
                &format!("latency/{t} pool p50"),
                "us",
                &self.pool50,
                "raw-socket Python echo p50",
                raw50,
            ),
            Figure::new(
                &format!("latency/{t} overhead p50 (pool-bare)"),
                "us",
                &over50,
                &bare50,
                &self.bare50,
            ),
            Figure::new(
                &format!("latency/{t} overhead p99 (pool-bare)"),
                "us",
                &over99,
                &bare99,
                &self.bare99,
            ),
        ]
    }
}

/// A Python loop answering length-prefixed frames on a Unix socket: the floor of any transport.
struct RawEcho {
    _dir: tempfile::TempDir,
    child: tokio::process::Child,
    stream: tokio::net::UnixStream,
}

impl RawEcho {
    async fn start(python: &Path) -> Result<Self, Error> {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/benchmarks/raw_socket_echo.py");
        let dir = tempfile::tempdir().map_err(|e| Error::pool(format!("temp dir: {e}")))?;
        let path = dir.path().join("echo.sock");
        let child = tokio::process::Command::new(python)
            .arg(&script)
            .arg(&path)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::pool(format!("cannot run {}: {e}", script.display())))?;
        let started = Instant::now();
        let stream = loop {
            match tokio::net::UnixStream::connect(&path).await {
                Ok(s) => break s,
                Err(_) if started.elapsed() < Duration::from_secs(60) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => return Err(Error::pool(format!("the raw echo never listened: {e}"))),
            }
        };
        Ok(Self {
            _dir: dir,
            child,
            stream,
        })
    }

    /// p50 of `calls` round trips of a 32-byte frame, in microseconds.
    async fn p50(&mut self, calls: usize) -> Result<f64, Error> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let io = |e: std::io::Error| Error::pool(format!("raw echo: {e}"));
        let mut frame = (32u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&[0u8; 32]);
        let mut answer = vec![0u8; frame.len()];
        let mut samples = Vec::with_capacity(calls);
        for _ in 0..calls {
            let t = Instant::now();
            self.stream.write_all(&frame).await.map_err(io)?;
            self.stream.read_exact(&mut answer).await.map_err(io)?;
            samples.push(micros(t.elapsed()));
        }
        Ok(percentile(&sorted(samples), 0.5))
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Sequential no-op round trips on each transport: pool vs its bare client, ProcessPoolExecutor
/// and a raw-socket Python echo.
async fn latency(scale: Scale, python: &Path) -> Result<Vec<Figure>, Error> {
    let calls = if scale.quick { 500 } else { 2000 };
    let mut setups = Vec::new();
    for transport in TRANSPORTS {
        setups.push(LatencySetup::start(transport, python).await?);
    }
    let mut echo = RawEcho::start(python).await?;
    echo.p50(100).await?;
    let (mut py50, mut py99, mut raw50) = (vec![], vec![], vec![]);
    for _ in 0..scale.rounds {
        for setup in &mut setups {
            setup.round(calls).await?;
        }
        raw50.push(echo.p50(calls).await?);
        let py = python_baseline(python, 2, calls, 10).await?;
        py50.push(field(&py, "latency_p50_us"));
        py99.push(field(&py, "latency_p99_us"));
    }
    echo.stop().await;
    let mut figures = Vec::new();
    for setup in setups {
        figures.extend(setup.figures(&py50, &py99, &raw50).await);
    }
    Ok(figures)
}

/// `total` no-op calls shared by `callers` concurrent tasks; returns calls per second.
async fn calls_per_second(pool: &Arc<Pool>, total: usize, callers: usize) -> Result<f64, Error> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (pool, next) = (pool.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    pool.execute_call(noop()?).await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await
            .map_err(|e| Error::pool(format!("a bench caller panicked: {e}")))??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// The pipeline depth of the pipelined throughput rows (`pipeline_depth`).
const PIPELINED: usize = 4;

/// No-op calls per second with 64 concurrent callers on each transport, and on the fast one
/// with calls pipelined to the workers, vs ProcessPoolExecutor.map (which pipelines too).
async fn throughput(scale: Scale, python: &Path) -> Result<Vec<Figure>, Error> {
    let total = if scale.quick { 3000 } else { 10_000 };
    let mut figures = Vec::new();
    for workers in [2usize, 4, 8] {
        let mut pools = Vec::new();
        let variants = TRANSPORTS
            .iter()
            .map(|&t| (t, 1))
            .chain([(TransportKind::Fast, PIPELINED)]);
        for (transport, depth) in variants {
            let mut config = bench_config_on(workers, transport);
            config.pipeline_depth = depth;
            let pool = Arc::new(Pool::start(config).await?);
            pool.await_ready(Duration::from_secs(300)).await?;
            calls_per_second(&pool, 500, 64).await?;
            let label = if depth == 1 {
                transport.to_string()
            } else {
                format!("{transport} pipelined({depth})")
            };
            pools.push((label, pool, Vec::new()));
        }
        let mut baseline = vec![];
        for _ in 0..scale.rounds {
            for (_, pool, rounds) in &mut pools {
                rounds.push(calls_per_second(pool, total, 64).await?);
            }
            let py = python_baseline(python, workers, 10, total).await?;
            baseline.push(field(&py, "throughput_per_s"));
        }
        for (transport, pool, rounds) in pools {
            pool.shutdown().await;
            figures.push(Figure::new(
                &format!("throughput/{transport} {workers} workers, 64 callers"),
                "calls/s",
                &rounds,
                &format!("ProcessPoolExecutor({workers}).map"),
                &baseline,
            ));
        }
    }
    Ok(figures)
}

fn proc_kb(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn host_rss_mib() -> f64 {
    proc_kb("/proc/self/status", "VmRSS:") as f64 / 1024.0
}

fn pss_mib(pid: u32) -> f64 {
    proc_kb(&format!("/proc/{pid}/smaps_rollup"), "Pss:") as f64 / 1024.0
}

/// Time until N workers are ready, and memory, vs one bare interpreter doing the same imports.
async fn startup(scale: Scale, python: &Path) -> Result<Vec<Figure>, Error> {
    let sizes: &[usize] = if scale.quick { &[1, 16] } else { &[1, 16, 100] };
    let rounds = if scale.quick { 2 } else { 3 };
    let mut interpreter = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let status = tokio::process::Command::new(python)
            .args([
                "-c",
                "import grpc, snakepit_bridge.server, snakepit_bridge.adapters.showcase",
            ])
            .status()
            .await
            .map_err(|e| Error::pool(format!("cannot start {}: {e}", python.display())))?;
        if !status.success() {
            return Err(Error::pool(
                "the bare interpreter baseline cannot import snakepit_bridge",
            ));
        }
        interpreter.push(millis(t.elapsed()));
    }
    let mut figures = Vec::new();
    for &n in sizes {
        let (mut times, mut pss, mut per_worker, mut rss, mut rss_before) =
            (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..rounds {
            rss_before.push(host_rss_mib());
            let t = Instant::now();
            let pool = ready_pool(n).await?;
            times.push(millis(t.elapsed()));
            let total: f64 = pool.list_workers().iter().map(|w| pss_mib(w.pid)).sum();
            pss.push(total);
            per_worker.push(total / n as f64);
            rss.push(host_rss_mib());
            pool.shutdown().await;
        }
        figures.push(Figure::new(
            &format!("startup/{n} workers ready"),
            "ms",
            &times,
            "one bare `python -c import ...`",
            &interpreter,
        ));
        figures.push(Figure::new(
            &format!("startup/{n} workers total PSS"),
            "MiB",
            &pss,
            "PSS per worker",
            &per_worker,
        ));
        figures.push(Figure::new(
            &format!("startup/{n} workers host RSS"),
            "MiB",
            &rss,
            "host RSS before start",
            &rss_before,
        ));
    }
    Ok(figures)
}

/// Byte round trips through the binary path vs an in-process memcpy of the same size.
async fn payload(scale: Scale) -> Result<Vec<Figure>, Error> {
    let pool = ready_pool(1).await?;
    let mut figures = Vec::new();
    for (label, size, calls) in [
        ("1KiB", 1usize << 10, 200usize),
        ("1MiB", 1 << 20, 20),
        ("64MiB", 64 << 20, 3),
    ] {
        let calls = if scale.quick {
            calls.div_ceil(2)
        } else {
            calls
        };
        let data = vec![0xA5u8; size];
        let (mut trip, mut copy) = (vec![], vec![]);
        for _ in 0..scale.rounds {
            let mut per_call = Vec::with_capacity(calls);
            for _ in 0..calls {
                let call =
                    ToolCall::new("echo_bytes", json!({}))?.with_binary_arg("data", data.clone());
                let t = Instant::now();
                let out = pool.execute_call(call).await?;
                per_call.push(micros(t.elapsed()));
                if out.binary.as_ref().map(|b| b.len()) != Some(size) {
                    return Err(Error::pool(format!(
                        "echo_bytes returned the wrong size for {label}"
                    )));
                }
            }
            trip.push(percentile(&sorted(per_call), 0.5));
            let mut dst = vec![0u8; size];
            let t = Instant::now();
            for _ in 0..calls {
                dst.copy_from_slice(std::hint::black_box(&data));
                std::hint::black_box(&mut dst);
            }
            copy.push(micros(t.elapsed()) / calls as f64);
        }
        figures.push(Figure::new(
            &format!("payload/{label} round trip"),
            "us",
            &trip,
            "in-process memcpy",
            &copy,
        ));
    }
    pool.shutdown().await;
    Ok(figures)
}

/// One call of `tool` with array `x`; returns its time in µs after checking the result's size.
async fn array_round_trip(pool: &Pool, tool: &str, x: &ArrayData) -> Result<f64, Error> {
    let call = ToolCall::new(tool, json!({}))?.with_array("x", x.clone());
    let t = Instant::now();
    let out = pool.execute_call(call).await?;
    let elapsed = micros(t.elapsed());
    match out.array() {
        Some(a) if a.bytes.len() == x.bytes.len() => Ok(elapsed),
        _ => Err(Error::pool(format!(
            "{tool} returned no {}-byte array",
            x.bytes.len()
        ))),
    }
}

/// Array round trips through shared memory vs the message path vs an in-process memcpy.
///
/// `echo` returns the argument itself (a view of the host's region goes back: one copy in
/// all, the host's write); `copy` returns a new array (the worker writes its own region: two
/// copies). The message path is the same echo with `zero_copy.enabled = false`.
async fn zero_copy(scale: Scale) -> Result<Vec<Figure>, Error> {
    let shm = Pool::start(bench_config(1)).await?;
    let mut off = bench_config(1);
    off.zero_copy.enabled = false;
    // The message path must carry the 512 MiB row (the fast transport's default cap is 256 MiB).
    off.max_message_bytes = 1 << 30;
    let message = Pool::start(off).await?;
    shm.await_ready(Duration::from_secs(300)).await?;
    message.await_ready(Duration::from_secs(300)).await?;
    let mut figures = Vec::new();
    for (label, size, calls) in [
        ("1MiB", 1usize << 20, 20usize),
        ("64MiB", 64 << 20, 4),
        ("512MiB", 512 << 20, 1),
    ] {
        let calls = if scale.quick {
            calls.div_ceil(2)
        } else {
            calls
        };
        let array = ArrayData::from_vec(vec![1.5f32; size / 4], vec![size / 4])?;
        let (mut echo, mut copy, mut msg, mut memcpy) = (vec![], vec![], vec![], vec![]);
        for _ in 0..scale.rounds {
            let (mut e, mut c, mut m) = (vec![], vec![], vec![]);
            for _ in 0..calls {
                e.push(array_round_trip(&shm, "array_echo", &array).await?);
                c.push(array_round_trip(&shm, "array_copy", &array).await?);
                m.push(array_round_trip(&message, "array_echo", &array).await?);
            }
            echo.push(percentile(&sorted(e), 0.5));
            copy.push(percentile(&sorted(c), 0.5));
            msg.push(percentile(&sorted(m), 0.5));
            let mut dst = vec![0u8; size];
            let t = Instant::now();
            for _ in 0..calls {
                dst.copy_from_slice(std::hint::black_box(&array.bytes));
                std::hint::black_box(&mut dst);
            }
            memcpy.push(micros(t.elapsed()) / calls as f64);
        }
        let name = |what: &str| format!("zero_copy/{label} {what}");
        figures.push(Figure::new(
            &name("shm echo"),
            "us",
            &echo,
            "in-process memcpy",
            &memcpy,
        ));
        figures.push(Figure::new(
            &name("shm new array"),
            "us",
            &copy,
            "in-process memcpy",
            &memcpy,
        ));
        figures.push(Figure::new(
            &name("shm echo"),
            "us",
            &echo,
            "message-path echo",
            &msg,
        ));
    }
    shm.shutdown().await;
    message.shutdown().await;
    Ok(figures)
}

/// SIGKILLs the pool's oldest worker and waits until its replacement serves; returns the time
/// from the kill. Shared by the `recovery` and `zygote` groups, which give the pool one worker
/// per round more than needed, so every round kills a worker of a slot that has not crashed
/// yet: the figure is one crash's recovery, not the crash barrier's backoff for repeated ones.
async fn kill_one_and_recover(pool: &Pool) -> Result<Duration, Error> {
    let workers = pool.list_workers();
    let size = workers.len();
    let victim = workers
        .iter()
        .max_by_key(|w| w.uptime)
        .map(|w| w.pid)
        .ok_or_else(|| Error::pool("the pool has no worker"))?;
    let t = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .map_err(|e| Error::pool(format!("cannot kill worker {victim}: {e}")))?;
    loop {
        let ws = pool.list_workers();
        if ws.len() == size && ws.iter().all(|w| w.pid != victim) {
            break;
        }
        if t.elapsed() > Duration::from_secs(60) {
            return Err(Error::pool("no replacement worker within 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // One concurrent call per worker: each lands on its own worker, the replacement included.
    let calls = (0..size)
        .map(|_| noop().map(|c| pool.execute_call(c)))
        .collect::<Result<Vec<_>, Error>>();
    for r in futures::future::join_all(calls?).await {
        r?;
    }
    Ok(t.elapsed())
}

/// Time from SIGKILL of a worker to its replacement serving, vs one fresh worker start.
async fn recovery(scale: Scale, python: &Path) -> Result<Vec<Figure>, Error> {
    let pool = ready_pool(scale.rounds + 1).await?;
    let (mut recover, mut fresh) = (vec![], vec![]);
    for round in 0..scale.rounds {
        recover.push(millis(kill_one_and_recover(&pool).await?));

        // A cold start: a fresh interpreter, not a fork of a zygote.
        let mut cold = bench_config(1);
        cold.start_mode = snakepit_core::config::StartMode::Spawn;
        let spec = WorkerSpec::new(
            WorkerId::new(format!("bench_fresh_{round}_{}", RunId::generate())),
            cold,
            python.to_path_buf(),
        );
        let t = Instant::now();
        let w = Worker::start(spec, RunContext::new()?).await?;
        w.client().execute(noop()?).await?;
        fresh.push(millis(t.elapsed()));
        w.stop().await;
    }
    pool.shutdown().await;
    Ok(vec![Figure::new(
        "recovery/SIGKILL to serving",
        "ms",
        &recover,
        "one fresh Worker::start + call",
        &fresh,
    )])
}

struct Args {
    suite: bool,
    quick: bool,
    only: Option<String>,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        suite: false,
        quick: false,
        only: None,
        out: Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench/results.json"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--suite" => args.suite = true,
            "--quick" => args.quick = true,
            "--only" => args.only = Some(it.next().ok_or("--only needs a group name")?),
            "--out" => args.out = PathBuf::from(it.next().ok_or("--out needs a path")?),
            // `cargo bench` passes `--bench` and maybe a filter; neither applies here.
            _ => {}
        }
    }
    if let Some(only) = &args.only {
        if !GROUPS.contains(&only.as_str()) {
            return Err(format!(
                "unknown group '{only}' (groups: {})",
                GROUPS.join(", ")
            ));
        }
    }
    Ok(args)
}

async fn run(args: Args) -> Result<(), String> {
    let scale = Scale {
        quick: args.quick,
        rounds: if args.quick { 3 } else { 5 },
    };
    let python = snakepit_worker::python_env::ensure_python(None)
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut figures = Vec::new();
    for group in GROUPS
        .iter()
        .filter(|g| args.only.as_deref().is_none_or(|o| o == **g))
    {
        eprintln!("bench: {group} ...");
        let t = Instant::now();
        let result = match *group {
            "latency" => latency(scale, &python).await,
            "throughput" => throughput(scale, &python).await,
            "startup" => startup(scale, &python).await,
            "payload" => payload(scale).await,
            "zero_copy" => zero_copy(scale).await,
            "zygote" => zygote_startup::zygote(scale).await,
            _ => recovery(scale, &python).await,
        };
        figures.extend(result.map_err(|e| format!("{group}: {e}"))?);
        eprintln!("bench: {group} took {:.1} s", t.elapsed().as_secs_f64());
    }
    print!("{}", table(&figures));
    let doc = json!({
        "quick": scale.quick,
        "rounds": scale.rounds,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "elapsed_s": started.elapsed().as_secs_f64(),
        "figures": figures.iter().map(Figure::to_json).collect::<Vec<_>>(),
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    std::fs::write(&args.out, text)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    eprintln!("bench: results written to {}", args.out.display());
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("e2e bench: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if !args.suite {
        eprintln!("e2e bench: skipped (run the end-to-end suite with `cargo xtask bench`)");
        return std::process::ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("e2e bench: cannot start tokio: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
