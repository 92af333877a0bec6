//! Median and spread of a set of timings: what every row of the table reports.
//!
//! Why median and p10–p90 rather than mean and standard deviation: on a shared 2-core machine a
//! few iterations are delayed by someone else's work (a context switch, an interrupt). The mean
//! moves with those outliers; the median does not, and p10–p90 shows how wide the usual range
//! is without letting one 10× outlier define it.

use std::time::Duration;

/// A summary of `n` timings, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
}

impl Summary {
    /// `None` for no samples: a row with nothing measured must say why, not show zero.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        Self::of_ms(&mut ms)
    }

    /// The same, from values already in milliseconds (or any unit: ratios use it too).
    pub fn of_ms(values: &mut [f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        Some(Summary {
            n: values.len(),
            median: percentile(values, 50.0),
            p10: percentile(values, 10.0),
            p90: percentile(values, 90.0),
        })
    }

    /// "0.69 ms (p10–p90 0.61–0.80, n=200)".
    pub fn describe(&self) -> String {
        format!(
            "{} (p10–p90 {}–{}, n={})",
            ms(self.median),
            number(self.p10),
            number(self.p90),
            self.n
        )
    }
}

/// Linear interpolation between closest ranks, on sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// The median of `samples` (between the two middle ones for an even count), as a duration:
/// what the criterion benches print. `None` for no samples.
pub fn median(samples: &[Duration]) -> Option<Duration> {
    Summary::of(samples).map(|s| Duration::from_secs_f64(s.median / 1e3))
}

/// A number with three significant digits, no exponent: 0.00912, 0.691, 12.3, 1234.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.1 {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    }
}

/// Milliseconds, as a reader wants to see them.
pub fn ms(v: f64) -> String {
    format!("{} ms", number(v))
}

/// Bytes in KiB / MiB / GiB, with three significant digits like every figure of the report
/// ("2.81 KiB", "8.12 MiB"). Not ch03's `quantity::human_bytes`, which rounds to one decimal
/// ("2.8 KiB") and counts small sizes in bytes.
pub fn bytes(b: u64) -> String {
    let b = b as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{} GiB", number(b / (1u64 << 30) as f64))
    } else if b >= (1u64 << 20) as f64 {
        format!("{} MiB", number(b / (1u64 << 20) as f64))
    } else {
        format!("{} KiB", number(b / 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread_of_known_values() {
        let s = Summary::of_ms(&mut [5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.n, s.median), (5, 3.0));
        assert!((s.p10 - 1.4).abs() < 1e-9 && (s.p90 - 4.6).abs() < 1e-9);
        assert!(Summary::of(&[]).is_none());
        let ms = Duration::from_millis;
        assert_eq!(
            median(&[ms(4), ms(1), ms(2), ms(3)]),
            Some(Duration::from_micros(2500))
        );
        assert_eq!(median(&[]), None);
    }
}
