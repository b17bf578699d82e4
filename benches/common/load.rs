//! A small closed-loop load generator: `concurrency` tasks each issue one request at a time
//! (a new one as soon as the previous answers) until a duration or a request count is reached,
//! recording every request's latency. Warm-up requests run first and are not recorded. Used
//! for HTTP requests (reqwest over loopback) and for raw sqlx statements alike, so every
//! figure and its bound come from the same loop.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How hard and how long to push.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub concurrency: usize,
    pub warm_up: Duration,
    pub duration: Duration,
    /// Stop after this many requests (warm-up included) even before `duration`.
    pub max_requests: u64,
}

/// What one measured run did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Successful requests measured.
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    /// Requests issued in total, warm-up included (the next free request index).
    pub issued: u64,
    /// Sorted latencies of the successful measured requests, in µs.
    latencies: Vec<u32>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The `q`-quantile latency (0 < q < 1) in ms.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let i =
            ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len()) - 1;
        f64::from(self.latencies[i]) / 1000.0
    }

    pub fn p50_ms(&self) -> f64 {
        self.quantile_ms(0.50)
    }

    pub fn p99_ms(&self) -> f64 {
        self.quantile_ms(0.99)
    }
}

struct Phase {
    latencies: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

async fn phase<F, Fut>(
    op: Arc<F>,
    next: Arc<AtomicU64>,
    concurrency: usize,
    until: Instant,
    limit: u64,
) -> Phase
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let op = op.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Phase {
                latencies: Vec::with_capacity(4096),
                errors: 0,
                first_error: None,
            };
            while Instant::now() < until {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                let started = Instant::now();
                let result = op(i).await;
                let micros = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                match result {
                    Ok(()) => out.latencies.push(micros),
                    Err(e) => {
                        out.errors += 1;
                        out.first_error.get_or_insert(e);
                    }
                }
            }
            out
        }));
    }
    let mut all = Phase {
        latencies: Vec::new(),
        errors: 0,
        first_error: None,
    };
    for t in tasks {
        match t.await {
            Ok(p) => {
                all.latencies.extend(p.latencies);
                all.errors += p.errors;
                if all.first_error.is_none() {
                    all.first_error = p.first_error;
                }
            }
            Err(e) => {
                all.errors += 1;
                all.first_error.get_or_insert(e.to_string());
            }
        }
    }
    all
}

/// Run `op(i)` for i = `first`, `first + 1`, … under `load`; `op` returns Err with a
/// description for a failed request.
pub async fn run<F, Fut>(load: &Load, first: u64, op: F) -> Outcome
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(first));
    let limit = first.saturating_add(load.max_requests);
    if !load.warm_up.is_zero() {
        phase(
            op.clone(),
            next.clone(),
            load.concurrency,
            Instant::now() + load.warm_up,
            limit,
        )
        .await;
    }
    let started = Instant::now();
    let mut measured = phase(
        op,
        next.clone(),
        load.concurrency,
        started + load.duration,
        limit,
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    measured.latencies.sort_unstable();
    Outcome {
        requests: measured.latencies.len() as u64,
        errors: measured.errors,
        first_error: measured.first_error,
        seconds,
        issued: next.load(Ordering::Relaxed).min(limit),
        latencies: measured.latencies,
    }
}

/// Send a request and read the whole body; Err unless the status is `want`.
pub async fn expect_status(request: reqwest::RequestBuilder, want: u16) -> Result<(), String> {
    let res = request.send().await.map_err(|e| format!("send: {e}"))?;
    let status = res.status().as_u16();
    let body = res.bytes().await.map_err(|e| format!("body: {e}"))?;
    if status == want {
        Ok(())
    } else {
        Err(format!(
            "status {status} (wanted {want}): {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ))
    }
}

/// The HTTP client of the load generator: keep-alive connections, no Nagle delay.
pub fn client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency * 2)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("http client")
}
