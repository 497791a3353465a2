//! Reading a webhook's body within the intake's memory budget: bytes are counted as they
//! arrive, so a connection that holds its body back holds no memory, and a flood of large
//! uploads waits for room instead of growing the process.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// GitHub caps webhook payloads at 25 MB.
pub const MAX_BODY: usize = 25 * 1024 * 1024;

/// A body that declares at most this is an ordinary delivery (GitHub sends `Content-Length`,
/// and nearly all its payloads are well under this).
const ORDINARY: u64 = 1024 * 1024;

/// Body bytes held at once by the ordinary deliveries being received, and by all others (large
/// or without a declared length): a flood of large uploads cannot take the room ordinary
/// deliveries need.
const ORDINARY_BUDGET: usize = 32 * 1024 * 1024;
const LARGE_BUDGET: usize = 96 * 1024 * 1024;

/// Why a body was not read whole.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Declared or sent: over [`MAX_BODY`].
    TooLarge,
    /// Not all of it arrived before the deadline.
    TooSlow,
    /// The memory budget stayed full until the deadline.
    Busy,
    /// The connection broke or the framing was wrong.
    Broken,
}

/// The bytes-in-flight budget shared by every webhook request: 128 MiB in all.
#[derive(Clone)]
pub struct Budget {
    ordinary: Arc<Semaphore>,
    large: Arc<Semaphore>,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            ordinary: Arc::new(Semaphore::new(ORDINARY_BUDGET)),
            large: Arc::new(Semaphore::new(LARGE_BUDGET)),
        }
    }
}

impl Budget {
    fn for_length(&self, declared: Option<u64>) -> &Arc<Semaphore> {
        match declared {
            Some(n) if n <= ORDINARY => &self.ordinary,
            _ => &self.large,
        }
    }
}

/// The `Content-Length` a request declares, if it declares a readable one.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads `body` whole by `deadline`, counting its bytes against `budget` until the returned
/// permit is dropped.
pub async fn read(
    mut body: Body,
    declared: Option<u64>,
    budget: &Budget,
    deadline: Instant,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), BodyError> {
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(BodyError::TooLarge);
    }
    // Capacity is address space until written, so reserving what was declared costs nothing
    // yet and spares the copies of a growing buffer.
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let mut held: Option<OwnedSemaphorePermit> = None;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::TooSlow),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers carry nothing a webhook needs.
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        let room = u32::try_from(chunk.len()).map_err(|_| BodyError::TooLarge)?;
        let pool = budget.for_length(declared).clone();
        let permit = tokio::time::timeout_at(deadline, pool.acquire_many_owned(room))
            .await
            .map_err(|_| BodyError::Busy)?
            .map_err(|_| BodyError::Busy)?;
        match &mut held {
            Some(h) => h.merge(permit),
            None => held = Some(permit),
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((Bytes::from(bytes), held))
}
