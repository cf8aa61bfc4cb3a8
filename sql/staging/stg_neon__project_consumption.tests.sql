-- test: key_unique
select usage_date, account_id, project_id, metric, count(*) as n
from analytics.stg_neon__project_consumption
group by usage_date, account_id, project_id, metric
having count(*) > 1

-- test: key_not_null
select usage_date, account_id, project_id, metric
from analytics.stg_neon__project_consumption
where usage_date is null
   or account_id is null
   or project_id is null
   or metric is null
