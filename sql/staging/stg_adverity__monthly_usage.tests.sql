-- test: key_unique
select usage_month, account_id, datastream_key, count(*) as n
from analytics.stg_adverity__monthly_usage
group by usage_month, account_id, datastream_key
having count(*) > 1

-- test: key_not_null
select usage_month, account_id, datastream_key
from analytics.stg_adverity__monthly_usage
where usage_month is null
   or account_id is null
   or datastream_key is null

-- test: rows_not_negative
select usage_month, account_id, datastream_key, unique_rows, total_rows
from analytics.stg_adverity__monthly_usage
where unique_rows is null
   or total_rows is null
   or unique_rows < 0
   or total_rows < 0

-- test: through_date_in_its_month
select usage_month, account_id, datastream_key, through_date
from analytics.stg_adverity__monthly_usage
where through_date is null
   or through_date < usage_month
   or through_date >= usage_month + interval '1 month'
