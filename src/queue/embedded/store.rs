//! The storage thread of the embedded queue: it owns the sqlite database and all queue state,
//! and applies the commands the handles send it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rusqlite::{OptionalExtension, params};
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use super::{Cmd, Handout, Raw, Reply};
use crate::queue::{Outgoing, QueueError, QueueSpec};

/// How many waiting commands one transaction takes at most (bounds latency of the first).
const MAX_BATCH: usize = 4096;
/// How long opening waits for another connection to let go of the database.
const BUSY_TIMEOUT_MS: u32 = 2000;

// ---------------------------------------------------------------------------------------------
// The storage thread.

pub(super) struct Store {
    db: rusqlite::Connection,
    state: State,
}

/// Everything but the connection, so a transaction can borrow the connection while the state
/// changes.
struct State {
    path: String,
    dead: String,
    /// The copy of the dead letter queue for the dispatcher (`QueueKind::DeadNotices`).
    notices: String,
    max_deliveries: u32,
    queues: HashMap<String, Queue>,
    consumers: HashMap<u64, Slot>,
    leases: HashMap<u64, Lease>,
    next_seq: i64,
    next_id: u64,
}

struct Queue {
    spec: QueueSpec,
    /// (priority first, then age) → row id.
    ready: BTreeMap<(Reverse<u8>, i64), i64>,
    /// Consumers in subscription order; with single-active the first one is the active one.
    consumers: Vec<u64>,
}

struct Slot {
    queue: String,
    tx: mpsc::UnboundedSender<Handout>,
    prefetch: usize,
    held: usize,
}

struct Lease {
    row: i64,
    consumer: u64,
}

/// An answer to send once the transaction it depends on has committed.
enum Pending {
    Unit(Reply<()>, Result<(), QueueError>),
    Count(Reply<u64>, Result<u64, QueueError>),
}

impl Pending {
    fn send(self, commit: &Result<(), QueueError>) {
        // The commit error is always `Embedded`; each waiting caller gets its own copy.
        let failed = commit.as_ref().err().map(|e| match e {
            QueueError::Embedded { path, op, reason } => QueueError::Embedded {
                path: path.clone(),
                op: op.clone(),
                reason: reason.clone(),
            },
            other => QueueError::Embedded {
                path: String::new(),
                op: "committing".to_string(),
                reason: other.to_string(),
            },
        });
        match self {
            Pending::Unit(tx, result) => {
                let _ = tx.send(failed.map_or(result, Err));
            }
            Pending::Count(tx, result) => {
                let _ = tx.send(failed.map_or(result, Err));
            }
        }
    }
}

fn sql_err(path: &str, op: &str, e: rusqlite::Error) -> QueueError {
    QueueError::Embedded {
        path: path.to_string(),
        op: op.to_string(),
        reason: e.to_string(),
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    max_priority INTEGER,
    single_active INTEGER NOT NULL,
    dead_letter_exchange TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    seq INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    dead_from TEXT,
    message_id TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_queue ON messages (queue);
";

impl Store {
    pub(super) fn open(
        file: &Path,
        path: String,
        dead: String,
        notices: String,
        max_deliveries: u32,
    ) -> Result<Store, QueueError> {
        let mut db = rusqlite::Connection::open(file).map_err(|e| sql_err(&path, "opening", e))?;
        let locked = |e: rusqlite::Error| {
            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) {
                QueueError::EmbeddedLocked { path: path.clone() }
            } else {
                sql_err(&path, "setting up", e)
            }
        };
        db.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS.into()))
            .map_err(locked)?;
        // Exclusive first: the lock is taken by the first write below and held for the life of
        // the connection, which is what ties leases to this process.
        db.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(locked)?;
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(locked)?;
        db.pragma_update(None, "synchronous", "FULL")
            .map_err(locked)?;
        let mut state = State {
            path: path.clone(),
            notices,
            dead,
            max_deliveries,
            queues: HashMap::new(),
            consumers: HashMap::new(),
            leases: HashMap::new(),
            next_seq: 1,
            next_id: 1,
        };
        let tx = db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(locked)?;
        tx.execute_batch(SCHEMA).map_err(locked)?;
        state.load(&tx)?;
        tx.commit().map_err(locked)?;
        Ok(Store { db, state })
    }

    pub(super) fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let mut batch = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            self.process(&mut batch);
        }
        debug!(path = %self.state.path, "embedded queue closed");
    }

    fn process(&mut self, batch: &mut Vec<Cmd>) {
        let path = self.state.path.clone();
        let mut pending = Vec::with_capacity(batch.len());
        let mut handouts = Vec::new();
        let mut new_consumers = Vec::new();
        let commit = (|| -> Result<(), QueueError> {
            let tx = self
                .db
                .transaction()
                .map_err(|e| sql_err(&path, "starting a transaction", e))?;
            for cmd in batch.drain(..) {
                self.state.apply(&tx, cmd, &mut pending, &mut new_consumers);
            }
            self.state.dispatch(&tx, &mut handouts)?;
            tx.commit().map_err(|e| sql_err(&path, "committing", e))
        })();
        // Commands not applied because starting the transaction failed are answered by being
        // dropped (their callers see the thread as stopped for that call).
        batch.clear();
        match &commit {
            Ok(()) => {
                for (consumer, raw) in handouts {
                    if let Some(slot) = self.state.consumers.get(&consumer) {
                        // A failed send means the consumer is gone; its Cancel returns the lease.
                        let _ = slot.tx.send(Ok(raw));
                    }
                }
            }
            Err(e) => {
                error!(%path, error = %e, "embedded queue transaction failed; reloading its state");
                for (_, raw) in handouts {
                    if let Some(lease) = self.state.leases.remove(&raw.lease)
                        && let Some(slot) = self.state.consumers.get_mut(&lease.consumer)
                    {
                        slot.held = slot.held.saturating_sub(1);
                    }
                }
                for id in new_consumers {
                    self.state.cancel_slot_only(id);
                }
                if let Err(e) = self.state.reload_ready(&self.db) {
                    error!(%path, error = %e, "reloading the embedded queue failed");
                }
            }
        }
        for p in pending {
            p.send(&commit);
        }
    }
}

impl State {
    fn err(&self, op: &str) -> impl Fn(rusqlite::Error) -> QueueError + '_ {
        let op = op.to_string();
        move |e| sql_err(&self.path, &op, e)
    }

    fn seq(&mut self) -> i64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn sort_priority(&self, queue: &str, priority: u8) -> u8 {
        match self.queues.get(queue) {
            Some(q) if q.spec.max_priority.is_some() => priority,
            _ => 0,
        }
    }

    /// Loads the declared queues, fails every delivery a dead process left open, and builds
    /// the ready index.
    fn load(&mut self, db: &rusqlite::Connection) -> Result<(), QueueError> {
        let mut stmt = db
            .prepare("SELECT name, max_priority, single_active, dead_letter_exchange FROM queues")
            .map_err(self.err("reading queues"))?;
        let specs: Vec<QueueSpec> = stmt
            .query_map([], |r| {
                Ok(QueueSpec {
                    name: r.get(0)?,
                    max_priority: r.get(1)?,
                    single_active: r.get(2)?,
                    dead_letter_exchange: r.get(3)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(self.err("reading queues"))?;
        drop(stmt);
        for spec in specs {
            self.queues.insert(spec.name.clone(), new_queue(spec));
        }
        let max_seq: Option<i64> = db
            .query_row("SELECT MAX(seq) FROM messages", [], |r| r.get(0))
            .map_err(self.err("reading messages"))?;
        self.next_seq = max_seq.unwrap_or(0) + 1;
        let crashed: Vec<i64> = db
            .prepare("SELECT id FROM messages WHERE delivered = 1 ORDER BY seq")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(self.err("reading messages"))?;
        if !crashed.is_empty() {
            warn!(path = %self.path, count = crashed.len(), "messages a previous process did not acknowledge are back, counted as failed deliveries");
        }
        for row in crashed {
            self.fail_row(db, row, false)?;
        }
        self.reload_ready(db)
    }

    /// Rebuilds every ready index from the table (all rows that are not leased).
    fn reload_ready(&mut self, db: &rusqlite::Connection) -> Result<(), QueueError> {
        for q in self.queues.values_mut() {
            q.ready.clear();
        }
        let leased: std::collections::HashSet<i64> = self.leases.values().map(|l| l.row).collect();
        let mut stmt = db
            .prepare("SELECT id, queue, seq, priority FROM messages")
            .map_err(self.err("reading messages"))?;
        let rows: Vec<(i64, String, i64, u8)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .and_then(|rows| rows.collect())
            .map_err(self.err("reading messages"))?;
        for (row, queue, seq, priority) in rows {
            if leased.contains(&row) {
                continue;
            }
            let p = self.sort_priority(&queue, priority);
            if let Some(q) = self.queues.get_mut(&queue) {
                q.ready.insert((Reverse(p), seq), row);
            }
        }
        Ok(())
    }

    fn apply(
        &mut self,
        db: &rusqlite::Connection,
        cmd: Cmd,
        pending: &mut Vec<Pending>,
        new_consumers: &mut Vec<u64>,
    ) {
        match cmd {
            Cmd::Declare(specs, r) => pending.push(Pending::Unit(r, self.declare(db, specs))),
            Cmd::Delete(names, r) => pending.push(Pending::Unit(r, self.delete(db, names))),
            Cmd::Publish(queue, msg, r) => {
                pending.push(Pending::Unit(r, self.publish(db, &queue, msg)))
            }
            Cmd::Consume(queue, prefetch, r) => {
                self.subscribe(queue, prefetch, r, new_consumers);
            }
            Cmd::Cancel(id) => self.cancel(db, id),
            Cmd::Ack(lease, r) => {
                let result = self.take_lease(lease).and_then(|row| {
                    db.prepare_cached("DELETE FROM messages WHERE id = ?1")
                        .and_then(|mut s| s.execute([row]))
                        .map(|_| ())
                        .map_err(self.err("acknowledging"))
                });
                pending.push(Pending::Unit(r, result));
            }
            Cmd::Retry(lease, r) => {
                let result = self
                    .take_lease(lease)
                    .and_then(|row| self.fail_row(db, row, true));
                pending.push(Pending::Unit(r, result));
            }
            Cmd::DeadLetter(lease, r) => {
                let result = self
                    .take_lease(lease)
                    .and_then(|row| self.move_to_dead(db, row, true));
                pending.push(Pending::Unit(r, result));
            }
            Cmd::Release(lease) => {
                if let Err(e) = self.release(db, lease) {
                    warn!(path = %self.path, error = %e, "returning a message failed");
                }
            }
            Cmd::Count(queue, r) => {
                let result = match self.queues.get(&queue) {
                    Some(q) => Ok(q.ready.len() as u64),
                    None => Err(QueueError::NotDeclared { queue }),
                };
                pending.push(Pending::Count(r, result));
            }
            Cmd::Ping(r) => pending.push(Pending::Unit(r, Ok(()))),
        }
    }

    /// Registers a consumer on a declared queue; kept out of `apply` because it answers at once.
    fn subscribe(
        &mut self,
        queue: String,
        prefetch: u16,
        r: Reply<(u64, mpsc::UnboundedReceiver<Handout>)>,
        new_consumers: &mut Vec<u64>,
    ) {
        if !self.queues.contains_key(&queue) {
            let _ = r.send(Err(QueueError::NotDeclared { queue }));
            return;
        }
        let id = self.id();
        let (tx, rx) = mpsc::unbounded_channel();
        self.consumers.insert(
            id,
            Slot {
                queue: queue.clone(),
                tx,
                prefetch: prefetch.into(),
                held: 0,
            },
        );
        if let Some(q) = self.queues.get_mut(&queue) {
            q.consumers.push(id);
        }
        new_consumers.push(id);
        // Registration writes nothing, so it can be answered before the commit.
        let _ = r.send(Ok((id, rx)));
    }

    /// Returns everything a cancelled consumer still holds, then forgets the consumer.
    fn cancel(&mut self, db: &rusqlite::Connection, id: u64) {
        let held: Vec<u64> = self
            .leases
            .iter()
            .filter(|(_, l)| l.consumer == id)
            .map(|(k, _)| *k)
            .collect();
        for lease in held {
            if let Err(e) = self.release(db, lease) {
                warn!(path = %self.path, error = %e, "returning a message failed");
            }
        }
        self.cancel_slot_only(id);
    }

    fn cancel_slot_only(&mut self, id: u64) {
        if let Some(slot) = self.consumers.remove(&id)
            && let Some(q) = self.queues.get_mut(&slot.queue)
        {
            q.consumers.retain(|c| *c != id);
        }
    }

    /// Ends a lease, freeing its consumer's prefetch slot; the row it held.
    fn take_lease(&mut self, lease: u64) -> Result<i64, QueueError> {
        let Some(l) = self.leases.remove(&lease) else {
            return Err(QueueError::SettleFailed {
                message_id: String::new(),
                reason: "its consumer was dropped, which already returned it to the queue"
                    .to_string(),
            });
        };
        if let Some(slot) = self.consumers.get_mut(&l.consumer) {
            slot.held = slot.held.saturating_sub(1);
        }
        Ok(l.row)
    }

    fn release(&mut self, db: &rusqlite::Connection, lease: u64) -> Result<(), QueueError> {
        // Unknown lease: already settled, or returned with its consumer.
        match self.take_lease(lease) {
            Ok(row) => self.fail_row(db, row, true),
            Err(_) => Ok(()),
        }
    }

    fn declare(
        &mut self,
        db: &rusqlite::Connection,
        specs: Vec<QueueSpec>,
    ) -> Result<(), QueueError> {
        for spec in specs {
            if let Some(q) = self.queues.get(&spec.name) {
                if q.spec != spec {
                    return Err(QueueError::TopologyMismatch {
                        queue: spec.name.clone(),
                        reason: format!("stored {:?}, wanted {:?}", q.spec, spec),
                    });
                }
                continue;
            }
            db.execute(
                "INSERT INTO queues (name, max_priority, single_active, dead_letter_exchange) VALUES (?1, ?2, ?3, ?4)",
                params![spec.name, spec.max_priority, spec.single_active, spec.dead_letter_exchange],
            )
            .map_err(self.err("declaring a queue"))?;
            self.queues.insert(spec.name.clone(), new_queue(spec));
        }
        Ok(())
    }

    fn delete(&mut self, db: &rusqlite::Connection, names: Vec<String>) -> Result<(), QueueError> {
        for name in names {
            db.execute("DELETE FROM messages WHERE queue = ?1", [&name])
                .and_then(|_| db.execute("DELETE FROM queues WHERE name = ?1", [&name]))
                .map_err(self.err("deleting a queue"))?;
            if let Some(q) = self.queues.remove(&name) {
                for id in q.consumers {
                    if let Some(slot) = self.consumers.remove(&id) {
                        let _ = slot.tx.send(Err(QueueError::NotDeclared {
                            queue: name.clone(),
                        }));
                    }
                }
            }
            self.leases
                .retain(|_, l| self.consumers.contains_key(&l.consumer));
        }
        Ok(())
    }

    fn publish(
        &mut self,
        db: &rusqlite::Connection,
        queue: &str,
        msg: Outgoing,
    ) -> Result<(), QueueError> {
        if !self.queues.contains_key(queue) {
            return Err(QueueError::NotDeclared {
                queue: queue.to_string(),
            });
        }
        let seq = self.seq();
        db.prepare_cached(
            "INSERT INTO messages (queue, seq, priority, attempt, message_id, body) VALUES (?1, ?2, ?3, 1, ?4, ?5)",
        )
        .and_then(|mut s| s.execute(params![queue, seq, msg.priority, msg.message_id, msg.body]))
        .map_err(self.err("publishing"))?;
        let row = db.last_insert_rowid();
        let p = self.sort_priority(queue, msg.priority);
        if let Some(q) = self.queues.get_mut(queue) {
            q.ready.insert((Reverse(p), seq), row);
        }
        Ok(())
    }

    /// A delivery of `row` failed: back to the end of its queue with the next attempt number,
    /// or to the dead letter queue if that was the last allowed one.
    fn fail_row(
        &mut self,
        db: &rusqlite::Connection,
        row: i64,
        index: bool,
    ) -> Result<(), QueueError> {
        let found: Option<(String, u32)> = db
            .query_row(
                "SELECT queue, attempt FROM messages WHERE id = ?1",
                [row],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err("reading a message"))?;
        let Some((queue, attempt)) = found else {
            return Ok(());
        };
        // Messages already in a dead-letter queue are never dead-lettered again (no loop).
        if attempt >= self.max_deliveries && queue != self.dead && queue != self.notices {
            return self.move_to_dead(db, row, index);
        }
        let seq = self.seq();
        db.prepare_cached(
            "UPDATE messages SET attempt = attempt + 1, seq = ?2, delivered = 0 WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![row, seq]))
        .map_err(self.err("returning a message"))?;
        if index {
            self.index_row(db, row, &queue, seq)?;
        }
        Ok(())
    }

    fn move_to_dead(
        &mut self,
        db: &rusqlite::Connection,
        row: i64,
        index: bool,
    ) -> Result<(), QueueError> {
        let seq = self.seq();
        let dead = self.dead.clone();
        db.prepare_cached(
            "UPDATE messages SET dead_from = queue, queue = ?2, seq = ?3, delivered = 0 WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![row, dead, seq]))
        .map_err(self.err("dead-lettering a message"))?;
        warn!(path = %self.path, row, "message dead-lettered");
        if index {
            self.index_row(db, row, &dead, seq)?;
        }
        // Like RabbitMQ's fanout dead-letter exchange: the dispatcher's queue gets a copy,
        // unless the message failed there (no loop).
        let from: Option<String> = db
            .query_row("SELECT dead_from FROM messages WHERE id = ?1", [row], |r| {
                r.get(0)
            })
            .map_err(self.err("reading a message"))?;
        if self.queues.contains_key(&self.notices) && from.as_deref() != Some(&self.notices) {
            let notices = self.notices.clone();
            let copy_seq = self.seq();
            db.prepare_cached(
                "INSERT INTO messages (queue, seq, priority, attempt, dead_from, message_id, body) \
                 SELECT ?2, ?3, priority, attempt, dead_from, message_id, body FROM messages WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![row, notices, copy_seq]))
            .map_err(self.err("copying a dead letter for the dispatcher"))?;
            let copy = db.last_insert_rowid();
            if index {
                self.index_row(db, copy, &notices, copy_seq)?;
            }
        }
        Ok(())
    }

    fn index_row(
        &mut self,
        db: &rusqlite::Connection,
        row: i64,
        queue: &str,
        seq: i64,
    ) -> Result<(), QueueError> {
        let priority: u8 = db
            .query_row("SELECT priority FROM messages WHERE id = ?1", [row], |r| {
                r.get(0)
            })
            .map_err(self.err("reading a message"))?;
        let p = self.sort_priority(queue, priority);
        if let Some(q) = self.queues.get_mut(queue) {
            q.ready.insert((Reverse(p), seq), row);
        }
        Ok(())
    }

    /// Hands ready messages to consumers with free prefetch slots, marking each `delivered`.
    fn dispatch(
        &mut self,
        db: &rusqlite::Connection,
        out: &mut Vec<(u64, Raw)>,
    ) -> Result<(), QueueError> {
        let names: Vec<String> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.ready.is_empty() && !q.consumers.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            while let Some(q) = self.queues.get(&name) {
                let active: Vec<u64> = if q.spec.single_active {
                    q.consumers.iter().take(1).copied().collect()
                } else {
                    q.consumers.clone()
                };
                let mut progressed = false;
                // One message per consumer per round: spreads work like RabbitMQ's round robin.
                for consumer in active {
                    let has_room = self
                        .consumers
                        .get(&consumer)
                        .is_some_and(|s| s.held < s.prefetch && !s.tx.is_closed());
                    if !has_room {
                        continue;
                    }
                    let Some(q) = self.queues.get_mut(&name) else {
                        break;
                    };
                    let Some((_, row)) = q.ready.pop_first() else {
                        break;
                    };
                    let (message_id, body, priority, attempt): (String, Vec<u8>, u8, u32) = db
                        .prepare_cached(
                            "SELECT message_id, body, priority, attempt FROM messages WHERE id = ?1",
                        )
                        .and_then(|mut s| {
                            s.query_row([row], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                        })
                        .map_err(self.err("reading a message"))?;
                    db.prepare_cached("UPDATE messages SET delivered = 1 WHERE id = ?1")
                        .and_then(|mut s| s.execute([row]))
                        .map_err(self.err("leasing a message"))?;
                    let lease = self.id();
                    self.leases.insert(lease, Lease { row, consumer });
                    if let Some(slot) = self.consumers.get_mut(&consumer) {
                        slot.held += 1;
                    }
                    out.push((
                        consumer,
                        Raw {
                            lease,
                            message_id,
                            body,
                            priority,
                            attempt,
                        },
                    ));
                    progressed = true;
                }
                if !progressed {
                    break;
                }
            }
        }
        Ok(())
    }
}

fn new_queue(spec: QueueSpec) -> Queue {
    Queue {
        spec,
        ready: BTreeMap::new(),
        consumers: Vec::new(),
    }
}
