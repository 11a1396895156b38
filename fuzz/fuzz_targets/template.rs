//! Communication templates (from the configuration) rendered with people's text in every
//! variable: template \0 text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rollbot::templates::{VARIABLES, check, render};
use std::collections::BTreeMap;

fuzz_target!(|data: &str| {
    let (template, text) = data.split_once('\0').unwrap_or((data, "bad deploy"));
    if check(template).is_err() {
        return;
    }
    let variables: BTreeMap<&'static str, String> =
        VARIABLES.iter().map(|(name, _)| (*name, text.to_owned())).collect();
    let _ = render(template, &variables);
});
