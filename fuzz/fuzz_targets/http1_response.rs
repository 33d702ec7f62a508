//! Response heads on arbitrary bytes: see `switchyard::http1::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::http1::fuzzing::check_response_input(data);
});
