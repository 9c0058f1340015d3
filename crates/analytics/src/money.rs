//! Careful arithmetic on money amounts.
//!
//! Costs cross the engine boundary as `f64` in the billing currency. An `f64` holds 15–16 significant
//! digits, so a single daily amount up to 10^12 is exact to well below a penny; the risk is in long
//! sums, where naive accumulation loses the small terms next to large ones. Every total the engine
//! reports (episode impact, period actuals, forecasts, budget spend) therefore goes through
//! [`sum`], a Neumaier-compensated sum whose error does not grow with the number of terms. Inputs that
//! are not finite are treated as missing (skipped), and outputs are passed through [`finite`] so the
//! engine never hands NaN or infinity to a storage layer or a message.

/// Compensated (Neumaier) sum of the finite values in `values`; non-finite values are skipped.
pub fn sum<I: IntoIterator<Item = f64>>(values: I) -> f64 {
    let mut total = 0.0_f64;
    let mut compensation = 0.0_f64;
    for v in values {
        if !v.is_finite() {
            continue;
        }
        let t = total + v;
        if t.is_finite() {
            if total.abs() >= v.abs() {
                compensation += (total - t) + v;
            } else {
                compensation += (v - t) + total;
            }
            total = t;
        } else {
            // Overflow of the running total: saturate instead of producing infinity.
            return if t > 0.0 { f64::MAX } else { f64::MIN };
        }
    }
    finite(total + compensation)
}

/// `value` if finite, otherwise `0.0` (NaN) or the largest finite value of the same sign (±inf).
pub fn finite(value: f64) -> f64 {
    if value.is_finite() {
        value
    } else if value.is_nan() {
        0.0
    } else if value > 0.0 {
        f64::MAX
    } else {
        f64::MIN
    }
}

/// `numerator / denominator * 100` when the denominator is meaningfully non-zero, else `None`
/// (a percentage of nothing is undefined, not infinite).
pub fn percent(numerator: f64, denominator: f64) -> Option<f64> {
    if denominator.abs() <= f64::EPSILON || !numerator.is_finite() || !denominator.is_finite() {
        return None;
    }
    let p = numerator / denominator.abs() * 100.0;
    p.is_finite().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compensated_sum_keeps_pennies_next_to_large_amounts() {
        let mut v = vec![1e12];
        v.extend(std::iter::repeat_n(0.01, 1000));
        v.push(-1e12);
        assert!((sum(v) - 10.0).abs() < 1e-6);
    }

    #[test]
    fn sum_skips_non_finite_and_saturates() {
        assert_eq!(sum([1.0, f64::NAN, 2.0, f64::INFINITY]), 3.0);
        assert!(sum([f64::MAX, f64::MAX]).is_finite());
    }

    #[test]
    fn percent_of_zero_is_undefined() {
        assert_eq!(percent(5.0, 0.0), None);
        assert_eq!(percent(5.0, -10.0), Some(50.0));
    }
}
