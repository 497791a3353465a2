//! Errors of GitHub API calls. Each names the call that failed (`what`, e.g. "GET pull request
//! owner/repo#12") and says what an operator or the dispatcher can do about it, because these
//! messages end up in logs and PR comments. None of them ever contains a token.

use chrono::{DateTime, Utc};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error(
        "{what}: not found on GitHub (HTTP 404); check the name, and that the bot's token or \
         App installation has access to it"
    )]
    NotFound { what: String },

    #[error(
        "{what}: GitHub's rate limit is exhausted until {until} (longer than this call may wait); \
         try again after that time"
    )]
    RateLimited { what: String, until: DateTime<Utc> },

    #[error("{what}: GitHub answered HTTP {status}: {message}{}", api_hint(*.status, *.outcome_unknown))]
    Api {
        what: String,
        status: u16,
        message: String,
        /// A non-idempotent request (e.g. creating a comment) failed with a server error: GitHub
        /// may have carried it out, so it was not repeated.
        outcome_unknown: bool,
    },

    #[error("{what}: could not reach GitHub: {}{}", chain(.source.as_ref()), transport_hint(*.outcome_unknown))]
    Transport {
        what: String,
        /// As for [`GitHubError::Api`]: the request may have been carried out.
        outcome_unknown: bool,
        #[source]
        source: BoxError,
    },

    #[error("{what}: GitHub's answer was not understood: {reason}")]
    InvalidResponse { what: String, reason: String },

    #[error("GitHub client configuration: {0}")]
    Config(String),
}

impl GitHubError {
    /// True when the failed call may nevertheless have taken effect on GitHub, so a caller that
    /// wants to repeat it must first look (e.g. list comments) to avoid a duplicate.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            GitHubError::Api {
                outcome_unknown: true,
                ..
            } | GitHubError::Transport {
                outcome_unknown: true,
                ..
            }
        )
    }

    /// True for failures that may go away by themselves (server errors, network, rate limits),
    /// as opposed to ones that need a person (missing permission, bad input, configuration).
    pub fn is_transient(&self) -> bool {
        match self {
            GitHubError::RateLimited { .. } | GitHubError::Transport { .. } => true,
            GitHubError::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

const OUTCOME_UNKNOWN: &str = "; the request may have been carried out anyway, so it was not \
     repeated (repeating could duplicate it): check on GitHub before trying again";

fn api_hint(status: u16, outcome_unknown: bool) -> &'static str {
    match status {
        _ if outcome_unknown => OUTCOME_UNKNOWN,
        401 => "; the token or App key was refused: check the [github] credentials",
        403 => "; the token or App installation lacks the permission for this",
        422 => "; GitHub refused the input",
        500..=599 => "; GitHub is failing: try again later",
        _ => "",
    }
}

/// The error and its causes, since the outermost message alone ("client error (Connect)") does
/// not say what went wrong.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(cause) = current {
        let cause_text = cause.to_string();
        // Wrappers often repeat their cause's message; print each message once.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        current = cause.source();
    }
    text
}

fn transport_hint(outcome_unknown: bool) -> &'static str {
    if outcome_unknown {
        OUTCOME_UNKNOWN
    } else {
        "; check the network and [github] api_url"
    }
}
