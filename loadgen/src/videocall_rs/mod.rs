//! The system we replace, measured the same way: a driver that speaks videocall-rs's wire
//! protocol (`wire`, `client`), its media server and NATS as processes of one run
//! (`servers`), and a scenario run that reports the same figures as ours (`run`). Its
//! servers are built outside this repository (BENCHMARKS.md says how they were measured).

mod client;
mod run;
mod servers;
mod wire;

pub use run::run;
pub use servers::default_bin_dir;
