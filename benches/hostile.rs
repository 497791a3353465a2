//! What an attacker's input costs (issue 11): hostile `.tickbot.toml` files up to GitHub's
//! 1 MB contents limit, parsed as the dispatcher parses any PR head's file; and the intake under
//! slow, silent and oversized clients. `cargo bench --bench hostile`; the figures are written
//! down in docs/benchmarks.md ("Hostile configurations", "Intake under slow clients").

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tickbot::repo_config::RepoConfig;

/// Counts heap bytes in use and their peak, to state what parsing a file costs in memory.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const GITHUB_FILE_LIMIT: usize = 1024 * 1024;

/// Repeats `entry(i)` while the file stays under GitHub's limit.
fn fill(entry: impl Fn(usize) -> String) -> String {
    let mut text = String::new();
    for i in 0.. {
        let next = entry(i);
        if text.len() + next.len() > GITHUB_FILE_LIMIT {
            break;
        }
        text.push_str(&next);
    }
    text
}

fn hostile_files() -> Vec<(&'static str, String)> {
    let largest = largest_pattern();
    vec![
        (
            "50 tasks with args = \"\\w{200}\" (the probe's file)",
            (0..50)
                .map(|i| format!("[tasks.t{i}]\ncommand = [\"a\"]\nargs = \"\\\\w{{200}}\"\n"))
                .collect(),
        ),
        (
            "128 tasks with the largest `\\w{n}` accepted (n a multiple of 50)",
            (0..128)
                .map(|i| format!("[tasks.t{i}]\ncommand = [\"a\"]\nargs = \"{largest}\"\n"))
                .collect(),
        ),
        (
            "1 MB of [tests.*] (over 512 of them)",
            fill(|i| format!("[tests.t{i}]\ncommand = [\"make\", \"check\"]\ndefault = true\n")),
        ),
        (
            "1 MB of command arguments (under 512 tests)",
            fill(|i| {
                format!(
                    "[tests.t{i}]\ncommand = [{}]\n",
                    vec!["\"argument\""; 200].join(", ")
                )
            }),
        ),
        (
            "1 MB of nested arrays",
            format!(
                "a = {}1{}\n",
                "[".repeat(GITHUB_FILE_LIMIT / 2 - 8),
                "]".repeat(GITHUB_FILE_LIMIT / 2 - 8)
            ),
        ),
        (
            "one 1 MB string",
            format!(
                "[tasks.x]\ncommand = [\"{}\"]\n",
                "a".repeat(GITHUB_FILE_LIMIT - 32)
            ),
        ),
    ]
}

fn main() {
    configurations();
    intake_under_slow_clients();
}

fn configurations() {
    let files = hostile_files();
    println!(
        "| file | size | outcome | time (median of 5) | peak heap while parsing | kept after |"
    );
    println!("|---|---|---|---|---|---|");
    for (what, text) in files {
        let mut times = Vec::new();
        let mut peak = 0;
        let mut kept = 0;
        let mut outcome = String::new();
        for _ in 0..5 {
            let base = IN_USE.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            let started = Instant::now();
            let parsed = RepoConfig::parse(&text);
            times.push(started.elapsed());
            peak = peak.max(PEAK.load(Ordering::Relaxed) - base);
            kept = IN_USE.load(Ordering::Relaxed).saturating_sub(base);
            outcome = match parsed {
                Ok(c) => format!(
                    "accepted ({} tasks, {} tests)",
                    c.tasks.len(),
                    c.tests.len()
                ),
                Err(e) => format!(
                    "refused: {}",
                    e.message.chars().take(48).collect::<String>()
                ),
            };
        }
        times.sort();
        println!(
            "| {what} | {} KiB | {outcome} | {} | {:.1} MiB | {:.1} MiB |",
            text.len() / 1024,
            ms(times[2]),
            peak as f64 / (1024.0 * 1024.0),
            kept as f64 / (1024.0 * 1024.0)
        );
    }
}

/// `\\w{n}` (TOML-escaped) for the largest `n` an `args` pattern may have.
fn largest_pattern() -> String {
    let pattern = |n: usize| format!("\\\\w{{{n}}}");
    let accepted = |n: usize| {
        RepoConfig::parse(&format!(
            "[tasks.t]\ncommand = [\"a\"]\nargs = \"{}\"\n",
            pattern(n)
        ))
        .is_ok()
    };
    let n = (1..=100)
        .map(|k| k * 50)
        .take_while(|n| accepted(*n))
        .last()
        .unwrap_or(1);
    println!("the largest `\\w{{n}}` an args pattern may be: n = {n}\n");
    pattern(n)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[path = "../tests/common/served.rs"]
mod served;

/// Signed pings answered while slow, silent and oversized clients hold the intake.
fn intake_under_slow_clients() {
    use served::{Served, deliver_ping, send_chunked, webhook_head};
    use std::io::Write;
    use std::net::TcpStream;
    let served = Served::start(&[]);
    let mut held = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(served.addr).expect("connect");
        let _ = s.write_all(
            webhook_head("ping", &format!("slow-{i}"), b"{}", Some(1_000_000)).as_bytes(),
        );
        held.push(s);
    }
    held.extend((0..200).map(|_| TcpStream::connect(served.addr).expect("connect")));
    // 64 uploads of 26 MiB (no declared length), over and over while the pings are measured.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let uploads: Vec<_> = (0..64)
        .map(|i| {
            let (addr, stop) = (served.addr, stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    let head = webhook_head("ping", &format!("flood-{i}-{n}"), b"{}", None);
                    let _ = send_chunked(&mut s, &head, 26);
                }
            })
        })
        .collect();
    let mut times = Vec::new();
    let mut answered = 0;
    for n in 0..50 {
        let (status, took) = deliver_ping(&served, &format!("real-{n}"));
        answered += usize::from(status == "HTTP/1.1 200 OK");
        times.push(took);
    }
    stop.store(true, Ordering::Relaxed);
    for u in uploads {
        let _ = u.join();
    }
    times.sort();
    println!();
    println!(
        "intake with 200 slow heads, 200 silent connections and 64 looping 26 MiB uploads: \
         {answered}/50 signed pings answered 200; p50 {}, p90 {}, max {}; peak RSS {} MiB",
        ms(times[25]),
        ms(times[45]),
        ms(times[49]),
        served.peak_mib()
    );
    drop(held);
}
