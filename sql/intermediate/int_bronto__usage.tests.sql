-- test: grain_unique
select usage_date, provider, account_id, resource_type, resource_id, metric, count(*) as n
from analytics.int_bronto__usage
group by usage_date, provider, account_id, resource_type, resource_id, metric
having count(*) > 1

-- test: grain_not_null
select usage_date, provider, account_id, resource_type, resource_id, metric
from analytics.int_bronto__usage
where usage_date is null
   or provider is null
   or account_id is null
   or resource_type is null
   or resource_id is null
   or metric is null

-- test: one_level_per_day
select usage_date, account_id, metric
from analytics.int_bronto__usage
group by usage_date, account_id, metric
having min(resource_type) <> max(resource_type)
