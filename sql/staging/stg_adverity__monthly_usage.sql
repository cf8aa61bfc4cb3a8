-- Adverity's own monthly row usage, one row per month x workspace x datastream: unique rows are
-- counted per month, so a month is not the sum of its days. `through_date` is the last day the
-- figure covers (the month's last day, or yesterday for the current month, month to date).
with

source as (
    select * from raw_adverity.monthly_usage
),

renamed as (
    select
        cast(usage_month as date) as usage_month,
        cast(workspace_id as varchar) as account_id,
        cast(workspace_name as varchar) as account_name,
        cast(datastream_id as varchar) as datastream_id,
        cast(datastream_key as varchar) as datastream_key,
        cast(unique_rows as bigint) as unique_rows,
        cast(total_rows as bigint) as total_rows,
        cast(through_date as date) as through_date
    from source
)

select * from renamed
