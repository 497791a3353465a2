//! Trace events of the worker and the dispatcher, with wall-clock times: the phases of a
//! job are measured between them.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// One recorded event: when, its message, and its other fields.
#[derive(Debug, Clone)]
pub struct Ev {
    pub at: DateTime<Utc>,
    pub msg: String,
    pub fields: HashMap<String, String>,
}

/// Collects the events of the tracing subscriber it is installed in.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Ev>>>);

impl Recorder {
    /// The events recorded since the last call.
    pub fn take(&self) -> Vec<Ev> {
        std::mem::take(&mut *self.0.lock().expect("recorder"))
    }
}

/// Reads an event's message and fields as text.
#[derive(Default)]
struct Visitor {
    msg: String,
    fields: HashMap<String, String>,
}

impl tracing::field::Visit for Visitor {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.fields
            .insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.msg = format!("{value:?}");
        } else {
            self.fields
                .insert(field.name().to_string(), format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let at = Utc::now();
        let mut v = Visitor::default();
        event.record(&mut v);
        self.0.lock().expect("recorder").push(Ev {
            at,
            msg: v.msg,
            fields: v.fields,
        });
    }
}

/// The first event with message `msg`.
pub fn first<'a>(events: &'a [Ev], msg: &str) -> Option<&'a Ev> {
    events.iter().find(|e| e.msg == msg)
}
/// Whether RabbitMQ went away (another test restarting it) while these events were recorded.
pub fn disrupted(events: &[Ev]) -> bool {
    events.iter().any(|e| {
        e.msg.contains("RabbitMQ connection lost")
            || e.msg.contains("lost its channel")
            || e.msg.contains("cannot resubscribe")
    })
}

/// Installs `recorder` for the worker's, dispatcher's and queue's events, and warnings on
/// stderr.
pub fn install(recorder: &Recorder) {
    tracing_subscriber::registry()
        .with(
            recorder.clone().with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("tickbot::worker", tracing::Level::DEBUG)
                    .with_target("tickbot::dispatch", tracing::Level::INFO)
                    .with_target("tickbot::queue", tracing::Level::WARN),
            ),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::filter::LevelFilter::WARN),
        )
        .init();
}
