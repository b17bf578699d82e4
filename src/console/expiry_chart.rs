//! The dashboard's chart of grant ends over the next 90 days: one bar per week, laid out
//! here so the template only draws rectangles (server-rendered SVG, no script), with the
//! same figures in a table for screen readers and text browsers.

use serde::Serialize;

pub const DAY_MS: i64 = 86_400_000;
pub const WEEK_MS: i64 = 7 * DAY_MS;
/// How far ahead the chart looks.
pub const HORIZON_DAYS: i64 = 90;
/// Weeks the horizon covers (the last one partly).
pub const WEEKS: i64 = (HORIZON_DAYS + 6) / 7;

const WIDTH: i64 = 640;
const HEIGHT: i64 = 200;
const LEFT: i64 = 36;
const BOTTOM: i64 = 24;
const TOP: i64 = 16;

/// One week's bar, in SVG user units.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Bar {
    pub week: i64,
    /// First day of the week, `YYYY-MM-DD`.
    pub starts: String,
    pub count: i64,
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub width: i64,
    pub height: i64,
    pub baseline: i64,
    pub left: i64,
    pub max: i64,
    pub total: i64,
    pub bars: Vec<Bar>,
}

/// Lay out `WEEKS` bars from `from` (epoch ms) given the counts per week index; weeks
/// missing from `counts` are zero-height bars, so the chart always has one bar per week.
pub fn layout(from: i64, counts: &[(i64, i64)]) -> Chart {
    let count_of = |w: i64| {
        counts
            .iter()
            .find(|(week, _)| *week == w)
            .map_or(0, |(_, n)| *n)
    };
    let max = (0..WEEKS).map(count_of).max().unwrap_or(0);
    let plot = HEIGHT - TOP - BOTTOM;
    let slot = (WIDTH - LEFT) / WEEKS;
    let bars = (0..WEEKS)
        .map(|week| {
            let count = count_of(week);
            let height = if max == 0 { 0 } else { count * plot / max };
            Bar {
                week,
                starts: crate::clock::from_millis(from + week * WEEK_MS)
                    .format("%Y-%m-%d")
                    .to_string(),
                count,
                x: LEFT + week * slot + 4,
                y: HEIGHT - BOTTOM - height,
                width: slot - 8,
                height,
            }
        })
        .collect();
    Chart {
        width: WIDTH,
        height: HEIGHT,
        baseline: HEIGHT - BOTTOM,
        left: LEFT,
        max,
        total: counts.iter().map(|(_, n)| n).sum(),
        bars,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_week_scaled_to_the_tallest() {
        let chart = layout(0, &[(0, 2), (3, 4)]);
        assert_eq!(chart.bars.len(), 13);
        assert_eq!(chart.total, 6);
        assert_eq!(chart.bars[3].height, HEIGHT - TOP - BOTTOM);
        assert_eq!(chart.bars[0].height * 2, chart.bars[3].height);
        assert_eq!(chart.bars[1].height, 0);
        assert_eq!(chart.bars[1].starts, "1970-01-08");
    }
}
