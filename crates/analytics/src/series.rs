//! Daily cost series: one value per calendar day, with an explicit meaning for a day without a row.

use serde::{Deserialize, Serialize};
use time::Date;

use crate::money;

/// What a calendar day without a value means.
///
/// The two sources of series disagree, so the caller has to say which one it has:
/// - the Cost Management Query API omits days on which a series cost nothing, so in the product a
///   missing day **is** zero spend ([`MissingDay::ZeroSpend`]); treating it as "unknown" would hide
///   removed cost (a resource group that stops costing simply stops appearing) and new cost;
/// - a CSV handed to the CLI (or a metric that is not a cost) marks a day with no data with an empty
///   value; that day is unknown ([`MissingDay::NoData`]) and is neither scored nor used as history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingDay {
    /// A missing day is a day on which the series cost exactly zero.
    ZeroSpend,
    /// A missing day has no data: skipped by the detector, neither normal nor anomalous.
    NoData,
}

/// A series of consecutive calendar days starting at `start`. `values[i]` is the value of day
/// `start + i`; `None` is a day with no data. Non-finite values never get in: constructors turn them
/// into `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailySeries {
    start: Date,
    values: Vec<Option<f64>>,
}

impl DailySeries {
    /// An empty series starting at `start`.
    pub fn empty(start: Date) -> Self {
        Self {
            start,
            values: Vec::new(),
        }
    }

    /// A series from consecutive daily values (`None` = no data; non-finite = no data).
    pub fn from_values(start: Date, values: Vec<Option<f64>>) -> Self {
        let values = values
            .into_iter()
            .map(|v| v.filter(|x| x.is_finite()))
            .collect();
        Self { start, values }
    }

    /// A series from `(date, amount)` points in any order. Several points on one day are summed
    /// (a day's cost arrives as several rows, one per charge type or meter); days between the first
    /// and last point without a point are filled according to `missing`. Non-finite amounts are
    /// ignored (a day whose only amounts are non-finite counts as missing).
    pub fn from_points(points: &[(Date, f64)], missing: MissingDay) -> Option<Self> {
        let first = points.iter().map(|p| p.0).min()?;
        let last = points.iter().map(|p| p.0).max()?;
        let len = usize::try_from((last - first).whole_days()).ok()? + 1;
        let mut days: Vec<Vec<f64>> = vec![Vec::new(); len];
        for &(d, v) in points {
            if v.is_finite()
                && let Ok(i) = usize::try_from((d - first).whole_days())
            {
                days[i].push(v);
            }
        }
        let fill = match missing {
            MissingDay::ZeroSpend => Some(0.0),
            MissingDay::NoData => None,
        };
        let values = days
            .into_iter()
            .map(|d| {
                if d.is_empty() {
                    fill
                } else {
                    Some(money::sum(d))
                }
            })
            .collect();
        Some(Self {
            start: first,
            values,
        })
    }

    /// First day of the series.
    pub fn start(&self) -> Date {
        self.start
    }

    /// Last day of the series (`None` when empty).
    pub fn end(&self) -> Option<Date> {
        let n = i64::try_from(self.values.len()).ok()?;
        if n == 0 {
            return None;
        }
        self.start.checked_add(time::Duration::days(n - 1))
    }

    /// Number of days covered.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when no day is covered.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Daily values, `None` for days with no data.
    pub fn values(&self) -> &[Option<f64>] {
        &self.values
    }

    /// Index of `date`, if the series covers it.
    pub fn index_of(&self, date: Date) -> Option<usize> {
        let i = usize::try_from((date - self.start).whole_days()).ok()?;
        (i < self.values.len()).then_some(i)
    }

    /// Date of index `i` (saturating at the calendar's end, which no real series reaches).
    pub fn date_at(&self, i: usize) -> Date {
        let days = i64::try_from(i).unwrap_or(i64::MAX);
        self.start
            .checked_add(time::Duration::days(days))
            .unwrap_or(Date::MAX)
    }

    /// Value on `date` (`None` when outside the series or no data).
    pub fn get(&self, date: Date) -> Option<f64> {
        self.index_of(date).and_then(|i| self.values[i])
    }

    /// Appends the next day's value (a nightly run adding yesterday).
    pub fn push(&mut self, value: Option<f64>) {
        self.values.push(value.filter(|v| v.is_finite()));
    }

    /// Replaces the value of a day already covered (a restatement). Returns false when `date` is not
    /// covered.
    pub fn restate(&mut self, date: Date, value: Option<f64>) -> bool {
        match self.index_of(date) {
            Some(i) => {
                self.values[i] = value.filter(|v| v.is_finite());
                true
            }
            None => false,
        }
    }

    /// Extends the series with `missing`-filled days so it ends on `date` (for a cost series whose
    /// last days had no rows, i.e. cost nothing). Does nothing if it already reaches `date`.
    pub fn extend_to(&mut self, date: Date, missing: MissingDay) {
        let Ok(target) = usize::try_from((date - self.start).whole_days()) else {
            return;
        };
        let fill = match missing {
            MissingDay::ZeroSpend => Some(0.0),
            MissingDay::NoData => None,
        };
        while self.values.len() <= target {
            self.values.push(fill);
        }
    }

    /// Compensated sum of the values on days `from..=to` that have data.
    pub fn sum_between(&self, from: Date, to: Date) -> f64 {
        money::sum(
            self.values
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    let d = self.date_at(*i);
                    d >= from && d <= to
                })
                .filter_map(|(_, v)| *v),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn points_are_summed_per_day_and_gaps_follow_the_policy() {
        let pts = [
            (date!(2025 - 01 - 03), 2.0),
            (date!(2025 - 01 - 01), 1.0),
            (date!(2025 - 01 - 01), 0.5),
        ];
        let zero = DailySeries::from_points(&pts, MissingDay::ZeroSpend).unwrap();
        assert_eq!(zero.values(), &[Some(1.5), Some(0.0), Some(2.0)]);
        let none = DailySeries::from_points(&pts, MissingDay::NoData).unwrap();
        assert_eq!(none.values(), &[Some(1.5), None, Some(2.0)]);
        assert_eq!(none.end(), Some(date!(2025 - 01 - 03)));
    }
}
