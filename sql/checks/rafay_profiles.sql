-- check: rafay_profiles_match_their_instances
-- a Rafay profile's figure for a day and metric differs from the sum of its instances' beyond rounding
-- Each instance's raw usage comes rounded to 6 decimals and a profile's is the rounded sum, so
-- rounding alone moves a figure by under 1e-6 hours times the parameter's label value (at most a
-- few hundred): a difference of over 0.001 plus a millionth of the figure is not rounding.
with

instances as (
    select
        facts.usage_date,
        facts.account_id,
        case facts.resource_type when 'compute_instance' then 'compute_profile' else 'service_profile' end as resource_type,
        resources.profile_id,
        facts.metric,
        sum(facts.quantity) as instances_quantity
    from analytics.fct_daily_usage as facts
    join analytics.dim_resource as resources
        on resources.provider = facts.provider
        and resources.account_id = facts.account_id
        and resources.resource_type = facts.resource_type
        and resources.resource_id = facts.resource_id
    where facts.provider = 'rafay'
    group by facts.usage_date, facts.account_id, facts.resource_type, resources.profile_id, facts.metric
),

compared as (
    select
        profiles.account_id as tenant,
        profiles.resource_id as profile_id,
        profiles.resource_name as profile_name,
        profiles.usage_date,
        profiles.metric,
        profiles.quantity as profile_quantity,
        coalesce(instances.instances_quantity, 0) as instances_quantity
    from analytics.rafay_profile_usage as profiles
    left join instances
        on instances.usage_date = profiles.usage_date
        and instances.account_id = profiles.account_id
        and instances.resource_type = profiles.resource_type
        and instances.profile_id = profiles.resource_id
        and instances.metric = profiles.metric
)

select tenant, profile_id, profile_name, usage_date, metric, profile_quantity, instances_quantity
from compared
where abs(profile_quantity - instances_quantity) > 0.001 + 0.000001 * abs(profile_quantity)
order by usage_date, tenant, profile_id, metric
