use super::writer_turns::ChunkSizer;
use std::time::Duration;

#[test]
fn a_slow_chunk_shrinks_the_next_to_the_hold_target() {
    let mut s = ChunkSizer::new(200, 10, 5_000);
    // 200 rows in 400 ms: 2 ms a row, so 25 rows fit in 50 ms.
    s.held(200, Duration::from_millis(400));
    assert_eq!(s.size, 25);
    s.held(25, Duration::from_secs(10));
    assert_eq!(s.size, 10, "never below the floor");
}

#[test]
fn a_fast_chunk_at_most_doubles_the_next() {
    let mut s = ChunkSizer::new(200, 10, 5_000);
    s.held(200, Duration::from_millis(1));
    assert_eq!(s.size, 400);
    for _ in 0..10 {
        s.held(s.size, Duration::ZERO);
    }
    assert_eq!(s.size, 5_000, "never above the ceiling");
}
