//! The online anomaly detector of one stream: a robust z-score against an exponentially
//! weighted baseline.
//!
//! Each sample `x` is compared with the moving baseline `m` (an EWMA of the samples) in units of
//! the moving spread `s` (1.2533 times an EWMA of the absolute deviations `|x - m|`, which is
//! the standard deviation for normal noise, and max'd with `min_deviation`):
//! `z = (x - m) / s`. Past the warm-up, `|z| > threshold` is an anomaly.
//!
//! What makes it robust: the deviation fed back into `m` and `s` is clipped to
//! `threshold * s` (a Huber step), so a spike moves the baseline no further than a sample at
//! the threshold would, and the readings after it are still judged against normal behaviour;
//! a lasting level shift is still followed, a bounded step at a time, until it is the new
//! normal. During the warm-up the weight is at least `1 / n`, so the baseline starts as the
//! plain mean of the first samples instead of creeping up from the first one. Memory and time
//! per sample are constant: four numbers, a few multiplications.

use crate::config::StreamConfig;

/// Standard deviation over mean absolute deviation for normal noise (sqrt(pi / 2)).
const MEAN_DEVIATION_TO_SIGMA: f64 = 1.253_314_137_315_500_3;

/// The detector's state; see the module documentation for the method.
#[derive(Debug, Clone)]
pub struct Detector {
    threshold: f64,
    warmup: u64,
    smoothing: f64,
    min_deviation: f64,
    baseline: f64,
    mean_deviation: f64,
    samples: u64,
}

/// How one sample scored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// The baseline and spread the sample was judged against (before it updated them).
    pub baseline: f64,
    pub spread: f64,
    /// `(x - baseline) / spread`; `None` during the warm-up.
    pub z: Option<f64>,
    pub anomaly: bool,
}

impl Detector {
    pub fn new(config: &StreamConfig) -> Self {
        Self {
            threshold: config.threshold,
            warmup: u64::from(config.warmup_samples),
            smoothing: config.smoothing,
            min_deviation: config.min_deviation,
            baseline: 0.0,
            mean_deviation: 0.0,
            samples: 0,
        }
    }

    /// Samples seen so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    pub fn warming_up(&self) -> bool {
        self.samples < self.warmup
    }

    /// Scores `x` and takes it into the baseline. A value that is not finite is not a
    /// reading: it is refused by the caller, never scored.
    pub fn observe(&mut self, x: f64) -> Score {
        if self.samples == 0 {
            self.baseline = x;
            self.samples = 1;
            return Score {
                baseline: x,
                spread: self.spread(),
                z: None,
                anomaly: false,
            };
        }
        let baseline = self.baseline;
        let spread = self.spread();
        let deviation = x - baseline;
        let scoring = !self.warming_up();
        let z = scoring.then_some(deviation / spread);
        let anomaly = z.is_some_and(|z| z.abs() > self.threshold);
        let limit = self.threshold * spread;
        let step = if scoring {
            deviation.clamp(-limit, limit)
        } else {
            deviation
        };
        // The plain mean while warming up, the configured weight after.
        let weight = if scoring {
            self.smoothing
        } else {
            self.smoothing.max(1.0 / (self.samples + 1) as f64)
        };
        self.baseline += weight * step;
        self.mean_deviation += weight * (step.abs() - self.mean_deviation);
        self.samples += 1;
        Score {
            baseline,
            spread,
            z,
            anomaly,
        }
    }

    /// The current spread: never below `min_deviation`, nor below a millionth of the baseline
    /// (so that a reading that never moved still has a finite score).
    pub fn spread(&self) -> f64 {
        (MEAN_DEVIATION_TO_SIGMA * self.mean_deviation)
            .max(self.min_deviation)
            .max(self.baseline.abs() * 1e-6)
            .max(f64::MIN_POSITIVE)
    }

    pub fn baseline(&self) -> Option<f64> {
        (self.samples > 0).then_some(self.baseline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(threshold: f64, warmup: u32) -> Detector {
        Detector::new(&StreamConfig {
            threshold,
            warmup_samples: warmup,
            smoothing: 0.05,
            ..StreamConfig::default()
        })
    }

    /// A deterministic noisy signal: `level` plus a sawtooth of amplitude 0.5.
    fn noisy(level: f64, i: u32) -> f64 {
        level + f64::from(i % 7) / 6.0 - 0.5
    }

    #[test]
    fn noise_is_not_an_anomaly_and_a_spike_is() {
        let mut d = detector(5.0, 20);
        for i in 0..200 {
            let score = d.observe(noisy(50.0, i));
            assert!(!score.anomaly, "sample {i} of plain noise: {score:?}");
        }
        let spike = d.observe(58.0);
        assert!(spike.anomaly, "{spike:?}");
        assert!(spike.z.unwrap() > 5.0);
        let low = d.observe(42.0);
        assert!(low.anomaly && low.z.unwrap() < -5.0, "{low:?}");
    }

    #[test]
    fn a_spike_barely_moves_the_baseline() {
        let mut d = detector(5.0, 20);
        for i in 0..200 {
            d.observe(noisy(50.0, i));
        }
        let before = d.baseline().unwrap();
        d.observe(500.0);
        let after = d.baseline().unwrap();
        assert!(
            (after - before).abs() < 0.5,
            "a spike ten times the level moved the baseline from {before} to {after}"
        );
        let next = d.observe(noisy(50.0, 3));
        assert!(!next.anomaly, "normal reading after a spike: {next:?}");
    }

    #[test]
    fn a_lasting_level_shift_becomes_the_new_normal() {
        let mut d = detector(5.0, 20);
        for i in 0..200 {
            d.observe(noisy(50.0, i));
        }
        let anomalies = (0..400)
            .map(|i| d.observe(noisy(60.0, i)))
            .take_while(|s| s.anomaly)
            .count();
        assert!(anomalies >= 1, "the shift itself is an anomaly");
        assert!(anomalies < 100, "still anomalous after {anomalies} samples");
        let settled = (0..50)
            .map(|i| d.observe(noisy(60.0, i)))
            .all(|s| !s.anomaly);
        assert!(settled, "the new level is normal once followed");
    }

    #[test]
    fn nothing_is_scored_during_the_warmup() {
        let mut d = detector(5.0, 10);
        for i in 0..9 {
            let score = d.observe(if i == 5 { 1e6 } else { 1.0 });
            assert_eq!(score.z, None, "sample {i}");
            assert!(!score.anomaly);
        }
        assert!(d.warming_up());
        d.observe(1.0);
        assert!(!d.warming_up());
    }

    #[test]
    fn a_reading_that_never_moved_scores_finite() {
        let mut d = detector(5.0, 5);
        for _ in 0..20 {
            let score = d.observe(42.0);
            assert!(!score.anomaly);
            assert!(score.z.unwrap_or(0.0).is_finite());
        }
        let step = d.observe(43.0);
        assert!(step.anomaly && step.z.unwrap().is_finite(), "{step:?}");
    }

    #[test]
    fn min_deviation_keeps_one_resolution_step_normal() {
        let mut d = Detector::new(&StreamConfig {
            threshold: 5.0,
            warmup_samples: 5,
            min_deviation: 0.5,
            ..StreamConfig::default()
        });
        for _ in 0..20 {
            d.observe(42.0);
        }
        assert!(!d.observe(42.5).anomaly);
        assert!(d.observe(46.0).anomaly);
    }
}
