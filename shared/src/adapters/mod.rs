//! Adapters: the ports implemented on real infrastructure, and in memory for tests.

#[cfg(feature = "aws")]
pub mod aws_admin;
#[cfg(feature = "aws")]
pub mod aws_https;
#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod emf;
pub mod memory;
#[cfg(feature = "push")]
pub mod push;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;
