-- build: whole
-- grain: provider, account_id, resource_type, resource_id
-- Every resource of fct_daily_usage, one row each: its name and what the provider's API says of
-- it (Rafay project and profile, Neon plan, ...), and the first and last day it had usage.
-- Join it to the facts on (provider, account_id, resource_type, resource_id) to group usage.
with

seen as (
    select
        provider,
        account_id,
        resource_type,
        resource_id,
        max(account_name) as account_name,
        max(resource_name) as resource_name,
        min(usage_date) as first_usage_date,
        max(usage_date) as last_usage_date
    from analytics.fct_daily_usage
    group by provider, account_id, resource_type, resource_id
),

attributes as (
    select * from analytics.int_resources
)

select
    cast(seen.provider as varchar) as provider,
    cast(seen.account_id as varchar) as account_id,
    cast(coalesce(attributes.account_name, seen.account_name) as varchar) as account_name,
    cast(seen.resource_type as varchar) as resource_type,
    cast(seen.resource_id as varchar) as resource_id,
    cast(coalesce(attributes.resource_name, seen.resource_name) as varchar) as resource_name,
    cast(attributes.project_id as varchar) as project_id,
    cast(attributes.project_name as varchar) as project_name,
    cast(attributes.profile_id as varchar) as profile_id,
    cast(attributes.profile_name as varchar) as profile_name,
    cast(attributes.plan as varchar) as plan,
    cast(seen.first_usage_date as date) as first_usage_date,
    cast(seen.last_usage_date as date) as last_usage_date
from seen
left join attributes
    on attributes.provider = seen.provider
    and attributes.account_id = seen.account_id
    and attributes.resource_type = seen.resource_type
    and attributes.resource_id = seen.resource_id
