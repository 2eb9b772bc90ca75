//! AWS errors as [`provider::Error`]s: which failures the engine retries.
//!
//! The classification is a pure function of what the SDK reports (the error code, the HTTP
//! status, or the kind of transport failure), so it is unit-tested without a network.

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

use crate::provider::{Error, ErrorKind};

/// What went wrong with one call, as far as classification cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The service answered with an error.
    Service {
        /// The HTTP status.
        status: u16,
        /// The AWS error code (`InvalidVpcID.NotFound`), when the body had one.
        code: Option<String>,
    },
    /// The call timed out; it may have reached the service.
    Timeout,
    /// The request could not be sent, or no response came back (connection refused, reset).
    Dispatch,
    /// A response came back but could not be parsed (a truncated body).
    Response,
    /// The request could not be built (a bug or an invalid input): it was never sent.
    Construction,
}

/// Codes that mean "slow down".
const THROTTLING: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "EC2ThrottledException",
    "PriorRequestNotComplete",
];

/// Codes of server-side failures worth a retry.
const TRANSIENT: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
];

/// Classifies one failure. `NotFound` codes (`InvalidVpcID.NotFound`,
/// `InvalidLaunchTemplateName.NotFoundException`) map to [`ErrorKind::NotFound`];
/// [`after_create`] turns them into [`ErrorKind::NotFoundYet`] for the calls of a create, where
/// they mean eventual consistency rather than absence.
pub(crate) fn classify(failure: &Failure) -> ErrorKind {
    match failure {
        Failure::Timeout | Failure::Dispatch | Failure::Response => ErrorKind::Transient,
        Failure::Construction => ErrorKind::Terminal,
        Failure::Service { status, code } => {
            let code = code.as_deref().unwrap_or("");
            if THROTTLING.contains(&code) || *status == 429 {
                ErrorKind::Throttling
            } else if TRANSIENT.contains(&code) || (500..600).contains(status) {
                ErrorKind::Transient
            } else if is_not_found(code) {
                ErrorKind::NotFound
            } else {
                // DependencyViolation, InvalidParameter*, UnauthorizedOperation, ... and every
                // code this list does not know: retrying them would fail the same way.
                ErrorKind::Terminal
            }
        }
    }
}

/// Whether `code` says the resource does not exist.
pub(crate) fn is_not_found(code: &str) -> bool {
    code.ends_with(".NotFound")
        || code.ends_with(".NotFoundException")
        || code.ends_with("NotFound")
        || code == "NoSuchKey"
        || code == "NoSuchBucket"
}

/// Inside a create, "not found" means the resource (or one it refers to, made a moment ago by
/// an earlier step) is not visible yet: AWS APIs are eventually consistent.
pub(crate) fn after_create(mut error: Error) -> Error {
    if error.kind == ErrorKind::NotFound {
        error.kind = ErrorKind::NotFoundYet;
    }
    error
}

/// The [`Failure`] an SDK error stands for, with the service's code and message.
pub(crate) fn failure<E>(err: &SdkError<E, HttpResponse>) -> (Failure, String, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = || aws_sdk_ec2::error::DisplayErrorContext(err).to_string();
    match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().map(str::to_owned);
            let message = service.err().message().map_or_else(text, str::to_owned);
            let shown = code.clone().unwrap_or_else(|| format!("HTTP {status}"));
            (Failure::Service { status, code }, shown, message)
        }
        SdkError::TimeoutError(_) => (Failure::Timeout, "Timeout".into(), text()),
        SdkError::DispatchFailure(_) => (Failure::Dispatch, "DispatchFailure".into(), text()),
        SdkError::ResponseError(r) => {
            // A response the SDK could not parse: a 5xx page from a proxy, or a cut body.
            let status = r.raw().status().as_u16();
            let f = if status >= 500 {
                Failure::Service { status, code: None }
            } else {
                Failure::Response
            };
            (f, format!("HTTP {status}"), text())
        }
        SdkError::ConstructionFailure(_) => {
            (Failure::Construction, "ConstructionFailure".into(), text())
        }
        _ => (Failure::Dispatch, "Unknown".into(), text()),
    }
}

/// An SDK error as a classified [`Error`] of call `call`.
pub(crate) fn from_sdk<E>(call: &str, err: &SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (failure, code, message) = failure(err);
    Error::new(classify(&failure), call, code, message)
}

/// An error Graven raises itself about a call's result (a missing field, a timeout of a wait).
pub(crate) fn invalid(call: &str, message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Terminal, call, "InvalidResponse", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16, code: &str) -> Failure {
        Failure::Service { status, code: Some(code.to_owned()) }
    }

    #[test]
    fn throttling_codes_are_throttling() {
        for code in ["RequestLimitExceeded", "Throttling", "ThrottlingException", "SlowDown"] {
            assert_eq!(classify(&service(400, code)), ErrorKind::Throttling, "{code}");
        }
        assert_eq!(classify(&Failure::Service { status: 429, code: None }), ErrorKind::Throttling);
        assert_eq!(
            classify(&service(503, "SlowDown")),
            ErrorKind::Throttling,
            "the code wins over the status"
        );
    }

    #[test]
    fn server_failures_and_transport_are_transient() {
        assert_eq!(classify(&service(500, "InternalError")), ErrorKind::Transient);
        assert_eq!(classify(&service(503, "ServiceUnavailable")), ErrorKind::Transient);
        assert_eq!(classify(&service(400, "InsufficientInstanceCapacity")), ErrorKind::Transient);
        assert_eq!(classify(&Failure::Service { status: 502, code: None }), ErrorKind::Transient);
        assert_eq!(classify(&Failure::Timeout), ErrorKind::Transient);
        assert_eq!(classify(&Failure::Dispatch), ErrorKind::Transient);
        assert_eq!(classify(&Failure::Response), ErrorKind::Transient);
    }

    #[test]
    fn not_found_codes_are_not_found_and_not_found_yet_after_a_create() {
        for code in [
            "InvalidVpcID.NotFound",
            "InvalidInstanceID.NotFound",
            "InvalidGroup.NotFound",
            "InvalidLaunchTemplateName.NotFoundException",
            "InvalidRouteTableID.NotFound",
            "NoSuchKey",
        ] {
            assert_eq!(classify(&service(400, code)), ErrorKind::NotFound, "{code}");
        }
        let e = after_create(Error::new(
            ErrorKind::NotFound,
            "CreateTags",
            "InvalidVpcID.NotFound",
            "gone",
        ));
        assert_eq!(e.kind, ErrorKind::NotFoundYet);
        assert!(e.kind.is_retryable());
        let e = after_create(Error::new(
            ErrorKind::Terminal,
            "CreateVpc",
            "InvalidParameterValue",
            "bad",
        ));
        assert_eq!(e.kind, ErrorKind::Terminal, "only not-found changes");
    }

    #[test]
    fn everything_else_is_terminal() {
        for code in [
            "DependencyViolation",
            "InvalidParameterValue",
            "InvalidParameterCombination",
            "InvalidParameter",
            "UnauthorizedOperation",
            "InvalidVpc.Range",
            "ValidationError",
            "SomethingNew",
        ] {
            assert_eq!(classify(&service(400, code)), ErrorKind::Terminal, "{code}");
        }
        assert_eq!(classify(&Failure::Construction), ErrorKind::Terminal);
        assert!(!ErrorKind::Terminal.is_retryable());
    }

    #[test]
    fn an_error_names_the_call_the_code_and_the_message() {
        let e = Error::new(
            classify(&service(400, "DependencyViolation")),
            "DeleteVpc",
            "DependencyViolation",
            "has subnets",
        );
        assert_eq!(e.to_string(), "DeleteVpc: DependencyViolation: has subnets");
    }
}
