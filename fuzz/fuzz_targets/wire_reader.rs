//! Bytes from a peer, through the socket reader that receives data frames
//! straight into a caller's buffer (`FrameReader::read_frame_or_data`).
//! Whatever the buffer's size and the smallest data frame it takes, it
//! must not panic and must return what the plain decoder finds in the same
//! bytes: the same frames in the same order (a data frame it took into the
//! buffer holding the same bytes), ending at a clean end of file exactly
//! when the decoder ends between frames. It may stop earlier with an error
//! only where the socket adds a rule of its own (a File frame needs a
//! descriptor, which these bytes never carry). The first input byte picks
//! the buffer's size and the smallest data frame taken into it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::fmt::Debug;
use std::io::Write;
use std::mem::MaybeUninit;
use std::os::unix::net::UnixStream;

#[allow(dead_code)]
#[path = "../../src/daemon/wire.rs"]
mod wire;

use wire::{Arrived, Decoder, FrameReader, Message, ToChild, ToDaemon};

/// The frames the decoder finds in `input` fed at once, and whether it
/// ended cleanly between frames (no error, nothing left over).
fn decoded<M: Message>(input: &[u8]) -> (Vec<M>, bool) {
    let mut decoder = Decoder::new();
    decoder.feed(input);
    let mut frames = Vec::new();
    loop {
        match decoder.next_frame::<M>() {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, decoder.buffered() == 0),
            Err(_) => return (frames, false),
        }
    }
}

/// `data_frame` makes this direction's data frame from its bytes;
/// `data_len` tells the length of one, None for other frames.
fn check<M: Message + PartialEq + Debug>(
    input: &[u8],
    buffer: usize,
    min: usize,
    data_frame: fn(Vec<u8>) -> M,
    data_len: fn(&M) -> Option<usize>,
) {
    let (mut writer, reader) = UnixStream::pair().expect("a socket pair");
    // Fuzz inputs are far below a UNIX socket's buffer: written at once.
    writer.write_all(input).expect("the input fits the socket buffer");
    drop(writer);
    let mut reader = FrameReader::new(reader);
    let mut dest = vec![MaybeUninit::new(0u8); buffer];
    let mut frames = Vec::new();
    let clean_end = loop {
        match reader.read_frame_or_data::<M>(&mut dest, min) {
            Ok(None) => break true,
            Ok(Some(Arrived::Data(len))) => {
                assert!((min..=buffer).contains(&len), "a data frame of {len} bytes taken into a buffer of {buffer} (min {min})");
                // SAFETY: dest was initialised when it was made.
                frames.push(data_frame(dest[..len].iter().map(|b| unsafe { b.assume_init() }).collect()));
            }
            Ok(Some(Arrived::Frame(frame, fd))) => {
                assert!(fd.is_none(), "a descriptor came with bytes that carry none");
                if let Some(len) = data_len(&frame) {
                    assert!(!(min..=buffer).contains(&len), "a data frame of {len} bytes not taken into a buffer of {buffer} (min {min})");
                }
                frames.push(frame);
            }
            Err(error) => {
                assert!(!error.to_string().is_empty());
                break false;
            }
        }
    };
    let (expected, decoder_clean) = decoded::<M>(input);
    assert!(expected.starts_with(&frames), "the reader's frames {frames:?} are not the decoder's {expected:?}");
    if clean_end {
        assert!(decoder_clean && frames.len() == expected.len(), "the reader ended cleanly where the decoder did not");
    } else if decoder_clean {
        // Only a rule of the socket's own can stop it: the next frame is
        // one that needs a descriptor.
        let next = expected.get(frames.len()).expect("an error with no frame left to stop at");
        assert!(next.carries_fd(), "the reader failed before {next:?}, which the decoder takes");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&params, input)) = data.split_first() else { return };
    let buffer = [4, 16, 64, 512][usize::from(params & 3)];
    let min = [0, 1, 8, 32][usize::from((params >> 2) & 3)].min(buffer);
    check::<ToChild>(input, buffer, min, |data| ToChild::Data { data }, |frame| match frame {
        ToChild::Data { data } => Some(data.len()),
        _ => None,
    });
    check::<ToDaemon>(input, buffer, min, |data| ToDaemon::Body { data }, |frame| match frame {
        ToDaemon::Body { data } => Some(data.len()),
        _ => None,
    });
});
