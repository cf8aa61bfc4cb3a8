-- Bronto's resources in the facts, one row each: its logs with their names (the latest day's
-- that has one, should a log be renamed), and the organization where a day was loaded as a whole.
with

usage as (
    select * from analytics.int_bronto__usage
),

ranked as (
    select
        account_id,
        resource_type,
        resource_id,
        resource_name,
        row_number() over (
            partition by account_id, resource_type, resource_id
            order by case when resource_name is null then 1 else 0 end, usage_date desc, resource_name
        ) as recency
    from usage
)

select
    cast('bronto' as varchar) as provider,
    cast(account_id as varchar) as account_id,
    cast(null as varchar) as account_name,
    cast(resource_type as varchar) as resource_type,
    cast(resource_id as varchar) as resource_id,
    cast(resource_name as varchar) as resource_name,
    cast(null as varchar) as project_id,
    cast(null as varchar) as project_name,
    cast(null as varchar) as profile_id,
    cast(null as varchar) as profile_name,
    cast(null as varchar) as plan
from ranked
where recency = 1
