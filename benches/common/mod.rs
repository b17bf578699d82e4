//! What the benchmark targets share: the roster generator, the load generator, memory
//! readings from /proc, the machine description, PostgreSQL scratch schemas and the JSON
//! output. Each bench target uses part of it.
#![allow(dead_code)]

pub mod load;
pub mod roster;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// The sealing key every bench instance shares (a fixed test key, never a real one).
pub const SECRET_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Settings for a bench instance on `database_url` with the shipped `mappings/`.
pub fn bench_env(database_url: &str) -> std::collections::BTreeMap<String, String> {
    [
        ("GUESTBRIDGE_DATABASE_URL", database_url.to_string()),
        ("GUESTBRIDGE_SECRET_KEY", SECRET_KEY.to_string()),
        (
            "GUESTBRIDGE_MAPPINGS",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("mappings")
                .display()
                .to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Who the audit log says ran a bench's writes.
pub fn bench_actor() -> guestbridge::services::Actor {
    guestbridge::services::Actor {
        label: "bench".into(),
        request_id: None,
    }
}

/// A `/proc/<pid>/status` field in MiB (`VmRSS`, `VmHWM`), for `pid` or "self".
pub fn status_mib(pid: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line
        .trim_start_matches(field)
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Reset the peak resident set (`VmHWM`) of `pid` to its current RSS (Linux ≥ 4.0), so the
/// next reading of `VmHWM` is the peak of what ran in between.
pub fn reset_peak(pid: &str) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The machine the figures come from: cores, CPU model, memory and load right now.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": model,
        "memory_gib": (mem_gib * 10.0).round() / 10.0,
        "load_average": load_average(),
    })
}

/// The 1, 5 and 15-minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where results go: `$CARGO_TARGET_DIR/bench`, else `target/bench` in the crate.
pub fn output_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench")
}

/// Write `value` as `<output_dir>/<name>.json`; returns the path written.
pub fn write_json(name: &str, value: &Value) -> Option<PathBuf> {
    let dir = output_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(value).ok()?).ok()?;
    Some(path)
}

/// An environment variable parsed, or the default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// True when `BENCH_FULL=1` asks for the long variants.
pub fn full() -> bool {
    std::env::var("BENCH_FULL").is_ok_and(|v| v == "1" || v == "true")
}

/// The PostgreSQL server to benchmark, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("GUESTBRIDGE_BENCH_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// A fresh schema on the benchmark PostgreSQL server, dropped by `drop`.
pub struct PgSchema {
    base: String,
    pub name: String,
    /// The server URL with this schema as the search path.
    pub url: String,
}

impl PgSchema {
    pub async fn create(base: &str, prefix: &str) -> PgSchema {
        sqlx::any::install_default_drivers();
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(base)
            .await
            .expect("connect to the benchmark PostgreSQL");
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .await
            .expect("create benchmark schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        PgSchema {
            base: base.to_string(),
            url: format!("{base}{sep}options=-c%20search_path%3D{name}"),
            name,
        }
    }

    pub async fn drop(self) {
        if let Ok(mut conn) = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.base).await {
            let _ = sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
                .execute(&mut conn)
                .await;
        }
    }
}

/// Format a count with thousands separators (10000 → "10,000").
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Let a just-finished load settle before reading idle memory.
pub async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// With `BENCH_PERF_DIR` set, `perf record` samples process `pid` from `start` to `stop` into
/// `<dir>/<label>.data` (call graphs from DWARF: use a build with debug line tables).
pub struct Profile(Option<Child>);

impl Profile {
    pub fn start(pid: &str, label: &str) -> Profile {
        let Some(dir) = std::env::var_os("BENCH_PERF_DIR") else {
            return Profile(None);
        };
        let name: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let out = PathBuf::from(dir).join(format!("{name}.data"));
        let child = Command::new("perf")
            .args([
                "record",
                "-F",
                "299",
                "--call-graph",
                "dwarf,16384",
                "-p",
                pid,
                "-o",
            ])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        std::thread::sleep(Duration::from_millis(300));
        Profile(child)
    }

    pub fn stop(self) {
        if let Some(mut child) = self.0 {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}
