//! The `zygote` group of the e2e suite: pools started and recovered with `start_mode = "zygote"`,
//! each figure against the same pool with `start_mode = "spawn"` measured in the same run.

use std::time::{Duration, Instant};

use snakepit_core::config::{PoolConfig, StartMode};
use snakepit_core::Error;
use snakepit_pool::Pool;

use super::{bench_config, kill_one_and_recover, millis, Figure, Scale};

fn config(size: usize, mode: StartMode) -> PoolConfig {
    let mut c = bench_config(size);
    c.start_mode = mode;
    c
}

async fn ready_pool(size: usize, mode: StartMode) -> Result<Pool, Error> {
    let pool = Pool::start(config(size, mode)).await?;
    pool.await_ready(Duration::from_secs(300)).await?;
    Ok(pool)
}

/// Milliseconds until a pool of `size` workers started in `mode` is ready.
async fn time_to_ready(size: usize, mode: StartMode) -> Result<f64, Error> {
    let t = Instant::now();
    let pool = ready_pool(size, mode).await?;
    let elapsed = millis(t.elapsed());
    pool.shutdown().await;
    Ok(elapsed)
}

/// Milliseconds from SIGKILL of one worker to its replacement serving, per round.
async fn recovery_rounds(mode: StartMode, rounds: usize) -> Result<Vec<f64>, Error> {
    let pool = ready_pool(rounds + 1, mode).await?;
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        out.push(millis(kill_one_and_recover(&pool).await?));
        // Let the pool settle (no start-up in flight) before the next kill.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pool.shutdown().await;
    Ok(out)
}

/// Start-up at 16 and 100 workers and crash recovery, zygote against spawn, interleaved per round.
pub(crate) async fn zygote(scale: Scale) -> Result<Vec<Figure>, Error> {
    let sizes: &[usize] = if scale.quick { &[16] } else { &[16, 100] };
    let rounds = if scale.quick { 2 } else { 3 };
    let mut figures = Vec::new();
    for &n in sizes {
        let (mut zygote, mut spawn) = (vec![], vec![]);
        for _ in 0..rounds {
            spawn.push(time_to_ready(n, StartMode::Spawn).await?);
            zygote.push(time_to_ready(n, StartMode::Zygote).await?);
        }
        figures.push(Figure::new(
            &format!("zygote/{n} workers ready"),
            "ms",
            &zygote,
            &format!("spawn: {n} workers ready"),
            &spawn,
        ));
    }
    let spawn = recovery_rounds(StartMode::Spawn, scale.rounds).await?;
    let zygote = recovery_rounds(StartMode::Zygote, scale.rounds).await?;
    figures.push(Figure::new(
        "zygote/SIGKILL to serving",
        "ms",
        &zygote,
        "spawn: SIGKILL to serving",
        &spawn,
    ));
    Ok(figures)
}
