//! Arbitrary bytes → the import request decoder the pipeline uses
//! (`hookbox::hook::decode::decode`). Never panics; a refusal is Okta's error
//! body; an accepted request round-trips its values (`check_request`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    hookbox_fuzz::check_request(body);
});
