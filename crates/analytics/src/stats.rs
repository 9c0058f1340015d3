//! Small robust statistics used by the detector and the forecaster.
//!
//! Everything here works on finite `f64` values only (callers drop non-finite values before they get
//! here) and returns `0.0` rather than NaN for empty inputs, so nothing downstream has to guard NaN.

/// Consistency constant that turns a median absolute deviation into a standard deviation estimate
/// for normally distributed data.
pub(crate) const MAD_TO_SD: f64 = 1.4826;

/// Median of `values`, reordering them in place (selection, O(n)). `0.0` for an empty slice.
pub(crate) fn median_in_place(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    let mid = n / 2;
    if n <= 16 {
        // Small windows (the detector's 7-day medians) are far cheaper to sort outright than to
        // partition.
        for i in 1..n {
            let mut j = i;
            while j > 0 && values[j - 1].total_cmp(&values[j]).is_gt() {
                values.swap(j - 1, j);
                j -= 1;
            }
        }
        return if n % 2 == 1 {
            values[mid]
        } else {
            0.5 * values[mid - 1] + 0.5 * values[mid]
        };
    }
    let (lower, upper_mid, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper_mid;
    if n % 2 == 1 {
        upper
    } else {
        // The lower middle is the largest element of the left partition.
        let lower_mid = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * lower_mid + 0.5 * upper
    }
}

/// Median of a copy of `values` (uses `scratch` to avoid an allocation per call).
pub(crate) fn median_with(values: &[f64], scratch: &mut Vec<f64>) -> f64 {
    scratch.clear();
    scratch.extend_from_slice(values);
    median_in_place(scratch)
}

/// Median of `|v|` over `values`, times [`MAD_TO_SD`]: a robust spread estimate around zero.
pub(crate) fn robust_sd_around_zero(values: &[f64], scratch: &mut Vec<f64>) -> f64 {
    scratch.clear();
    scratch.extend(values.iter().map(|v| v.abs()));
    MAD_TO_SD * median_in_place(scratch)
}

/// Median absolute deviation from the median, times [`MAD_TO_SD`].
pub(crate) fn robust_sd(values: &[f64], scratch: &mut Vec<f64>) -> f64 {
    let m = median_with(values, scratch);
    scratch.clear();
    scratch.extend(values.iter().map(|v| (v - m).abs()));
    MAD_TO_SD * median_in_place(scratch)
}

/// Theil–Sen slope of points `(x, y)`: the median of all pairwise slopes. Breakdown point ~29 %, so a
/// few spikes inside the window do not tilt it. `0.0` with fewer than two distinct x.
pub(crate) fn theil_sen(points: &[(f64, f64)], scratch: &mut Vec<f64>) -> f64 {
    scratch.clear();
    for (i, &(xi, yi)) in points.iter().enumerate() {
        for &(xj, yj) in &points[i + 1..] {
            let dx = xj - xi;
            if dx != 0.0 {
                scratch.push((yj - yi) / dx);
            }
        }
    }
    median_in_place(scratch)
}

/// Mann–Kendall trend statistic as a standard normal score (continuity corrected, no tie correction:
/// ties only make the test more conservative). Positive for an upward trend. Points must be in time
/// order.
pub(crate) fn mann_kendall_z(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 3 {
        return 0.0;
    }
    let mut s: i64 = 0;
    for i in 0..n {
        for j in i + 1..n {
            s += match values[j].partial_cmp(&values[i]) {
                Some(std::cmp::Ordering::Greater) => 1,
                Some(std::cmp::Ordering::Less) => -1,
                _ => 0,
            };
        }
    }
    let nf = n as f64;
    let var = nf * (nf - 1.0) * (2.0 * nf + 5.0) / 18.0;
    let s = s as f64;
    let corrected = if s > 0.0 {
        s - 1.0
    } else if s < 0.0 {
        s + 1.0
    } else {
        0.0
    };
    corrected / var.sqrt()
}

/// Fraction of the largest |values| left out by [`trimmed_rms_sd`].
const TRIM: f64 = 0.2;

/// `1 / sqrt(E[Z² | |Z| < z₀.₉])` for a standard normal `Z` and `z₀.₉ = 1.2816` (the central 80 %):
/// makes the trimmed RMS a consistent estimate of the standard deviation.
const TRIMMED_RMS_CONSISTENCY: f64 = 1.5115;

/// Standard deviation estimate (around zero) from the root mean square of the values after leaving
/// out the largest 20 % of |values|, made consistent for normal data. Robust to up to 20 % of
/// anomalous values, and far less noisy than the MAD on the few dozen values a detector has (the MAD
/// uses one order statistic and has 37 % efficiency, so with 20 values its estimate is routinely 30 %
/// off, which turns a 3.5σ threshold into a 2.5σ one).
pub(crate) fn trimmed_rms_sd(values: &[f64], scratch: &mut Vec<f64>) -> f64 {
    scratch.clear();
    scratch.extend(values.iter().map(|v| v * v));
    let n = scratch.len();
    if n == 0 {
        return 0.0;
    }
    let keep = (((1.0 - TRIM) * n as f64).round() as usize).clamp(1, n);
    if keep < n {
        scratch.select_nth_unstable_by(keep - 1, f64::total_cmp);
    }
    let mean_sq = crate::money::sum(scratch[..keep].iter().copied()) / keep as f64;
    TRIMMED_RMS_CONSISTENCY * mean_sq.sqrt()
}

/// Two-sided Student-t quantile with `df` degrees of freedom matching the standard normal quantile
/// `z` (same tail probability), by the Cornish–Fisher expansion (Abramowitz & Stegun 26.7.5).
/// Accurate to a few percent for `df ≥ 4`; `df` is clamped there.
pub(crate) fn t_quantile_from_z(z: f64, df: f64) -> f64 {
    let v = df.max(4.0);
    let z2 = z * z;
    let z3 = z2 * z;
    let z5 = z3 * z2;
    let z7 = z5 * z2;
    let z9 = z7 * z2;
    let g1 = (z3 + z) / 4.0;
    let g2 = (5.0 * z5 + 16.0 * z3 + 3.0 * z) / 96.0;
    let g3 = (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / 384.0;
    let g4 = (79.0 * z9 + 776.0 * z7 + 1482.0 * z5 - 1920.0 * z3 - 945.0 * z) / 92160.0;
    z + g1 / v + g2 / (v * v) + g3 / (v * v * v) + g4 / (v * v * v * v)
}

/// Lag-1 autocorrelation of `values` (time order); `0.0` when undefined.
pub(crate) fn lag1_autocorrelation(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 3 {
        return 0.0;
    }
    let mean = crate::money::sum(values.iter().copied()) / n as f64;
    let var = crate::money::sum(values.iter().map(|v| (v - mean) * (v - mean)));
    if var <= 0.0 || !var.is_finite() {
        return 0.0;
    }
    let cov = crate::money::sum(values.windows(2).map(|w| (w[0] - mean) * (w[1] - mean)));
    let r = cov / var;
    if r.is_finite() { r } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_lengths() {
        assert_eq!(median_in_place(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median_in_place(&mut []), 0.0);
    }

    #[test]
    fn small_and_large_medians_agree_with_sorting() {
        for n in 1..40 {
            let v: Vec<f64> = (0..n).map(|i| ((i * 7919) % 31) as f64 - 10.0).collect();
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            let expect = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                0.5 * sorted[n / 2 - 1] + 0.5 * sorted[n / 2]
            };
            let mut w = v.clone();
            assert_eq!(median_in_place(&mut w), expect, "n = {n}");
        }
    }

    #[test]
    fn theil_sen_ignores_one_outlier() {
        let mut pts: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, 2.0 * i as f64)).collect();
        pts[10].1 = 1000.0;
        let mut s = Vec::new();
        assert!((theil_sen(&pts, &mut s) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn mann_kendall_sees_a_monotone_series() {
        let v: Vec<f64> = (0..28).map(|i| i as f64).collect();
        assert!(mann_kendall_z(&v) > 5.0);
        let flat = vec![1.0; 28];
        assert_eq!(mann_kendall_z(&flat), 0.0);
    }
}
