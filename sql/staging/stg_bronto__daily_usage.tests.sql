-- test: key_unique
select usage_date, account_id, usage_type, resource_type, resource_id, slice_start, count(*) as n
from analytics.stg_bronto__daily_usage
group by usage_date, account_id, usage_type, resource_type, resource_id, slice_start
having count(*) > 1

-- test: key_not_null
select usage_date, account_id, usage_type, resource_type, resource_id, slice_start
from analytics.stg_bronto__daily_usage
where usage_date is null
   or account_id is null
   or usage_type is null
   or resource_type is null
   or resource_id is null
   or slice_start is null

-- test: resource_type_accepted
select resource_type
from analytics.stg_bronto__daily_usage
where resource_type not in ('log', 'organization')
