-- test: key_unique
select usage_date, account_id, datastream_key, count(*) as n
from analytics.stg_adverity__usage
group by usage_date, account_id, datastream_key
having count(*) > 1

-- test: key_not_null
select usage_date, account_id, datastream_key
from analytics.stg_adverity__usage
where usage_date is null
   or account_id is null
   or datastream_key is null
