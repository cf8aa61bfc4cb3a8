-- Rafay's profile endpoints (compute and service) in the fact's shape, per day, tenant org,
-- profile and metric: the provider's own rollups of the instances in int_rafay__usage (the same
-- hours counted again), so they feed the rafay_profile_usage mart, never the facts.
select usage_date, provider, account_id, account_name, resource_type, resource_id, resource_name, metric, quantity, unit
from analytics.int_rafay__endpoint_usage
where resource_type in ('compute_profile', 'service_profile')
