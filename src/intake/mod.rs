//! The webhook intake (`tickbot serve`): verifies GitHub's signature, drops duplicate
//! deliveries, and answers 2xx only once the event is safely in the queue.
//!
//! Answers (reference §11): 401 bad or missing signature, 400 malformed JSON or missing headers,
//! 413 body over 25 MiB (declared or sent), 408 a body that did not arrive within
//! `[webhook] body_timeout`, 503 broker unavailable or the intake's body budget full (GitHub then
//! records a failed delivery that can be redelivered), 202 accepted or ignored, 200 for `ping`
//! and for a duplicate delivery.

mod body;
mod dedupe;
mod server;

pub use body::MAX_BODY;
pub use dedupe::DeliveryLog;
pub use server::{Timeouts, serve};

use crate::config::Secret;
use crate::dashboard::Dashboard;
use crate::event::HANDLED_EVENTS;
use crate::queue::{Broker, Outgoing, QueueKind};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// GitHub gives up on a delivery after 10 s: answer 503 before that, so the failure is
/// recorded and can be redelivered, rather than a timeout with an unknown outcome.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(8);

#[derive(Clone)]
pub struct Intake {
    secret: Arc<Secret>,
    broker: Broker,
    deliveries: Arc<DeliveryLog>,
    dashboard: Dashboard,
    budget: body::Budget,
    body_timeout: Duration,
}

impl Intake {
    pub fn new(
        secret: Secret,
        broker: Broker,
        deliveries: Arc<DeliveryLog>,
        dashboard: Dashboard,
        body_timeout: Duration,
    ) -> Self {
        Self {
            secret: Arc::new(secret),
            broker,
            deliveries,
            dashboard,
            budget: body::Budget::default(),
            body_timeout,
        }
    }

    pub fn router(self) -> Router {
        // Install the recorder before the first request records anything.
        crate::telemetry::metrics();
        let dashboard = self.dashboard.clone().router();
        Router::new()
            .route("/webhook", post(webhook))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(render_metrics))
            .with_state(self)
            .merge(dashboard)
    }
}

/// Constant-time check of `X-Hub-Signature-256: sha256=<hex>` over the exact body bytes.
pub fn signature_valid(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The header a sender puts on `body` (the forge and the load generator sign with it).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn reply(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

fn count(event: &str, result: &'static str) {
    metrics::counter!("tickbot_webhook_deliveries_total", "event" => event.to_string(), "result" => result)
        .increment(1);
}

async fn webhook(State(intake): State<Intake>, headers: HeaderMap, body: Body) -> Response {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // Refused before reading a byte of the body.
    let Some(signature) = h("x-hub-signature-256") else {
        count("unknown", "unauthorized");
        return reply(
            StatusCode::UNAUTHORIZED,
            "missing X-Hub-Signature-256: configure the webhook secret on GitHub",
        );
    };
    let deadline = tokio::time::Instant::now() + intake.body_timeout;
    let declared = body::declared_length(&headers);
    let (body, _held) = match body::read(body, declared, &intake.budget, deadline).await {
        Ok(read) => read,
        Err(e) => return body_refused(e, intake.body_timeout),
    };
    if !signature_valid(intake.secret.expose().as_bytes(), &body, signature) {
        count("unknown", "unauthorized");
        tracing::warn!("webhook with a bad signature refused");
        return reply(
            StatusCode::UNAUTHORIZED,
            "bad signature: the webhook secret on GitHub and in tickbot differ",
        );
    }
    let (event, delivery) =
        match actionable_event(h("x-github-event"), h("x-github-delivery"), &body) {
            Ok(named) => named,
            Err((status, message)) => return reply(status, message),
        };
    let claim = match intake.deliveries.begin(delivery) {
        dedupe::Begin::New(claim) => claim,
        dedupe::Begin::Duplicate => {
            count(event, "duplicate");
            return reply(StatusCode::OK, "duplicate delivery: already accepted");
        }
        dedupe::Begin::InFlight => {
            count(event, "duplicate");
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "the same delivery is being accepted right now; redeliver if it shows as failed",
            );
        }
    };

    enqueue(&intake, claim, event, delivery, &body).await
}

fn body_refused(error: body::BodyError, timeout: Duration) -> Response {
    use body::BodyError;
    let (status, result, message) = match error {
        BodyError::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the body is over GitHub's 25 MiB limit".to_string(),
        ),
        BodyError::TooSlow => (
            StatusCode::REQUEST_TIMEOUT,
            "too_slow",
            format!(
                "the body did not arrive within {}s ([webhook] body_timeout)",
                timeout.as_secs()
            ),
        ),
        BodyError::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many large webhooks are being received at once; redeliver this one".to_string(),
        ),
        BodyError::Broken => (
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body was cut off".to_string(),
        ),
    };
    count("unknown", result);
    reply(status, &message)
}

/// Checks the signed request names a delivery of an event tickbot acts on; anything else gets
/// the status and message to answer with, before a delivery id is claimed.
fn actionable_event<'h>(
    event: Option<&'h str>,
    delivery: Option<&'h str>,
    body: &[u8],
) -> Result<(&'h str, &'h str), (StatusCode, &'static str)> {
    let (Some(event), Some(delivery)) = (event, delivery) else {
        count("unknown", "bad_request");
        return Err((
            StatusCode::BAD_REQUEST,
            "missing X-GitHub-Event or X-GitHub-Delivery header",
        ));
    };
    if delivery.is_empty() || delivery.len() > 128 || delivery.contains(char::is_whitespace) {
        count(event, "bad_request");
        return Err((
            StatusCode::BAD_REQUEST,
            "malformed X-GitHub-Delivery header",
        ));
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
        count(event, "bad_request");
        return Err((StatusCode::BAD_REQUEST, "the body is not JSON"));
    }
    if event == "ping" {
        count(event, "ping");
        return Err((StatusCode::OK, "pong"));
    }
    if !HANDLED_EVENTS.contains(&event) {
        count(event, "ignored");
        return Err((
            StatusCode::ACCEPTED,
            "event ignored: tickbot does not act on it",
        ));
    }
    Ok((event, delivery))
}

/// Queues a claimed delivery for the dispatcher and answers GitHub by whether the queue
/// confirmed it in time.
async fn enqueue(
    intake: &Intake,
    claim: dedupe::Claim,
    event: &str,
    delivery: &str,
    body: &Bytes,
) -> Response {
    let started = Instant::now();
    let published = tokio::time::timeout(PUBLISH_TIMEOUT, async {
        intake
            .broker
            .publish(
                &QueueKind::Events,
                Outgoing {
                    message_id: delivery.to_string(),
                    body: crate::event::envelope(delivery, event, body),
                    priority: 0,
                },
            )
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "the queue did not confirm within {}s",
            PUBLISH_TIMEOUT.as_secs()
        ))
    });
    metrics::histogram!("tickbot_publish_seconds").record(started.elapsed().as_secs_f64());
    match published {
        Ok(()) => {
            if let Err(e) = claim.accept() {
                // The event is queued; only the duplicate check for this id is weakened.
                tracing::error!(error = %e, path = %intake.deliveries.path().display(), "cannot record delivery id");
            }
            count(event, "accepted");
            tracing::debug!(delivery, event, "webhook queued");
            reply(StatusCode::ACCEPTED, "queued")
        }
        Err(e) => {
            count(event, "unavailable");
            tracing::error!(delivery, event, error = %e, "cannot queue webhook; answering 503");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("cannot queue the event: {e}"),
            )
        }
    }
}

async fn readyz(State(intake): State<Intake>) -> Response {
    if intake.broker.is_ready().await {
        reply(StatusCode::OK, "ready")
    } else {
        reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "the message broker is unreachable",
        )
    }
}

/// `/metrics`: the process's Prometheus text (also what `[metrics] listen` serves).
pub(crate) async fn render_metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics().render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_the_right_secret_and_body() {
        let sig = sign(b"s3cret", b"{}");
        assert!(signature_valid(b"s3cret", b"{}", &sig));
        assert!(!signature_valid(b"other", b"{}", &sig));
        assert!(!signature_valid(b"s3cret", b"{ }", &sig));
        assert!(!signature_valid(
            b"s3cret",
            b"{}",
            &sig.replace("sha256=", "sha1=")
        ));
        assert!(!signature_valid(b"s3cret", b"{}", "sha256=zz"));
    }

    #[test]
    fn envelope_carries_the_payload_untouched() {
        let payload = br#"{"action":"opened","x":[1,2]}"#;
        let env: crate::event::Envelope =
            serde_json::from_slice(&crate::event::envelope("d-1", "pull_request", payload))
                .expect("valid JSON");
        assert_eq!(env.delivery, "d-1");
        assert_eq!(env.payload.get().as_bytes(), payload);
    }
}
