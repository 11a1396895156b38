//! An interaction body (`payload=<json>`): button clicks, form submissions and closes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rollbot::slack::inbound::parse_interaction;

fuzz_target!(|data: &[u8]| {
    let _ = parse_interaction(data);
});
