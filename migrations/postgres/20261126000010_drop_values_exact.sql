-- Exact comparisons use scim_values_lookup (value_ci, which value determines) and recheck
-- value: one index entry less for every leaf a write stores (see store/scim_filter.rs).
DROP INDEX scim_values_exact;
