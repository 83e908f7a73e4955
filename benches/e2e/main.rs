//! End-to-end benchmark: the release `hookrelay` binary as a child process, an in-process HTTPS sink, and
//! producers on the unix socket. Prints one table and one JSON line per scenario. See BENCHMARKS.md.
//! `sealed` runs durable ingest and end to end again with `encryption_key` set (SPEC §8); `failing` has
//! every delivery fail once with a 4 KiB answer before it succeeds.
//!
//!   cargo bench --bench e2e                  # every scenario
//!   cargo bench --bench e2e -- ingest e2e    # only the scenarios whose names contain these words
//!
//! Sizes can be lowered for a quick run: BENCH_EVENTS (end to end, default 100000), BENCH_PENDING (memory
//! and restart, default 1000000), BENCH_LATENCY_SECS (default 30), BENCH_ADMIN_HELD (admin queries,
//! default 200000), BENCH_PURGE_EVENTS (default 100000).

#[path = "../../tests/support/mod.rs"]
mod support;

mod process;
mod producer;
mod sink;

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::net::TcpListener;

use producer::{drive, Connection};
use sink::Sink;
use support::relay::{RelayProcess, TestEnv};

/// Per-attempt INFO lines would make the harness parse 100k log lines on the same two cores; the
/// readiness line stays visible.
const RUST_LOG: &str = "warn,hookrelay::relay=info";
const PRODUCERS: usize = 64;
const PAD_BYTES: usize = 1000;

struct Row {
    scenario: String,
    value: f64,
    unit: &'static str,
    target: &'static str,
    detail: String,
}

/// Writes back what earlier scenarios left in the page cache (their state directories are deleted on the
/// way out), so that a scenario's commits do not queue behind that writeback on the same disk.
fn settle_disk() {
    let _ = std::process::Command::new("sync").status();
}

fn size(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A fixed store key for the sealed scenarios (SPEC §8).
const STORE_KEY: &str = "encryption_key = \"q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\"\n";

fn write_config(env: &TestEnv, subscriptions: &str) {
    write_config_sealed(env, subscriptions, false);
}

/// The benchmark config; `sealed` sets `encryption_key`.
fn write_config_sealed(env: &TestEnv, subscriptions: &str, sealed: bool) {
    let key = if sealed { STORE_KEY } else { "" };
    let text = format!(
        "[relay]\nstate_dir = \"state\"\nmax_pending = 100000000\n{key}\n\
         [ingest]\nunix_socket = \"relay.sock\"\nhttp = \"127.0.0.1:0\"\nmax_body_bytes = 8388608\n\n\
         [log]\nformat = \"json\"\n\n\
         [delivery]\nca_file = \"ca.pem\"\nretry = [\"1s\", \"5s\", \"30s\"]\n\n{subscriptions}"
    );
    std::fs::write(env.config_path(), text).unwrap();
}

fn subscription(name: &str, url: &str, extra: &str) -> String {
    format!("[[subscription]]\nname = \"{name}\"\nurl = \"{url}\"\nevents = [\"*\"]\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n{extra}\n")
}

async fn start(env: &TestEnv) -> RelayProcess {
    env.start_with_env(&[("RUST_LOG", RUST_LOG)]).await
}

fn socket(relay: &RelayProcess) -> std::path::PathBuf {
    match &relay.unix {
        support::client::Target::Unix(path) => path.clone(),
        _ => unreachable!(),
    }
}

async fn durable_ingest(batch: usize, total: usize, sealed: bool) -> Row {
    settle_disk();
    let env = TestEnv::new();
    write_config_sealed(&env, &subscription("held", "https://127.0.0.1:9/", "enabled = false"), sealed);
    let relay = start(&env).await;
    let cpu_before = process::cpu_ms(relay.pid());
    let elapsed = drive(&socket(&relay), PRODUCERS, total, batch, PAD_BYTES, "i").await;
    let relay_cpu = (process::cpu_ms(relay.pid()) - cpu_before) / 1000.0;
    let flushes = flush_stats(&relay).await;
    Row {
        scenario: match (batch, sealed) {
            (1, false) => "durable ingest, single events",
            (1, true) => "durable ingest, single, sealed",
            _ => "durable ingest, batches of 100",
        }
        .into(),
        value: total as f64 / elapsed.as_secs_f64(),
        unit: "events/s",
        target: if batch == 1 { ">= 25000" } else { ">= 100000" },
        detail: format!(
            "{total} events of 1 KiB data, {PRODUCERS} producers, {:.2} s; relay CPU {relay_cpu:.2} s; {flushes}",
            elapsed.as_secs_f64()
        ),
    }
}

/// "N group commits, mean X ms" from the relay's own metrics.
async fn flush_stats(relay: &RelayProcess) -> String {
    let answer = support::client::send(relay.tcp(), support::client::Call::get("/metrics")).await;
    let text = String::from_utf8_lossy(&answer.body).into_owned();
    let sample = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (sum, count) =
        (sample("hookrelay_store_flush_duration_seconds_sum"), sample("hookrelay_store_flush_duration_seconds_count"));
    format!("{count} group commits, mean {:.2} ms", sum / count.max(1.0) * 1000.0)
}

/// What a run of single events through the relay to the sink measured.
struct Run {
    elapsed: Duration,
    /// The relay's CPU and disk writes over the run.
    cpu_ms: f64,
    disk_kib: f64,
    peak_rss_mib: f64,
    flushes: String,
}

/// Starts the relay on the config `env` holds, drives `total` single events (ids tagged `tag`) and waits
/// until the sink has had `arrivals` requests.
async fn run_through(env: &TestEnv, sink: &Sink, total: usize, arrivals: usize, tag: &str) -> Run {
    let relay = start(env).await;
    let cpu_before = process::cpu_ms(relay.pid());
    let disk_before = process::disk_write_bytes(relay.pid());
    let started = Instant::now();
    drive(&socket(&relay), PRODUCERS, total, 1, PAD_BYTES, tag).await;
    sink.wait_for(arrivals).await;
    let elapsed = started.elapsed();
    let cpu_ms = process::cpu_ms(relay.pid()) - cpu_before;
    let disk_kib = (process::disk_write_bytes(relay.pid()) - disk_before) / 1024.0;
    let (_, peak_rss_mib) = process::rss_mib(relay.pid());
    let flushes = flush_stats(&relay).await;
    Run { elapsed, cpu_ms, disk_kib, peak_rss_mib, flushes }
}

/// Scenario 2 and 3: `subscriptions` receivers of every event; returns the rate and the relay's peak RSS.
async fn end_to_end(subscriptions: usize, total: usize, sealed: bool) -> (Row, f64) {
    settle_disk();
    let env = TestEnv::new();
    let sink = Sink::start(&env.ca, None).await;
    let extra = std::env::var("BENCH_SUBSCRIPTION_EXTRA").unwrap_or_default();
    let config: String = (0..subscriptions).map(|i| subscription(&format!("s{i}"), &sink.url, &extra)).collect();
    write_config_sealed(&env, &config, sealed);
    let deliveries = total * subscriptions;
    let run = run_through(&env, &sink, total, deliveries, "e").await;
    let (seconds, flushes) = (run.elapsed.as_secs_f64(), &run.flushes);
    let per_delivery = format!(
        "relay CPU {:.3} ms, disk writes {:.2} KiB per delivery; {flushes}",
        run.cpu_ms / deliveries as f64,
        run.disk_kib / deliveries as f64
    );
    let row = if subscriptions == 1 {
        Row {
            scenario: if sealed { "end to end, sealed" } else { "end to end, 1 subscription" }.into(),
            value: total as f64 / seconds,
            unit: "events/s",
            target: ">= 12000",
            detail: format!("{total} events, first accept to last delivery {seconds:.2} s; {per_delivery}"),
        }
    } else {
        Row {
            scenario: "fan-out, 10 subscriptions".into(),
            value: deliveries as f64 / seconds,
            unit: "deliveries/s",
            target: ">= 25000",
            detail: format!("{total} events x {subscriptions} subscriptions in {seconds:.2} s; {per_delivery}"),
        }
    };
    (row, run.peak_rss_mib)
}

/// Every delivery fails once, with a 500 and a 4 KiB answer (as much as the relay keeps), then succeeds
/// on an immediate retry: what recording long answers costs (a delivery record carries only short ones;
/// a long one goes to its own key).
async fn failing_once(total: usize) -> Row {
    settle_disk();
    let env = TestEnv::new();
    let sink = Sink::failing_first(&env.ca).await;
    write_config(&env, &subscription("s", &sink.url, "retry = [\"0s\"]\npause_after = 0"));
    let run = run_through(&env, &sink, total, 2 * total, "f").await;
    let seconds = run.elapsed.as_secs_f64();
    Row {
        scenario: "failing once, 4 KiB answers".into(),
        value: total as f64 / seconds,
        unit: "events/s",
        target: "",
        detail: format!(
            "{total} events, each a 500 then a 204, first accept to last delivery {seconds:.2} s; relay CPU {:.3} ms, disk writes {:.2} KiB per event; {}",
            run.cpu_ms / total as f64,
            run.disk_kib / total as f64,
            run.flushes
        ),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// What a paced run measured: each event's accept time and its accept-to-received time, sorted, and the
/// relay's CPU per event.
struct Paced {
    rate: usize,
    seconds: usize,
    accept: Vec<Duration>,
    onward: Vec<Duration>,
    cpu_per_event_ms: f64,
}

impl Paced {
    fn total(&self) -> usize {
        self.rate * self.seconds
    }

    /// What an event costs the relay at this rate (at a clinic's load, 200/s, fixed costs are not spread
    /// over many).
    fn cost_row(&self) -> Row {
        Row {
            scenario: format!("paced {}/s: CPU per event", self.rate),
            value: self.cpu_per_event_ms,
            unit: "ms",
            target: "<= 0.2",
            detail: format!(
                "{} events at {}/s over {} s; accept {}; accept to received {}",
                self.total(),
                self.rate,
                self.seconds,
                spread(&self.accept),
                spread(&self.onward)
            ),
        }
    }

    fn latency_rows(&self) -> Vec<Row> {
        vec![
            Row {
                scenario: "latency: accept p99".into(),
                value: percentile(&self.accept, 0.99),
                unit: "ms",
                target: "<= 2",
                detail: format!(
                    "{} events at {}/s: {}; relay CPU {:.3} ms per event",
                    self.total(),
                    self.rate,
                    spread(&self.accept),
                    self.cpu_per_event_ms
                ),
            },
            Row {
                scenario: "latency: accept to received p99".into(),
                value: percentile(&self.onward, 0.99),
                unit: "ms",
                target: "p50 <= 0.1, p99 <= 1",
                detail: spread(&self.onward),
            },
        ]
    }
}

/// Events paced at `rate` a second for `seconds` over 16 connections: accept and send-to-received
/// latencies, and the relay's CPU per event (at a clinic's real load, fixed costs per commit round and per
/// attempt are not spread over many events).
async fn paced(rate: usize, seconds: usize) -> Paced {
    settle_disk();
    let env = TestEnv::new();
    let sink = Sink::start(&env.ca, None).await;
    write_config(&env, &subscription("s", &sink.url, ""));
    let relay = start(&env).await;
    let connections = 16usize;
    let total = rate * seconds;
    let cpu_before = process::cpu_ms(relay.pid());
    let period = Duration::from_secs_f64(connections as f64 / rate as f64);
    // Connection c sends at first + c/rate + k*period: evenly spaced arrivals, not a burst of
    // `connections` events every period.
    let first = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let socket = socket(&relay);
        let start = first + Duration::from_secs_f64(c as f64 / rate as f64);
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(&socket).await;
            let mut ticks = tokio::time::interval_at(start, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut accepted = Vec::new();
            for i in (c..total).step_by(connections) {
                ticks.tick().await;
                let id = format!("l-{i}");
                let took = connection.post(producer::event(&id, PAD_BYTES).into()).await;
                accepted.push((id, took, Instant::now()));
            }
            accepted
        }));
    }
    let mut accepted = Vec::new();
    for task in tasks {
        accepted.extend(task.await.unwrap());
    }
    sink.wait_for(total).await;
    let cpu_per_event_ms = (process::cpu_ms(relay.pid()) - cpu_before) / total as f64;
    let arrivals = sink.arrivals.by_id.lock().unwrap();
    let mut accept: Vec<Duration> = accepted.iter().map(|(_, took, _)| *took).collect();
    let mut onward: Vec<Duration> =
        accepted.iter().map(|(id, _, at)| arrivals[id].saturating_duration_since(*at)).collect();
    accept.sort();
    onward.sort();
    Paced { rate, seconds, accept, onward, cpu_per_event_ms }
}

/// Scenarios 5b and 6: fill the store with `pending` held deliveries, read RSS, `kill -9`, restart enabled.
async fn pending_and_restart(pending: usize) -> Vec<Row> {
    settle_disk();
    let env = TestEnv::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
    write_config(&env, &subscription("s", &url, "enabled = false"));
    let relay = start(&env).await;
    let filled = drive(&socket(&relay), PRODUCERS, pending, 100, 16, "p").await;
    let (rss, _) = process::rss_mib(relay.pid());
    relay.kill9().await;

    let sink = Sink::start(&env.ca, Some(listener)).await;
    write_config(&env, &subscription("s", &sink.url, ""));
    let started = Instant::now();
    let relay = start(&env).await;
    let ready = started.elapsed();
    let opened = relay.logs().into_iter().find(|line| line["message"] == "Store opened.").unwrap_or_default();
    sink.wait_for(1).await;
    let first = sink.arrivals.first.lock().unwrap().unwrap().duration_since(started);
    drop(relay);
    vec![
        Row {
            scenario: "memory with 1M pending".into(),
            value: rss,
            unit: "MiB RSS",
            target: "<= 256",
            detail: format!("{pending} deliveries held, filled in {:.1} s", filled.as_secs_f64()),
        },
        Row {
            scenario: "restart: ready".into(),
            value: ready.as_secs_f64(),
            unit: "s",
            target: "<= 1",
            detail: format!(
                "kill -9 with {pending} pending, then start; sled open {} ms, recovery scan {} ms",
                opened["open_ms"], opened["recover_ms"]
            ),
        },
        Row {
            scenario: "restart: first delivery".into(),
            value: first.as_secs_f64(),
            unit: "s",
            target: "<= 3",
            detail: "from start".into(),
        },
    ]
}

/// Issue 14 #6: status queries over a large store, and ingest while they run. `held` deliveries fill the
/// store; a few failed ones are what the operator looks for.
async fn admin_queries(held: usize) -> Vec<Row> {
    settle_disk();
    let env = TestEnv::new();
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = format!("https://127.0.0.1:{}/hook", closed.local_addr().unwrap().port());
    drop(closed);
    let subscriptions = subscription("held", &refused, "enabled = false\nevents = [\"bench.*\"]")
        .replace("events = [\"*\"]\n", "")
        // Never paused: the tenth failure in a row would pause it, and that attempt does not count (SPEC §6c).
        + &subscription("bad", &refused, "retry = []\npause_after = 0\nevents = [\"rare.*\"]")
            .replace("events = [\"*\"]\n", "");
    write_config(&env, &subscriptions);
    let relay = start(&env).await;
    drive(&socket(&relay), PRODUCERS, held, 100, 16, "h").await;
    let rare: Vec<_> = (0..10).map(|i| json!({"type": "rare.x", "id": format!("rare-{i}"), "data": {}})).collect();
    Connection::open(&socket(&relay)).await.post(serde_json::to_string(&rare).unwrap().into()).await;
    let waiting_since = Instant::now();
    loop {
        let failed = relay.admin_get("/v1/deliveries?status=failed").await;
        let count = failed["deliveries"].as_array().map_or(0, Vec::len);
        if count == 10 {
            break;
        }
        assert!(waiting_since.elapsed() < Duration::from_secs(60), "only {count} of 10 deliveries failed in a minute");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut answers = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        relay.admin_get("/v1/deliveries?status=failed&limit=1").await;
        answers.push(started.elapsed());
    }
    answers.sort();
    let during_failed = accept_during_queries(&relay, "/v1/deliveries?status=failed&limit=1", "f").await;
    let during_paging = accept_during_queries(&relay, "/v1/deliveries?status=all&limit=1000", "a").await;
    vec![
        Row {
            scenario: "admin: failed among 200k, limit 1".into(),
            value: percentile(&answers, 0.5),
            unit: "ms p50",
            target: "milliseconds",
            detail: format!("{held} held + 10 failed; max {:.2} ms of 20", percentile(&answers, 1.0)),
        },
        Row {
            scenario: "admin: accept p99, failed queries".into(),
            value: percentile(&during_failed, 0.99),
            unit: "ms",
            target: "none (CPU shared)",
            detail: format!("500 single events while 2 clients loop status=failed&limit=1; {}", spread(&during_failed)),
        },
        Row {
            scenario: "admin: accept p99, full paging".into(),
            value: percentile(&during_paging, 0.99),
            unit: "ms",
            target: "none (CPU shared)",
            detail: format!("500 single events while 2 clients loop status=all&limit=1000; {}", spread(&during_paging)),
        },
    ]
}

/// Issue 14 #6: ingest while the retention purge removes `total` delivered events (a purge of 100k used
/// to take ~15 s with an ingest p99 of 279 ms).
async fn purge(total: usize) -> Row {
    settle_disk();
    let env = TestEnv::new();
    let sink = Sink::start(&env.ca, None).await;
    write_config(&env, &subscription("s", &sink.url, ""));
    let text = std::fs::read_to_string(env.config_path()).unwrap();
    std::fs::write(env.config_path(), text.replace("[relay]\n", "[relay]\nretention = \"20s\"\n")).unwrap();
    let relay = env.start_with_env(&[("RUST_LOG", "warn,hookrelay::relay=info,hookrelay::retention=info")]).await;
    drive(&socket(&relay), PRODUCERS, total, 100, PAD_BYTES, "old").await;
    sink.wait_for(total).await;
    // 200 single events a second for 30 s, while the purge removes the old ones as they pass 20 s.
    let mut connection = Connection::open(&socket(&relay)).await;
    let mut ticks = tokio::time::interval(Duration::from_millis(5));
    let mut accept = Vec::new();
    for i in 0..6000 {
        ticks.tick().await;
        accept.push(connection.post(producer::event(&format!("new-{i}"), PAD_BYTES).into()).await);
    }
    accept.sort();
    let purged: u64 = relay
        .logs()
        .iter()
        .filter(|line| line["message"] == "Purged finished records older than the retention period.")
        .filter_map(|line| line["events"].as_u64())
        .sum();
    Row {
        scenario: "purge: accept p99 while purging".into(),
        value: percentile(&accept, 0.99),
        unit: "ms",
        target: "<= 3 (as idle)",
        detail: format!(
            "{purged} of {total} delivered events purged meanwhile; 200 events/s for 30 s: {}",
            spread(&accept)
        ),
    }
}

/// The p50, p99 and maximum of sorted latencies, for a row's detail.
fn spread(sorted: &[Duration]) -> String {
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(sorted, 0.5),
        percentile(sorted, 0.99),
        percentile(sorted, 1.0)
    )
}

/// Accept latencies of 500 single events posted one after another while two admin clients loop on `path`.
async fn accept_during_queries(relay: &RelayProcess, path: &'static str, tag: &str) -> Vec<Duration> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (unix, stop) = (relay.unix.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                support::client::send(&unix, support::client::Call::get(path)).await;
            }
        }));
    }
    let mut connection = Connection::open(&socket(relay)).await;
    let mut accept = Vec::new();
    for i in 0..500 {
        accept.push(connection.post(producer::event(&format!("during-{tag}-{i}"), PAD_BYTES).into()).await);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    accept.sort();
    accept
}

async fn idle() -> Row {
    settle_disk();
    let env = TestEnv::new();
    let sink = Sink::start(&env.ca, None).await;
    write_config(&env, &subscription("s", &sink.url, ""));
    let relay = start(&env).await;
    let before = process::cpu_ms(relay.pid());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let used = process::cpu_ms(relay.pid()) - before;
    Row {
        scenario: "idle CPU".into(),
        value: used,
        unit: "ms per 10 s",
        target: "<= 50",
        detail: "one subscription, no events".into(),
    }
}

/// Prints each row as one JSON line as soon as its scenario ends (a long run that stops early keeps what
/// it measured), and keeps it for the table at the end.
fn report(rows: &mut Vec<Row>, new: impl IntoIterator<Item = Row>) {
    for row in new {
        let line = json!({"scenario": row.scenario, "value": row.value, "unit": row.unit, "target": row.target, "detail": row.detail});
        println!("{line}");
        rows.push(row);
    }
}

#[tokio::main]
async fn main() {
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let mut rows = Vec::new();
    if wanted("ingest") {
        report(&mut rows, [durable_ingest(1, 50_000, false).await]);
        report(&mut rows, [durable_ingest(100, 500_000, false).await]);
    }
    if wanted("sealed") {
        report(&mut rows, [durable_ingest(1, 50_000, true).await]);
        report(&mut rows, [end_to_end(1, size("BENCH_EVENTS", 100_000), true).await.0]);
    }
    if wanted("e2e") || wanted("memory") {
        let (row, peak) = end_to_end(1, size("BENCH_EVENTS", 100_000), false).await;
        let memory = Row {
            scenario: "memory during end to end".into(),
            value: peak,
            unit: "MiB peak RSS",
            target: "<= 64",
            detail: "VmHWM of the relay".into(),
        };
        report(&mut rows, [row, memory]);
    }
    if wanted("fanout") {
        report(&mut rows, [end_to_end(10, size("BENCH_EVENTS", 100_000) / 5, false).await.0]);
    }
    if wanted("failing") {
        report(&mut rows, [failing_once(size("BENCH_EVENTS", 100_000) / 2).await]);
    }
    if wanted("latency") {
        report(&mut rows, paced(1000, size("BENCH_LATENCY_SECS", 30)).await.latency_rows());
    }
    if wanted("paced") {
        report(&mut rows, [paced(200, size("BENCH_LATENCY_SECS", 30)).await.cost_row()]);
    }
    if wanted("restart") || wanted("pending") {
        report(&mut rows, pending_and_restart(size("BENCH_PENDING", 1_000_000)).await);
    }
    if wanted("admin") {
        report(&mut rows, admin_queries(size("BENCH_ADMIN_HELD", 200_000)).await);
    }
    if wanted("purge") {
        report(&mut rows, [purge(size("BENCH_PURGE_EVENTS", 100_000)).await]);
    }
    if wanted("idle") {
        report(&mut rows, [idle().await]);
    }
    println!("\n{:<34} {:>12}  {:<14} {:<20} detail", "scenario", "value", "unit", "target");
    for row in &rows {
        println!("{:<34} {:>12.2}  {:<14} {:<20} {}", row.scenario, row.value, row.unit, row.target, row.detail);
    }
}
