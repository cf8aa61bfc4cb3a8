-- test: key_unique
select usage_date, account_id, resource_id, parameter_name, count(*) as n
from analytics.stg_rafay__compute_profile_usage_parameters
group by usage_date, account_id, resource_id, parameter_name
having count(*) > 1

-- test: key_not_null
select usage_date, account_id, resource_id, parameter_name
from analytics.stg_rafay__compute_profile_usage_parameters
where usage_date is null
   or account_id is null
   or resource_id is null
   or parameter_name is null
