-- test: key_unique
select usage_date, resource_id, parameter_name, count(*) as n
from analytics.stg_rafay__service_instance_usage_parameters
group by usage_date, resource_id, parameter_name
having count(*) > 1

-- test: key_not_null
select usage_date, resource_id, parameter_name
from analytics.stg_rafay__service_instance_usage_parameters
where usage_date is null
   or resource_id is null
   or parameter_name is null
