//! Graven's workspace test suite: one binary; modules are prefixed by area (`dsl_`, `plan_`,
//! `apply_`, `aws_`).

#![allow(missing_docs, unreachable_pub)]

mod apply_cli;
mod apply_corrupt;
mod apply_crash;
mod apply_engine;
mod apply_faults;
mod apply_lock;
mod apply_stack;
mod apply_support;
mod dsl_custom_kind;
mod dsl_graph;
mod plan_snapshots;
mod support;

#[cfg(feature = "aws")]
mod aws_apply;
#[cfg(feature = "aws")]
mod aws_crash;
#[cfg(feature = "aws")]
mod aws_fleet;
#[cfg(feature = "aws")]
mod aws_provider;
#[cfg(feature = "aws")]
mod aws_state;
#[cfg(feature = "aws")]
mod aws_web;
