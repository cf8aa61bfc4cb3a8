-- test: grain_unique
select usage_month, account_id, resource_id, metric, count(*) as n
from analytics.adverity_monthly_usage
group by usage_month, account_id, resource_id, metric
having count(*) > 1

-- test: grain_not_null
select usage_month, account_id, resource_id, metric
from analytics.adverity_monthly_usage
where usage_month is null
   or account_id is null
   or resource_id is null
   or metric is null

-- test: quantity_not_negative
select usage_month, account_id, resource_id, metric, quantity
from analytics.adverity_monthly_usage
where quantity is null or quantity < 0

-- test: through_date_in_its_month
select usage_month, account_id, resource_id, metric, through_date
from analytics.adverity_monthly_usage
where through_date is null
   or through_date < usage_month
   or extract(month from through_date) <> extract(month from usage_month)
   or extract(year from through_date) <> extract(year from usage_month)
