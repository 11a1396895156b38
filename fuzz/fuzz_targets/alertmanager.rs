//! Alertmanager's webhook body, read and sorted onto the example configuration's services.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rollbot::alertmanager::{parse, sort};
use rollbot::config::Config;
use std::sync::LazyLock;

static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    let source = include_str!("../../examples/rollbot.toml").to_owned() + "\n[alertmanager]\n";
    Config::parse("rollbot.toml", &source).expect("the example configuration loads")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(notification) = parse(data) {
        if let Some(settings) = &CONFIG.alertmanager {
            let _ = sort(&notification, settings, &CONFIG.catalog);
        }
    }
});
