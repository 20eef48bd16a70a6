//! A fixed-size latency histogram: percentiles of millions of durations in 15 KiB, so a
//! benchmark's memory does not grow with its length.
//!
//! Log-linear buckets over microseconds, as HdrHistogram lays them out: exact below 64 µs,
//! then 32 buckets per power of two, so a reported percentile is within about 3 % of the true
//! one. The maximum is kept exactly.

use std::time::Duration;

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values below this get a bucket each.
const LINEAR: u64 = 2 << SUB_BITS;
/// Enough buckets for any `u64` of microseconds.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// Durations counted by magnitude.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: Duration,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: Duration::ZERO,
        }
    }
}

impl Histogram {
    /// Counts one duration.
    pub fn record(&mut self, value: Duration) {
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.counts[index(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    /// How many durations were counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The longest duration counted, exactly.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The duration below or at which a share `q` (in `[0, 1]`) of the counted ones lie: the
    /// middle of the bucket holding the one at rank `ceil(q × count)`, never above the maximum;
    /// the maximum itself for the last rank. Zero when nothing was counted.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        if rank >= self.total {
            return self.max;
        }
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_micros(middle(bucket)).min(self.max);
            }
        }
        self.max
    }
}

fn index(micros: u64) -> usize {
    if micros < LINEAR {
        return micros as usize;
    }
    let exponent = 63 - micros.leading_zeros() - SUB_BITS;
    let mantissa = micros >> exponent;
    exponent as usize * SUB + mantissa as usize
}

/// The middle of a bucket's range, in microseconds.
fn middle(bucket: usize) -> u64 {
    if (bucket as u64) < LINEAR {
        return bucket as u64;
    }
    let exponent = (bucket / SUB - 1) as u32;
    let mantissa = (bucket % SUB + SUB) as u64;
    let low = mantissa << exponent;
    low + (1u64 << exponent) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        let mut previous = 0;
        for micros in (0..100_000).chain([u64::MAX / 2, u64::MAX]) {
            let bucket = index(micros);
            assert!(bucket >= previous && bucket <= previous + 1 || micros > 100_000);
            assert!(bucket < BUCKETS);
            previous = bucket;
        }
    }

    #[test]
    fn quantiles_are_within_three_percent() {
        let mut histogram = Histogram::default();
        for micros in 1..=100_000u64 {
            histogram.record(Duration::from_micros(micros));
        }
        for (q, exact) in [(0.5, 50_000.0), (0.9, 90_000.0), (0.99, 99_000.0)] {
            let got = histogram.quantile(q).as_micros() as f64;
            assert!((got - exact).abs() / exact < 0.03, "q{q}: {got} vs {exact}");
        }
        assert_eq!(histogram.max(), Duration::from_micros(100_000));
        assert_eq!(histogram.quantile(1.0), Duration::from_micros(100_000));
        assert_eq!(histogram.count(), 100_000);
    }

    #[test]
    fn small_values_are_exact_and_empty_is_zero() {
        let mut histogram = Histogram::default();
        assert_eq!(histogram.quantile(0.5), Duration::ZERO);
        for micros in [3, 3, 3, 40] {
            histogram.record(Duration::from_micros(micros));
        }
        assert_eq!(histogram.quantile(0.5), Duration::from_micros(3));
        assert_eq!(histogram.quantile(0.99), Duration::from_micros(40));
    }
}
