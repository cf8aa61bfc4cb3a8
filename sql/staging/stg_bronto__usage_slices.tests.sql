-- test: key_unique
select usage_date, account_id, usage_type, slice_start, count(*) as n
from analytics.stg_bronto__usage_slices
group by usage_date, account_id, usage_type, slice_start
having count(*) > 1

-- test: key_not_null
select usage_date, account_id, usage_type, slice_start
from analytics.stg_bronto__usage_slices
where usage_date is null
   or account_id is null
   or usage_type is null
   or slice_start is null
