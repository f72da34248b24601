//! The videocall control plane: users and authentication, meetings and join grants, the
//! relay registry and placement, token signing keys. gRPC with `tonic` (and grpc-web for
//! browsers) over `sqlx` (SQLite by default, PostgreSQL in production).

#![warn(missing_docs)]

pub mod admission;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod keys;
pub mod metrics;
pub mod moderation;
pub mod oidc;
pub mod placement;
pub mod server;
pub mod service;
pub mod sign_in;
pub mod status;
pub mod store;
pub mod validate;
pub mod web;

pub use config::ControlPlaneConfig;
pub use server::{metrics_router, nodelay, open, router, ControlPlaneServer, StartError};
