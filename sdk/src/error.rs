//! The error every fallible call returns, and constructors for it.

pub use crate::bindings::types::Error;

/// `Result` with the contract's [`Error`] as the default error type.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    /// An argument is out of range, of the wrong shape or malformed.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }

    /// A layer, tensor or parameter named in the call does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::NotFound(message.into())
    }

    /// The operation is valid but not supported here.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error::Unsupported(message.into())
    }

    /// A limit was hit (a budget, a sandbox cap, ...).
    pub fn limit_exceeded(message: impl Into<String>) -> Self {
        Error::LimitExceeded(message.into())
    }

    /// A computation produced NaN or infinity, or did not converge.
    pub fn numerical(message: impl Into<String>) -> Self {
        Error::Numerical(message.into())
    }

    /// Anything else.
    pub fn host(message: impl Into<String>) -> Self {
        Error::Host(message.into())
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidArgument(m)
            | Error::NotFound(m)
            | Error::Unsupported(m)
            | Error::LimitExceeded(m)
            | Error::Numerical(m)
            | Error::Host(m) => m,
        }
    }

    /// The kind as the contract spells it, e.g. `invalid-argument`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "invalid-argument",
            Error::NotFound(_) => "not-found",
            Error::Unsupported(_) => "unsupported",
            Error::LimitExceeded(_) => "limit-exceeded",
            Error::Numerical(_) => "numerical",
            Error::Host(_) => "host",
        }
    }

    /// The same error with `context: ` put before its message.
    pub fn context(self, context: impl core::fmt::Display) -> Self {
        let wrap = |m: String| format!("{context}: {m}");
        match self {
            Error::InvalidArgument(m) => Error::InvalidArgument(wrap(m)),
            Error::NotFound(m) => Error::NotFound(wrap(m)),
            Error::Unsupported(m) => Error::Unsupported(wrap(m)),
            Error::LimitExceeded(m) => Error::LimitExceeded(wrap(m)),
            Error::Numerical(m) => Error::Numerical(wrap(m)),
            Error::Host(m) => Error::Host(wrap(m)),
        }
    }
}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.message() == other.message()
    }
}
