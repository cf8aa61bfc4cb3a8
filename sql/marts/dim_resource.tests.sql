-- test: resource_unique
select provider, account_id, resource_type, resource_id, count(*) as n
from analytics.dim_resource
group by provider, account_id, resource_type, resource_id
having count(*) > 1

-- test: every_fact_resource_present
select distinct facts.provider, facts.account_id, facts.resource_type, facts.resource_id
from analytics.fct_daily_usage as facts
left join analytics.dim_resource as resources
    on resources.provider = facts.provider
    and resources.account_id = facts.account_id
    and resources.resource_type = facts.resource_type
    and resources.resource_id = facts.resource_id
where resources.resource_id is null

-- test: resource_not_null
select provider, account_id, resource_type, resource_id
from analytics.dim_resource
where provider is null
   or account_id is null
   or resource_type is null
   or resource_id is null
