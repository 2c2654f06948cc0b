//! Pending calls (of users whose creation has not been seen yet) moved out of memory, into an anonymous temporary
//! file, and read back once at the end. See `keyguard_core::timeline` for why they cannot simply be dropped.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::sync::Mutex;

use keyguard_core::timeline::PendingCall;

use crate::ReplayError;

/// One file for every worker's spills. Created on first use (`tempfile`: unlinked at once, so it disappears with
/// the process whatever happens); written rarely, in batches, under a lock.
#[derive(Default)]
pub struct Spill {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    file: Option<BufWriter<File>>,
    /// The first write error: a lost spill would lose findings, so the replay fails at the end.
    error: Option<std::io::Error>,
}

impl Spill {
    /// Writes a batch of pending calls, one JSON line each.
    pub fn write(&self, calls: &[PendingCall]) {
        let Ok(mut state) = self.state.lock() else { return };
        if state.error.is_some() {
            return;
        }
        if let Err(e) = write_batch(&mut state, calls) {
            state.error = Some(e);
        }
    }

    /// Reads every spilled call back, in the order written; fails if any write or read failed.
    pub fn read_back(self, mut each: impl FnMut(PendingCall)) -> Result<(), ReplayError> {
        let state = self.state.into_inner().map_err(|_| ReplayError::Worker)?;
        if let Some(e) = state.error {
            return Err(ReplayError::Spill(e));
        }
        let Some(writer) = state.file else { return Ok(()) };
        let mut file = writer.into_inner().map_err(|e| ReplayError::Spill(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(ReplayError::Spill)?;
        for line in BufReader::new(file).lines() {
            let line = line.map_err(ReplayError::Spill)?;
            let call = serde_json::from_str(&line).map_err(|e| ReplayError::Spill(e.into()))?;
            each(call);
        }
        Ok(())
    }
}

fn write_batch(state: &mut State, calls: &[PendingCall]) -> std::io::Result<()> {
    if state.file.is_none() {
        state.file = Some(BufWriter::new(tempfile::tempfile()?));
    }
    let Some(file) = state.file.as_mut() else { return Ok(()) };
    for call in calls {
        serde_json::to_writer(&mut *file, call)?;
        file.write_all(b"\n")?;
    }
    Ok(())
}
