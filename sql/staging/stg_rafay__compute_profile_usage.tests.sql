-- test: key_unique
select usage_date, account_id, resource_id, count(*) as n
from analytics.stg_rafay__compute_profile_usage
group by usage_date, account_id, resource_id
having count(*) > 1

-- test: key_not_null
select usage_date, account_id, resource_id
from analytics.stg_rafay__compute_profile_usage
where usage_date is null
   or account_id is null
   or resource_id is null
