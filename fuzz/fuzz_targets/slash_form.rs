//! A slash command's form body, then the `/rollback` text in it, as the edge reads them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rollbot::grammar;
use rollbot::slack::inbound::parse_slash_command;

fuzz_target!(|data: &[u8]| {
    if let Ok(command) = parse_slash_command(data) {
        let _ = grammar::parse(&command.text);
    }
});
