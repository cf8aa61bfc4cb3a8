-- Rafay's leaves in the fact's shape: its instances (compute and service), per day, instance
-- and metric. The profile endpoints' rollups of them are int_rafay__profile_usage.
select usage_date, provider, account_id, account_name, resource_type, resource_id, resource_name, metric, quantity, unit
from analytics.int_rafay__endpoint_usage
where resource_type in ('compute_instance', 'service_instance')
