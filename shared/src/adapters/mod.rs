//! Adapters: the ports implemented on real infrastructure, and in memory for tests.

#[cfg(feature = "aws")]
pub mod aws_admin;
#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod emf;
#[cfg(feature = "aws")]
pub mod lambda_sdk;
pub mod memory;
#[cfg(any(feature = "push", feature = "pull"))]
mod outbound;
#[cfg(feature = "aws")]
pub mod packed;
#[cfg(feature = "pull")]
pub mod pull_http;
#[cfg(feature = "push")]
pub mod push;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;
