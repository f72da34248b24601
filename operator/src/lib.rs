//! The videocall Kubernetes operator: `RelayPool` and `Meeting` custom resources, their
//! reconcilers, and participant-based relay autoscaling that never cuts a live meeting.

#![warn(missing_docs)]

pub mod control_plane;
pub mod controller;
pub mod crd;
pub mod leader;
pub mod metrics;
pub mod resources;
pub mod scaling;
