//! Bytes from a peer, into the frame decoder of either direction. It must
//! not panic; every frame it returns must encode back to exactly the bytes
//! it consumed; how the bytes are cut into chunks must not change what it
//! returns; and an error must describe itself, on one line, and stay the
//! same when asked again. The first input byte sets the chunk size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::fmt::Debug;

#[allow(dead_code)]
#[path = "../../src/daemon/wire.rs"]
mod wire;

use wire::{Decoder, Message, ToChild, ToDaemon, WireError};

/// The frames decoded from `input` fed `chunk` bytes at a time, and the
/// error that stopped the decoding, if one did.
fn decode<M: Message + PartialEq + Debug>(input: &[u8], chunk: usize) -> (Vec<M>, Option<WireError>) {
    let mut decoder = Decoder::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    loop {
        let frame_start = decoder.consumed() as usize;
        match decoder.next_frame::<M>() {
            Ok(Some(frame)) => {
                let frame_end = decoder.consumed() as usize;
                let mut encoded = Vec::new();
                wire::encode(&frame, &mut encoded).expect("a decoded frame encodes");
                assert_eq!(encoded, input[frame_start..frame_end], "{frame:?}");
                frames.push(frame);
            }
            Ok(None) if fed < input.len() => {
                let next = input.len().min(fed + chunk);
                decoder.feed(&input[fed..next]);
                fed = next;
            }
            Ok(None) => {
                // What is left is the start of a frame, kept for more bytes.
                assert_eq!(decoder.buffered(), input.len() - frame_start);
                return (frames, None);
            }
            Err(error) => {
                let description = error.to_string();
                assert!(!description.is_empty());
                assert!(!description.contains(['\n', '\r']), "{description:?}");
                assert_eq!(decoder.next_frame::<M>().unwrap_err(), error);
                return (frames, Some(error));
            }
        }
    }
}

fn check<M: Message + PartialEq + Debug>(input: &[u8], chunk: usize) {
    let whole = decode::<M>(input, input.len().max(1));
    assert_eq!(decode::<M>(input, chunk), whole);
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    check::<ToDaemon>(input, chunk);
    check::<ToChild>(input, chunk);
});
