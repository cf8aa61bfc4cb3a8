-- Neon's projects as the facts hold them, one row each, with the plan of the latest billing
-- period the project had usage in; and, when the legacy account endpoint is on, the org itself
-- (resource_type 'account', as in int_neon__usage), whose plan is not read.
with

projects as (
    select
        account_id,
        project_id,
        plan,
        row_number() over (
            partition by account_id, project_id order by plan is null, usage_date desc, plan desc
        ) as recency
    from analytics.stg_neon__project_consumption
),

resources as (
    select account_id, 'project' as resource_type, project_id as resource_id, plan
    from projects
    where recency = 1
    union all
    select distinct account_id, 'account' as resource_type, account_id as resource_id, cast(null as varchar) as plan
    from analytics.stg_neon__account_consumption
)

select
    cast('neon' as varchar) as provider,
    cast(account_id as varchar) as account_id,
    cast(null as varchar) as account_name,
    cast(resource_type as varchar) as resource_type,
    cast(resource_id as varchar) as resource_id,
    cast(null as varchar) as resource_name,
    cast(null as varchar) as project_id,
    cast(null as varchar) as project_name,
    cast(null as varchar) as profile_id,
    cast(null as varchar) as profile_name,
    cast(plan as varchar) as plan
from resources
