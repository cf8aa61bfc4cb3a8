-- Adverity's workspaces, one row each, with the latest name the API gave it: a usage row can
-- come without one, and a workspace can be renamed.
with

ranked as (
    select
        account_id,
        account_name,
        row_number() over (
            partition by account_id order by account_name is null, usage_date desc, account_name desc
        ) as recency
    from analytics.stg_adverity__usage
)

select
    cast(account_id as varchar) as account_id,
    cast(account_name as varchar) as account_name
from ranked
where recency = 1
