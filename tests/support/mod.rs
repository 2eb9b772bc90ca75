//! Harness code shared by the test modules.

#[cfg(feature = "aws")]
pub mod moto;
