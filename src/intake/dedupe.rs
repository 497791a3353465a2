//! Remembers which `X-GitHub-Delivery` ids were accepted, across restarts.
//!
//! An append-only file under the state dir (one `<unix time> <id>` line per accepted delivery),
//! loaded into memory at start and compacted to the last [`KEEP`] (at start and hourly). A line
//! is written only after the broker confirmed the event, so a delivery that failed to publish
//! can be redelivered.
//! Appends go to the OS without fsync: they survive a crash of the process, and the dispatcher is
//! idempotent for the rare duplicate a machine crash could let through.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a delivery id is remembered; GitHub redeliveries happen within days.
const KEEP: Duration = Duration::from_secs(7 * 86_400);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub struct DeliveryLog {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    seen: HashMap<String, u64>,
    in_flight: HashSet<String>,
    file: File,
    /// When ids older than [`KEEP`] were last forgotten (unix seconds).
    pruned_at: u64,
}

pub enum Begin {
    /// First time: publish, then [`Claim::accept`].
    New(Claim),
    /// Already accepted earlier.
    Duplicate,
    /// The same id is being published by a concurrent request right now.
    InFlight,
}

/// An id being published; dropping it without [`Claim::accept`] forgets it (publish failed).
pub struct Claim {
    log: Arc<DeliveryLog>,
    id: String,
    accepted: bool,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl DeliveryLog {
    pub fn open(dir: &Path) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("deliveries.log");
        let cutoff = now().saturating_sub(KEEP.as_secs());
        let mut seen = HashMap::new();
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).lines() {
                let line = line?;
                if let Some((t, id)) = line.split_once(' ')
                    && let Ok(t) = t.parse::<u64>()
                    && t >= cutoff
                {
                    seen.insert(id.to_string(), t);
                }
            }
        }
        let file = compact(&path, &seen)?;
        Ok(Arc::new(Self {
            path,
            inner: Mutex::new(Inner {
                pruned_at: now(),
                seen,
                in_flight: HashSet::new(),
                file,
            }),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn begin(self: &Arc<Self>, id: &str) -> Begin {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.seen.contains_key(id) {
            return Begin::Duplicate;
        }
        if !inner.in_flight.insert(id.to_string()) {
            return Begin::InFlight;
        }
        Begin::New(Claim {
            log: Arc::clone(self),
            id: id.to_string(),
            accepted: false,
        })
    }
}

/// Rewrites the file with what is still remembered and returns it opened for appending.
fn compact(path: &Path, seen: &HashMap<String, u64>) -> std::io::Result<File> {
    let tmp = path.with_extension("log.tmp");
    {
        let mut f = std::io::BufWriter::new(File::create(&tmp)?);
        for (id, t) in seen {
            writeln!(f, "{t} {id}")?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    OpenOptions::new().append(true).open(path)
}

impl Claim {
    /// The event is safely in the queue: remember the id for [`KEEP`].
    pub fn accept(mut self) -> std::io::Result<()> {
        self.accepted = true;
        let log = &self.log;
        let mut inner = log.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.in_flight.remove(&self.id);
        let t = now();
        inner.seen.insert(self.id.clone(), t);
        let line = format!("{t} {}\n", self.id);
        inner.file.write_all(line.as_bytes())?;
        // Hourly, forget what is older than KEEP, so memory and file stay bounded while running.
        if t >= inner.pruned_at + PRUNE_EVERY.as_secs() {
            inner.pruned_at = t;
            let cutoff = t.saturating_sub(KEEP.as_secs());
            inner.seen.retain(|_, at| *at >= cutoff);
            inner.file = compact(&log.path, &inner.seen)?;
        }
        Ok(())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.accepted {
            let mut inner = self.log.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.in_flight.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_ids_survive_reopening_and_failed_ones_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = DeliveryLog::open(dir.path()).expect("open");
        let Begin::New(claim) = log.begin("a") else {
            panic!("first sight must be new")
        };
        assert!(matches!(log.begin("a"), Begin::InFlight));
        claim.accept().expect("write");
        assert!(matches!(log.begin("a"), Begin::Duplicate));
        let Begin::New(failed) = log.begin("b") else {
            panic!("new")
        };
        drop(failed);
        drop(log);

        let log = DeliveryLog::open(dir.path()).expect("reopen");
        assert!(matches!(log.begin("a"), Begin::Duplicate));
        assert!(matches!(log.begin("b"), Begin::New(_)));
    }
}
