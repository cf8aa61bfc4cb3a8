-- test: grain_unique
select usage_date, account_id, resource_type, resource_id, metric, count(*) as n
from analytics.rafay_profile_usage
group by usage_date, account_id, resource_type, resource_id, metric
having count(*) > 1

-- test: grain_not_null
select usage_date, account_id, resource_type, resource_id, metric
from analytics.rafay_profile_usage
where usage_date is null
   or account_id is null
   or resource_type is null
   or resource_id is null
   or metric is null

-- test: quantity_not_negative
select usage_date, provider, account_id, resource_id, metric, quantity
from analytics.rafay_profile_usage
where quantity is null or quantity < 0

-- test: quantity_finite
-- NaN compares equal to itself and above every number in DuckDB and in Postgres alike
select usage_date, provider, account_id, resource_id, metric, quantity
from analytics.rafay_profile_usage
where quantity = cast('NaN' as double precision)
   or quantity = cast('Infinity' as double precision)
   or quantity = cast('-Infinity' as double precision)

-- test: unit_present
select usage_date, provider, account_id, resource_id, metric
from analytics.rafay_profile_usage
where unit is null or unit = ''
