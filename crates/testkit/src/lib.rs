//! Test kit: operation programs for fuzzing, checked against models.
