//! The dtab, name-tree and path parsers, and binding through whatever
//! parses: see `switchyard::routing::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::routing::fuzzing::check_dtab_input(data);
});
