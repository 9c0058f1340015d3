//! Root cause: which child series (resource groups, services, meters, resources) made a parent
//! series' anomaly.
//!
//! # Shares
//! Each child's delta is `actual − expected` on the anomalous day (or summed over an episode). The
//! parent's net impact is explained by the children moving **in the same direction** as it:
//! `share = |delta| / Σ|same-direction deltas|`, so the shares add up to exactly 100 % and each
//! child is credited `share × net impact`. Children moving the other way did not cause the anomaly,
//! they dampened it; they are listed separately as offsets with their own delta (and their share of
//! the total offset). So with `+£500` on `vm-batch-07`, `+£195` on `sql-01` and `−£283` on `storage`,
//! the net `+£412` is reported as 72 % from `vm-batch-07` (`+£296`), 28 % from `sql-01`, partly
//! offset by `storage` (`−£283`). Crediting raw deltas against the net instead would give
//! `vm-batch-07` 121 %, which no one can read.
//!
//! If the children do not cover the whole parent (only the top N were loaded), the part of the parent
//! impact they do not explain is added as an [`UNATTRIBUTED`] pseudo-child, so shares still add up.

use serde::{Deserialize, Serialize};

use crate::money;

/// Key of the pseudo-child holding the impact no loaded child explains.
pub const UNATTRIBUTED: &str = "(unattributed)";

/// A child series' values on the anomalous day(s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildDelta {
    /// Child key (resource group, service, meter or resource id).
    pub key: String,
    /// Observed spend.
    pub actual: f64,
    /// Expected spend (from the detector's baseline of the child series, or its recent median).
    pub expected: f64,
}

/// One ranked contributor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// Child key.
    pub key: String,
    /// `actual − expected` of the child.
    pub delta: f64,
    /// Fraction (0..=1) of the parent's net impact attributed to this child.
    pub share: f64,
    /// `share × net impact`.
    pub attributed: f64,
}

/// One child moving against the parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offset {
    /// Child key.
    pub key: String,
    /// `actual − expected` of the child (opposite sign to the parent impact).
    pub delta: f64,
    /// Fraction (0..=1) of the total offset.
    pub share: f64,
}

/// Attribution of a parent anomaly to its children.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootCause {
    /// Net impact explained (the parent impact).
    pub net_impact: f64,
    /// Children moving with the parent, largest first; shares add up to 1.
    pub contributors: Vec<Contribution>,
    /// Children moving against the parent, largest first.
    pub offsets: Vec<Offset>,
}

impl RootCause {
    /// A one-line explanation, e.g. `72 % of the +412.00 came from vm-batch-07`.
    pub fn headline(&self) -> Option<String> {
        let top = self.contributors.first()?;
        Some(format!(
            "{:.0} % of the {:+.2} came from {}",
            top.share * 100.0,
            self.net_impact,
            top.key
        ))
    }
}

/// Ranks `children` by their contribution to `parent_impact` (see the module docs). Children with a
/// zero delta are dropped; ties are broken by key so the output is deterministic.
pub fn attribute(parent_impact: f64, children: &[ChildDelta]) -> RootCause {
    let net = money::finite(parent_impact);
    let mut deltas: Vec<(String, f64)> = children
        .iter()
        .filter(|c| c.actual.is_finite() && c.expected.is_finite())
        .map(|c| (c.key.clone(), money::finite(c.actual - c.expected)))
        .filter(|(_, d)| *d != 0.0)
        .collect();
    let explained = money::sum(deltas.iter().map(|d| d.1));
    let rest = money::finite(net - explained);
    // Ignore a rounding-sized remainder.
    if rest.abs() > 1e-9 * net.abs().max(1.0) {
        deltas.push((UNATTRIBUTED.to_string(), rest));
    }
    let sign = if net >= 0.0 { 1.0 } else { -1.0 };
    let mut with: Vec<(String, f64)> = deltas
        .iter()
        .filter(|d| d.1 * sign > 0.0)
        .cloned()
        .collect();
    let mut against: Vec<(String, f64)> = deltas
        .iter()
        .filter(|d| d.1 * sign < 0.0)
        .cloned()
        .collect();
    let by_size = |a: &(String, f64), b: &(String, f64)| {
        b.1.abs().total_cmp(&a.1.abs()).then_with(|| a.0.cmp(&b.0))
    };
    with.sort_by(by_size);
    against.sort_by(by_size);
    let contributors = shares(&with)
        .into_iter()
        .zip(with)
        .map(|(share, (key, delta))| Contribution {
            key,
            delta,
            share,
            attributed: money::finite(share * net),
        })
        .collect();
    let offsets = shares(&against)
        .into_iter()
        .zip(against)
        .map(|(share, (key, delta))| Offset { key, delta, share })
        .collect();
    RootCause {
        net_impact: net,
        contributors,
        offsets,
    }
}

/// `|delta| / Σ|delta|` for each entry, computed on deltas scaled by the largest one so that even
/// amounts near `f64::MAX` cannot overflow the sum.
fn shares(deltas: &[(String, f64)]) -> Vec<f64> {
    let largest = deltas.iter().map(|d| d.1.abs()).fold(0.0, f64::max);
    if largest <= 0.0 || !largest.is_finite() {
        return vec![0.0; deltas.len()];
    }
    let scaled: Vec<f64> = deltas.iter().map(|d| d.1.abs() / largest).collect();
    let total = money::sum(scaled.iter().copied());
    scaled.into_iter().map(|x| x / total).collect()
}
