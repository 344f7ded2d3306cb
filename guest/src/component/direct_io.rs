//! WIT `direct-io` (filesystem world only): hands the host descriptors of
//! the files behind state streams, so that large state skips the
//! component's memory. The streams keep every decision; see the WIT.

use super::Component;
use super::exports::flink::checkpoint_storage::direct_io::{DirectAnswer, DirectRead, Guest};
use super::exports::flink::checkpoint_storage::restore::StateInputStreamBorrow;
use super::exports::flink::checkpoint_storage::worker::StateOutputStreamBorrow;
use super::restore::InputStreamImpl;
use super::types::*;
use super::worker::StreamImpl;
use checkpoint_storage_core::output_stream::{CheckpointStateOutputStream, DirectWrite};
use wasip2::filesystem::types::Descriptor;

impl Guest for Component {
    fn prepare_direct_write(
        stream: StateOutputStreamBorrow<'_>,
        len: u64,
    ) -> WitResult<(DirectAnswer, Option<Descriptor>)> {
        let stream = stream.get::<StreamImpl>();
        let answer = stream.0.borrow_mut().prepare_direct_write(len).map_err(to_wit_error)?;
        Ok(match answer {
            DirectWrite::Copy => (DirectAnswer::Copy, None),
            DirectWrite::Never => (DirectAnswer::Never, None),
            // `WasiSandbox::host_write_handle` gives descriptors only.
            DirectWrite::Ready { offset, file } => (
                DirectAnswer::Ready(offset),
                file.and_then(|f| f.downcast::<Descriptor>().ok()).map(|d| *d),
            ),
        })
    }

    fn advance(stream: StateOutputStreamBorrow<'_>, written: u64) -> WitResult<()> {
        let stream = stream.get::<StreamImpl>();
        stream.0.borrow_mut().advance(written).map_err(to_wit_error)
    }

    fn open_direct_read(stream: StateInputStreamBorrow<'_>) -> WitResult<Option<(Descriptor, DirectRead)>> {
        let mut stream = stream.get::<InputStreamImpl>().0.borrow_mut();
        let (size, pos) = (stream.size(), stream.pos());
        // The stream's own descriptor (it reopens its file should it be
        // asked to read again).
        Ok(stream
            .hand_over_reader()
            .map(|(reader, base)| (reader.into_descriptor(), DirectRead { base, size, pos })))
    }
}
