//! Root cause attribution.
use sixpence_analytics::root_cause::{ChildDelta, UNATTRIBUTED, attribute};

fn child(key: &str, actual: f64, expected: f64) -> ChildDelta {
    ChildDelta {
        key: key.into(),
        actual,
        expected,
    }
}

#[test]
fn children_are_ranked_by_contribution_and_shares_add_up_to_one() {
    let rc = attribute(
        412.0,
        &[
            child("storage", 717.0, 1000.0),
            child("sql-01", 395.0, 200.0),
            child("vm-batch-07", 800.0, 300.0),
        ],
    );
    let keys: Vec<_> = rc.contributors.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["vm-batch-07", "sql-01"]);
    let total: f64 = rc.contributors.iter().map(|c| c.share).sum();
    assert!((total - 1.0).abs() < 1e-12);
    assert!((rc.contributors[0].share - 500.0 / 695.0).abs() < 1e-12);
    let attributed: f64 = rc.contributors.iter().map(|c| c.attributed).sum();
    assert!((attributed - 412.0).abs() < 1e-9);
    assert_eq!(rc.offsets.len(), 1);
    assert_eq!(rc.offsets[0].key, "storage");
    assert_eq!(
        rc.headline().as_deref(),
        Some("72 % of the +412.00 came from vm-batch-07")
    );
}

#[test]
fn impact_not_explained_by_the_loaded_children_is_unattributed() {
    let rc = attribute(100.0, &[child("a", 160.0, 100.0)]);
    assert_eq!(rc.contributors.len(), 2);
    assert_eq!(rc.contributors[0].key, "a");
    assert_eq!(rc.contributors[1].key, UNATTRIBUTED);
    assert!((rc.contributors[0].share - 0.6).abs() < 1e-12);
}

#[test]
fn a_drop_is_attributed_to_the_children_that_dropped() {
    let rc = attribute(
        -90.0,
        &[
            child("a", 10.0, 100.0),
            child("b", 110.0, 100.0),
            child("c", 90.0, 100.0),
        ],
    );
    assert_eq!(rc.contributors[0].key, "a");
    let total: f64 = rc.contributors.iter().map(|c| c.share).sum();
    assert!((total - 1.0).abs() < 1e-12);
    assert_eq!(rc.offsets[0].key, "b");
}

#[test]
fn no_children_and_non_finite_values_give_no_nan() {
    let rc = attribute(f64::NAN, &[child("x", f64::INFINITY, 1.0)]);
    assert!(rc.net_impact.is_finite());
    assert!(rc.contributors.iter().all(|c| c.share.is_finite()));
    assert!(attribute(0.0, &[]).contributors.is_empty());
}
