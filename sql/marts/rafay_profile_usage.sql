-- Rafay's profile endpoints, per day x tenant org x profile x metric: the provider's own daily
-- rollups of its instances (which are in fct_daily_usage). Never add these to the facts: the
-- check rafay_profiles_match_their_instances compares each with the sum of its instances.
-- grain: usage_date, account_id, resource_type, resource_id, metric
select usage_date, provider, account_id, account_name, resource_type, resource_id, resource_name, metric, quantity, unit
from analytics.int_rafay__profile_usage
