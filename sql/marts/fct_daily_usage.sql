-- One row per day x provider x account x resource x metric: the table analysts use.
-- Built by provider and day range by the model runner (delete + insert of those days in one
-- transaction). Every intermediate model below gives the same ten columns in this order.
with

neon as (
    select * from analytics.int_neon__usage
),

adverity as (
    select * from analytics.int_adverity__usage
),

rafay as (
    select * from analytics.int_rafay__usage
),

bronto as (
    select * from analytics.int_bronto__usage
),

unioned as (
    select * from neon
    union all
    select * from adverity
    union all
    select * from rafay
    union all
    select * from bronto
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
