//! Why an image was denied: one typed enum, with a stable reason code per
//! variant and a flag for failures that may go away on retry.

use portcullis_proto::Reason;

use crate::reference::ReferenceError;

/// A denial. `Display` is the human message; [`VerifyError::reason`] the
/// stable code; [`VerifyError::detail`] the code's parameters.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VerifyError {
    /// The image reference does not parse.
    #[error("invalid image reference: {0}")]
    InvalidReference(#[from] ReferenceError),
    /// No policy rule matches the image.
    #[error("no policy rule matches {0}")]
    NoMatchingRule(String),
    /// A static rule denies the image.
    #[error("denied by static validator `{validator}` (rule `{rule}`)")]
    StaticDeny {
        /// The rule's pattern as written.
        rule: String,
        /// The validator's name.
        validator: String,
    },
    /// The verification did not finish within the caller's deadline.
    #[error("verification did not finish within the deadline")]
    Timeout,
    /// A bug or an impossible state; never an allow.
    #[error("internal error: {0}")]
    Internal(String),
}

impl VerifyError {
    /// The stable reason code.
    pub fn reason(&self) -> Reason {
        match self {
            VerifyError::InvalidReference(_) => Reason::InvalidReference,
            VerifyError::NoMatchingRule(_) => Reason::NoMatchingRule,
            VerifyError::StaticDeny { .. } => Reason::StaticDeny,
            VerifyError::Timeout => Reason::Timeout,
            VerifyError::Internal(_) => Reason::InternalError,
        }
    }

    /// The reason's parameters (e.g. `1 of 2`), or "".
    pub fn detail(&self) -> String {
        String::new()
    }

    /// True for failures that may go away on retry. Such denials are never
    /// cached.
    pub fn is_transient(&self) -> bool {
        matches!(self, VerifyError::Timeout | VerifyError::Internal(_))
    }
}
