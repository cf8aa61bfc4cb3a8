-- test: key_unique
select usage_date, resource_id, count(*) as n
from analytics.stg_rafay__service_instance_usage
group by usage_date, resource_id
having count(*) > 1

-- test: key_not_null
select usage_date, resource_id
from analytics.stg_rafay__service_instance_usage
where usage_date is null
   or resource_id is null
