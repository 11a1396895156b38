//! The signature check sees every byte anyone sends to /slack/*: it must never panic, and it
//! must accept exactly the requests signed with the secret, fresh.
#![no_main]
use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use rollbot::slack::signature::{Secret, SignatureVerifier, sign};

const SECRET: &str = "fuzz-signing-secret";
const NOW: i64 = 1_790_000_000;

fuzz_target!(|data: &[u8]| {
    // timestamp \n signature \n body, as the headers and body of one request.
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (Some(timestamp), Some(signature)) = (parts.next(), parts.next()) else {
        return;
    };
    let body = parts.next().unwrap_or_default();
    let (Ok(timestamp), Ok(signature)) = (std::str::from_utf8(timestamp), std::str::from_utf8(signature)) else {
        return;
    };
    let verifier = SignatureVerifier::new(vec![Secret::new(SECRET)]);
    let now = Utc.timestamp_opt(NOW, 0).unwrap();
    let verdict = verifier.verify(Some(timestamp), Some(signature), body, now);
    let canonical = timestamp
        .parse::<i64>()
        .ok()
        .filter(|sent| *sent.to_string() == *timestamp);
    if verdict.is_ok() {
        let sent: i64 = timestamp.trim().parse().expect("an accepted timestamp is a number");
        assert!((NOW - sent).abs() <= 300, "a stale request was accepted: {timestamp}");
        if canonical.is_some() {
            assert!(
                signature.eq_ignore_ascii_case(&sign(SECRET, sent, body)),
                "accepted a signature rollbot would not have made: {signature} for {timestamp}"
            );
        }
    }
    // What the signer makes is always accepted while fresh.
    if let Some(sent) = canonical.filter(|sent| (NOW - 300..=NOW + 300).contains(sent)) {
        let signed = sign(SECRET, sent, body);
        assert!(verifier.verify(Some(timestamp), Some(&signed), body, now).is_ok());
    }
});
