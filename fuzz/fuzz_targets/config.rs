//! The configuration loader: any file gets a configuration or errors with line and column.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rollbot::config::Config;

fuzz_target!(|source: &str| {
    if let Err(errors) = Config::parse("fuzz.toml", source) {
        assert!(!errors.0.is_empty(), "a refused configuration says why");
        let _ = errors.to_string();
    }
});
