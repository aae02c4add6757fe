//! Queue benchmark: how many no-op jobs per second one worker drains. Creates (and drops) its own
//! database `alertgraph_bench_queue` on the server `DATABASE_URL` names, enqueues
//! ALERTGRAPH_BENCH_JOBS jobs (default 50,000) in one statement, then runs one worker until every
//! job is succeeded.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

const DATABASE: &str = "alertgraph_bench_queue";

#[tokio::main]
async fn main() {
    let jobs: i64 =
        std::env::var("ALERTGRAPH_BENCH_JOBS").ok().and_then(|s| s.parse().ok()).unwrap_or(50_000);
    let bench = common::BenchDatabase::create(DATABASE, 40).await;
    let db = bench.db.clone();
    sqlx::query(
        "insert into job (kind, payload) select 'noop', '{}'::jsonb from generate_series(1, $1)",
    )
    .bind(jobs)
    .execute(&db)
    .await
    .unwrap();

    let ran = Arc::new(AtomicUsize::new(0));
    let counted = ran.clone();
    let handlers = worker::Handlers::new().register("noop", move |_ctx| {
        counted.fetch_add(1, Ordering::Relaxed);
        async { Ok(()) }
    });
    let cfg = worker::WorkerConfig { worker_id: "bench".into(), ..Default::default() };
    let (stop, mut stopped) = watch::channel(false);
    let started = Instant::now();
    let running = tokio::spawn(worker::run(db.clone(), cfg, handlers, async move {
        let _ = stopped.wait_for(|&stop| stop).await;
    }));
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if ran.load(Ordering::Relaxed) as i64 >= jobs {
            let done: i64 =
                sqlx::query_scalar("select count(*) from job where state = 'succeeded'")
                    .fetch_one(&db)
                    .await
                    .unwrap();
            if done >= jobs {
                break;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.send(true).unwrap();
    running.await.unwrap().unwrap();
    println!(
        "queue benchmark: {jobs} no-op jobs drained by one worker in {elapsed:.2} s = {:.0} jobs/s",
        jobs as f64 / elapsed
    );
    bench.drop().await;
}
