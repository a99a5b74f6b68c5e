//! (placeholder: this rule is being written; it reports nothing yet)

use super::{Finding, RuleInput};

pub fn check(_input: &RuleInput<'_>) -> Vec<Finding> {
    Vec::new()
}
