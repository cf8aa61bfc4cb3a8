-- Adverity's daily row usage, one row per day x workspace x datastream. `datastream_key` is the
-- datastream id, or 'unattributed' for usage the API charges to no datastream (id null).
-- `datastream_name` stays null until the API sends one.
with

source as (
    select * from raw_adverity.usage
),

renamed as (
    select
        cast(usage_date as date) as usage_date,
        cast(workspace_id as varchar) as account_id,
        cast(workspace_name as varchar) as account_name,
        cast(datastream_id as varchar) as datastream_id,
        cast(datastream_key as varchar) as datastream_key,
        cast(datastream_name as varchar) as datastream_name,
        cast(unique_rows as bigint) as unique_rows,
        cast(total_rows as bigint) as total_rows
    from source
)

select * from renamed
