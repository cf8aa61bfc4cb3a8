-- One row per day x provider x account x resource x metric: the table analysts use. Leaf usage
-- only: summing `quantity` over any set of its rows for one metric counts nothing twice.
-- grain: usage_date, provider, account_id, resource_type, resource_id, metric
-- Built by provider and day range by the model runner (delete + insert of those days in one
-- transaction). Every provider's intermediate usage model gives the same ten columns in this order.
with

unioned as (
    -- every provider's int_<provider>__usage, unioned by the model runner (analytics.int_usage)
    select * from analytics.int_usage
)

select
    cast(usage_date as date) as usage_date,
    cast(provider as varchar) as provider,
    cast(account_id as varchar) as account_id,
    cast(account_name as varchar) as account_name,
    cast(resource_type as varchar) as resource_type,
    cast(resource_id as varchar) as resource_id,
    cast(resource_name as varchar) as resource_name,
    cast(metric as varchar) as metric,
    cast(quantity as double precision) as quantity,
    cast(unit as varchar) as unit
from unioned
