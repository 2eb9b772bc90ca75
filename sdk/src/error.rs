//! Graven's error type.
//!
//! Every variant names what failed and where (the logical id of the resource, the field, the
//! call) and, where there is one, what to do next. `Display` never repeats the source error:
//! `#[source]` carries it (smithy-rs RFC 22).

use std::path::PathBuf;

/// A result whose error is [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One problem with one field of one resource, found by validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The logical id of the resource (`network.vpc`), or its kind before it has an id.
    pub resource: String,
    /// The input field at fault (`cidr_block`).
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`.`{}`: {}", self.resource, self.field, self.message)
    }
}

/// Everything that can go wrong in Graven.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// One or more inputs are invalid; each problem names the resource and the field.
    #[error("invalid stack:\n{}", render_problems(.0))]
    Invalid(Vec<Problem>),

    /// A literal could not be parsed (a CIDR block, a version, a port).
    #[error("cannot parse {what} from `{input}`: {message}")]
    Parse {
        /// What was being parsed.
        what: &'static str,
        /// The text that did not parse.
        input: String,
        /// Why it did not parse.
        message: String,
    },

    /// The deployment graph has a cycle; the path names every resource on it.
    #[error("dependency cycle: {path}; break it by removing a reference or a `depends_on` entry")]
    Cycle {
        /// The cycle, `a -> b -> c -> a`.
        path: String,
    },

    /// A resource refers to a resource that is not in the stack.
    #[error(
        "`{from}` refers to `{to}`{output}, which is not in the stack; add it, or fix the reference"
    , output = if .output.is_empty() { String::new() } else { format!(".{}", .output) })]
    DanglingReference {
        /// The logical id of the referring resource.
        from: String,
        /// The logical id it refers to.
        to: String,
        /// The output it reads, empty for a `depends_on` edge.
        output: String,
    },

    /// Two resources have the same logical id.
    #[error("two resources have the logical id `{id}`; logical ids must be unique in a stack")]
    DuplicateId {
        /// The repeated id.
        id: String,
    },

    /// A reference names an output the resource kind does not have.
    #[error(
        "`{from}` reads output `{output}` of `{to}`, but kind `{kind}` has no such output; its outputs are {known}"
    )]
    UnknownOutput {
        /// The referring resource.
        from: String,
        /// The referred resource.
        to: String,
        /// The kind of the referred resource.
        kind: String,
        /// The output that was asked for.
        output: String,
        /// The outputs the kind has.
        known: String,
    },

    /// A value could not be serialized or deserialized.
    #[error("cannot serialize {what}")]
    Serialize {
        /// What was being serialized.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },

    /// A stack input (`--var name=value`) is missing or malformed.
    #[error("stack input `{name}`: {message}")]
    Var {
        /// The input's name.
        name: String,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// No image in the catalog satisfies a requirement.
    #[error("no image `{name}` matches `{requirement}`; available: {available}")]
    NoImage {
        /// The image name.
        name: String,
        /// The version requirement.
        requirement: String,
        /// The versions that exist.
        available: String,
    },

    /// The recorded state cannot be used.
    #[error("state `{path}`: {message}")]
    State {
        /// The file or object holding the state.
        path: PathBuf,
        /// What is wrong and what to do about it.
        message: String,
    },

    /// The state is locked by another run.
    #[error(
        "state of stack `{stack}` is locked by {holder}; wait for that run to finish, or if it died run `state unlock --force`"
    )]
    Locked {
        /// The stack.
        stack: String,
        /// Who holds the lock (id, pid, host, since when).
        holder: String,
    },

    /// The plan cannot be made or applied as asked.
    #[error("{0}")]
    Plan(String),

    /// A protected resource would be destroyed.
    #[error(
        "`{id}` is protected and the plan would destroy it ({why}); remove `protect` from it first, or keep it in the stack"
    )]
    Protected {
        /// The logical id.
        id: String,
        /// Why the plan destroys it.
        why: String,
    },

    /// A call to the cloud failed.
    #[error("{resource}: {call} failed: {message}")]
    Provider {
        /// The logical id of the resource (or the fleet) the call was for.
        resource: String,
        /// The API call (`CreateVpc`, `RunInstances`).
        call: String,
        /// The provider's code and message.
        message: String,
    },

    /// An I/O error on a file Graven owns.
    #[error("{action} `{path}`")]
    Io {
        /// What Graven was doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The run was interrupted (Ctrl-C); the state records what completed.
    #[error("interrupted; state records every step that completed, run `apply` again to finish")]
    Interrupted,
}

fn render_problems(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}

impl From<ipnet::AddrParseError> for Error {
    fn from(e: ipnet::AddrParseError) -> Self {
        Error::Parse { what: "a CIDR block", input: String::new(), message: e.to_string() }
    }
}

impl From<semver::Error> for Error {
    fn from(e: semver::Error) -> Self {
        Error::Parse { what: "a semantic version", input: String::new(), message: e.to_string() }
    }
}

impl Error {
    /// An I/O error while doing `action` on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { action, path: path.into(), source }
    }
}
