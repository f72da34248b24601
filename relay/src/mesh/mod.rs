//! The relay mesh: the adapter between the core's mesh port and the bus, so that the relays
//! of a pool share meetings. One subscription per relay per hosted meeting; a local packet
//! crosses the bus once per publishing relay, whatever the number of remote relays and
//! subscribers. See ARCHITECTURE.md, "The relay mesh".

mod link;
mod media_header;
mod run;

pub use link::BusMesh;
pub use run::spawn;
