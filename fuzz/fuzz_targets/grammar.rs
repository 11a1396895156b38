//! The `/rollback` grammar: any text gets an answer, and a request it understood prints back
//! to text that means the same request.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rollbot::grammar::{Command, parse};

fuzz_target!(|text: &str| {
    if let Ok(Command::Request(args)) = parse(text) {
        let printed = args.to_text();
        assert_eq!(
            parse(&printed),
            Ok(Command::Request(args.clone())),
            "{text:?} printed as {printed:?}"
        );
    }
});
