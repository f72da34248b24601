//! The relay's session state machine (`videocall_relay::script`) fed random sequences of
//! joins, frames, messages, back pressure, time and other relays' events; the script checks
//! what must always hold after every step.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    videocall_relay::script::run(data);
});
