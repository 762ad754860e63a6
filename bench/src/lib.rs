//! Load drivers of the booking engine, one binary each under `src/bin/` (`load`,
//! `webhook_load`, `relay_load`, `search_load`, `throughput`, `purge`), and the measurement
//! code they share: CPU sampling from `/proc`, percentiles, running pgbench on the adapter's
//! own SQL, and the bookings the adapter-level drivers write.
//!
//! ```text
//! cargo run --release -p booking-bench --bin <driver> -- [arguments]
//! ```

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use booking_core::domain::{
    Booking, BookingId, BookingStatus, ClientId, Currency, Money, ProfessionalId, TimeRange,
};
use booking_postgres::test_support::TestDatabase;
use chrono::{DateTime, Utc};

/// The categories the search benchmarks seed and query, as in
/// `booking-postgres/bench/search_seed.sql`.
pub const CATEGORIES: [&str; 20] = [
    "massage",
    "yoga",
    "physio",
    "tax-advice",
    "tutoring",
    "plumbing",
    "hair",
    "nails",
    "coaching",
    "therapy",
    "photography",
    "dog-walking",
    "cleaning",
    "fitness",
    "language",
    "music",
    "legal-advice",
    "design",
    "it-support",
    "nutrition",
];

/// The drivers' error type: any error, printed and fatal.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// 2030-01-01T00:00:00Z: the first slot the adapter-level drivers book.
pub const BASE_EPOCH: i64 = 1_893_456_000;

/// One-hour slot `n` from [`BASE_EPOCH`] on.
pub fn slot(n: i64) -> Result<TimeRange, BoxError> {
    let start = DateTime::<Utc>::from_timestamp(BASE_EPOCH + n * 3600, 0)
        .ok_or("timestamp out of range")?;
    Ok(TimeRange::new(start, start + chrono::Duration::hours(1))?)
}

/// A confirmed booking of 60 EUR of `pro` for `client` in [`slot`] `n`, with `request_ref`.
pub fn confirmed_booking(
    pro: ProfessionalId,
    client: ClientId,
    n: i64,
    request_ref: Option<String>,
) -> Result<Booking, BoxError> {
    let now = Utc::now();
    let range = slot(n)?;
    Ok(Booking {
        id: BookingId::new_at(now),
        professional_id: pro,
        client_id: client,
        range,
        blocked: range,
        status: BookingStatus::Confirmed,
        price: Money::new(6_000, Currency::parse("eur")?)?,
        hold_expires_at: None,
        request_ref,
        payment: None,
        created_at: now,
        updated_at: now,
    })
}

/// CPU time counters from `/proc` (Linux); all zero elsewhere.
#[derive(Clone, Copy, Default)]
pub struct CpuSample {
    /// This process: user + system ticks.
    own: u64,
    /// The machine: busy ticks over all CPUs.
    busy: u64,
    /// The machine: all ticks over all CPUs.
    total: u64,
}

impl CpuSample {
    /// The counters now.
    pub fn now() -> Self {
        let own = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                // Fields after the command name (which may contain spaces) in parentheses.
                let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
                let utime: u64 = rest.get(11)?.parse().ok()?;
                let stime: u64 = rest.get(12)?.parse().ok()?;
                Some(utime + stime)
            })
            .unwrap_or(0);
        let (busy, total) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("cpu "))?;
                let v: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                // user nice system idle iowait irq softirq steal (guest is inside user).
                let total: u64 = v.iter().take(8).sum();
                let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
                Some((total - idle, total))
            })
            .unwrap_or((0, 0));
        Self { own, busy, total }
    }

    /// Cores used since `earlier`: (this process, everything else).
    pub fn cores_since(&self, earlier: &Self) -> (f64, f64) {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return (f64::NAN, f64::NAN);
        }
        let own = self.own.saturating_sub(earlier.own) as f64 / total as f64 * cpus;
        let busy = self.busy.saturating_sub(earlier.busy) as f64 / total as f64 * cpus;
        (own, (busy - own).max(0.0))
    }
}

/// The `p` quantile (0..=1) of `sorted`; zero for none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The machine's load averages, as `/proc/loadavg` has them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The pgbench binary: `PGBENCH`, else on `PATH`, else the newest
/// `/usr/lib/postgresql/*/bin/pgbench`.
pub fn pgbench_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PGBENCH") {
        return Some(PathBuf::from(p));
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("pgbench"))
            .find(|p| p.is_file())
    }) {
        return Some(found);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin/pgbench")))
        .filter(|p| p.is_file())
        .collect();
    versions.sort();
    versions.pop()
}

/// `sql` with every `$n` replaced by `(args[n - 1])`. Panics unless every argument is used
/// and no other parameter occurs: a statement that changed shape must change the bench.
pub fn substitute(sql: &str, args: &[&str]) -> String {
    let mut out = String::with_capacity(sql.len() + 64 * args.len());
    let mut used = vec![false; args.len()];
    let mut chars = sql.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut end = i + 1;
        while let Some((j, d)) = chars.peek().copied() {
            if !d.is_ascii_digit() {
                break;
            }
            end = j + 1;
            chars.next();
        }
        let n: usize = sql[i + 1..end]
            .parse()
            .unwrap_or_else(|_| panic!("a `$` that is not a parameter in: {sql}"));
        let arg = args
            .get(n - 1)
            .unwrap_or_else(|| panic!("no argument for ${n} in: {sql}"));
        used[n - 1] = true;
        out.push('(');
        out.push_str(arg);
        out.push(')');
    }
    assert!(
        used.iter().all(|u| *u),
        "unused arguments {args:?} for: {sql}"
    );
    out
}

/// What one pgbench run measured.
pub struct PgbenchRun {
    /// Transactions processed.
    pub processed: usize,
    /// Transactions that failed.
    pub failed: usize,
    /// Transactions per second, as pgbench reports it.
    pub tps: f64,
    /// Every transaction's latency, sorted.
    pub latencies: Vec<Duration>,
    /// Cores used meanwhile by everything but this process (the database, pgbench).
    pub cpu_other: f64,
}

/// Runs pgbench with script `text` for `seconds` at `clients` clients on `db`, with
/// `-D n=0 -D run=<run>` (`run` keeps keys and slots of several runs apart), logging each
/// transaction's latency. `tag` names the temporary directory.
pub fn run_pgbench(
    db: &TestDatabase,
    binary: &Path,
    clients: usize,
    seconds: u64,
    run: usize,
    tag: &str,
    text: &str,
) -> Result<PgbenchRun, String> {
    let dir = std::env::temp_dir().join(format!("{tag}-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let script = dir.join("script.sql");
    std::fs::write(&script, text).map_err(|e| e.to_string())?;
    let threads = clients.min(std::thread::available_parallelism().map_or(2, |n| n.get()));
    let cpu_before = CpuSample::now();
    let output = Command::new(binary)
        .args(["-n", "-M", "prepared", "-D", "n=0"])
        .arg("-D")
        .arg(format!("run={run}"))
        .arg("-c")
        .arg(clients.to_string())
        .arg("-j")
        .arg(threads.to_string())
        .arg("-T")
        .arg(seconds.max(1).to_string())
        .arg("-l")
        .arg("--log-prefix")
        .arg(dir.join("log"))
        .arg("-f")
        .arg(&script)
        .arg(db.url())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let (_, cpu_other) = CpuSample::now().cores_since(&cpu_before);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let mut latencies = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with("log") {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            // client_id transaction_no time_us script_no epoch epoch_us
            latencies.extend(text.lines().filter_map(|l| {
                let us: u64 = l.split_whitespace().nth(2)?.parse().ok()?;
                Some(Duration::from_micros(us))
            }));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if !output.status.success() {
        return Err(format!(
            "pgbench failed ({}):\n{stdout}\n{stderr}",
            output.status
        ));
    }
    let summary = PgbenchSummary::parse(&stdout).map_err(|e| format!("{e}\n{stderr}"))?;
    if stderr.contains("aborted") || stderr.contains("ERROR") {
        return Err(format!("pgbench clients failed:\n{stderr}"));
    }
    latencies.sort_unstable();
    Ok(PgbenchRun {
        processed: summary.processed,
        failed: summary.failed,
        tps: summary.tps,
        latencies,
        cpu_other,
    })
}

/// The figures of pgbench's summary on standard output.
pub struct PgbenchSummary {
    /// Transactions per second.
    pub tps: f64,
    /// Transactions processed.
    pub processed: usize,
    /// Transactions that failed (0 when pgbench does not report the line).
    pub failed: usize,
}

impl PgbenchSummary {
    /// Reads the `tps = `, `number of transactions actually processed: ` and
    /// `number of failed transactions: ` lines of pgbench's `stdout`.
    pub fn parse(stdout: &str) -> Result<Self, String> {
        let field = |prefix: &str| {
            stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_owned))
        };
        let tps = field("tps = ")
            .and_then(|rest| rest.split_whitespace().next().map(str::to_owned))
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("no tps in pgbench output:\n{stdout}"))?;
        let processed = field("number of transactions actually processed: ")
            .and_then(|v| v.split('/').next().map(str::to_owned))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or_else(|| format!("no transaction count in pgbench output:\n{stdout}"))?;
        let failed = field("number of failed transactions: ")
            .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
            .unwrap_or(0);
        Ok(Self {
            tps,
            processed,
            failed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::PgbenchSummary;

    #[test]
    fn pgbench_summary_reads_rate_count_and_failures() {
        let stdout = "transaction type: script.sql\n\
            number of clients: 2\n\
            number of transactions actually processed: 426/426\n\
            number of failed transactions: 3 (0.699%)\n\
            latency average = 4.671 ms\n\
            tps = 426.400513 (without initial connection time)\n";
        let summary = PgbenchSummary::parse(stdout).expect("summary");
        assert_eq!(summary.processed, 426);
        assert_eq!(summary.failed, 3);
        assert!((summary.tps - 426.400513).abs() < 1e-9);
        assert!(PgbenchSummary::parse("no summary").is_err());
    }
}
