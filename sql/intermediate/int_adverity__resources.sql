-- Adverity's datastreams (and each workspace's 'unattributed' usage) as the facts hold them, one
-- row each, with the workspace's latest name and the datastream's latest name should the API
-- ever send one (it does not today).
with

datastreams as (
    select
        account_id,
        datastream_key,
        datastream_name,
        row_number() over (
            partition by account_id, datastream_key order by datastream_name is null, usage_date desc, datastream_name desc
        ) as recency
    from analytics.stg_adverity__usage
),

workspaces as (
    select * from analytics.int_adverity__workspaces
)

select
    cast('adverity' as varchar) as provider,
    cast(datastreams.account_id as varchar) as account_id,
    cast(workspaces.account_name as varchar) as account_name,
    cast('datastream' as varchar) as resource_type,
    cast(datastreams.datastream_key as varchar) as resource_id,
    cast(datastreams.datastream_name as varchar) as resource_name,
    cast(null as varchar) as project_id,
    cast(null as varchar) as project_name,
    cast(null as varchar) as profile_id,
    cast(null as varchar) as profile_name,
    cast(null as varchar) as plan
from datastreams
left join workspaces
    on workspaces.account_id = datastreams.account_id
where datastreams.recency = 1
