//! The errors of the remote client.

/// What went wrong talking to the inspection API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL does not parse or cannot be a base.
    #[error("bad URL {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server could not be reached or the connection broke.
    #[error("request to {url} failed: {source}")]
    Transport {
        /// The URL requested.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error (its message, when it sent one).
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        /// The URL requested.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The answer does not decode as expected (a different object type,
    /// or not this API).
    #[error("cannot decode the answer of {url}: {reason}")]
    Decode {
        /// The URL requested.
        url: String,
        /// Why.
        reason: String,
    },
    /// A change stream received nothing, not even a heartbeat, for too
    /// long; it reconnects.
    #[error("no heartbeat from {url} for {idle_ms} ms")]
    Idle {
        /// The URL of the stream.
        url: String,
        /// How long it waited.
        idle_ms: u128,
    },
}

impl ClientError {
    /// True for an error that trying again cannot fix: a 4xx answer (an
    /// unknown table or index, a key that does not parse), or objects that
    /// do not decode.
    pub fn is_permanent(&self) -> bool {
        match self {
            ClientError::Status { status, .. } => (400..500).contains(status),
            ClientError::Url { .. } | ClientError::Decode { .. } => true,
            ClientError::Transport { .. } | ClientError::Idle { .. } => false,
        }
    }
}
