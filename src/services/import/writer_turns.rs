//! How long an import holds the writer: the time-sized chunk sizer, the pause it leaves
//! other writers after a chunk, and the longest holds it reports.

/// The writer hold a publish or clean-up chunk aims at: SCIM writes queued behind it then
/// wait a few tens of milliseconds, well within their latency budget.
const HOLD_TARGET: std::time::Duration = std::time::Duration::from_millis(50);

/// The next chunk's row count, from how long the last one held the writer per row; it at
/// most doubles at a time, so one fast chunk (a page of unchanged rows) does not make the
/// next one hold for long.
pub(super) struct ChunkSizer {
    pub(super) size: usize,
    pub(super) min: usize,
    pub(super) max: usize,
}

impl ChunkSizer {
    pub(super) fn new(start: usize, min: usize, max: usize) -> Self {
        ChunkSizer {
            size: start,
            min,
            max,
        }
    }

    pub(super) fn held(&mut self, rows: usize, held: std::time::Duration) {
        if rows == 0 {
            return;
        }
        let per_row = held.as_secs_f64() / rows as f64;
        let fits = if per_row > 0.0 {
            (HOLD_TARGET.as_secs_f64() / per_row) as usize
        } else {
            self.max
        };
        self.size = fits.min(self.size * 2).clamp(self.min, self.max);
    }
}

/// Longest writer holds of one import, for the operators' log and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WriterHolds {
    pub stage_chunk_ms: f64,
    pub publish_chunk_ms: f64,
    /// The last step: the record written and the staged rows dropped.
    pub finish_ms: f64,
    pub chunks: u64,
}

impl WriterHolds {
    pub(super) fn publish(&mut self, since: std::time::Instant) {
        self.chunks += 1;
        self.publish_chunk_ms = self.publish_chunk_ms.max(ms(since));
    }
}

pub(super) fn ms(since: std::time::Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// After a chunk, leave SQLite's lock free for twice as long as the chunk held it (at least
/// 50 ms, at most half a second). Writers of this process queue for their turn in order
/// (`store::work`), but those of another process (a server next to `guestbridge import`)
/// wait in SQLite's busy handler, which sleeps and polls (every 25 to 100 ms once it has
/// waited a while): an importer taking the lock again at once starved them past the busy
/// timeout, and one pausing only as long as it held the lock still did under load.
pub(super) async fn yield_writer(db: &crate::store::Db, held_since: std::time::Instant) {
    use std::time::Duration;
    if db.backend() == crate::store::Backend::Sqlite {
        let pause =
            (held_since.elapsed() * 2).clamp(Duration::from_millis(50), Duration::from_millis(500));
        tokio::time::sleep(pause).await;
    }
}
