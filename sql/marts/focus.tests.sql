-- test: one_charge_per_priced_fact_row
select count(*) as charges, (select count(*) from analytics.fct_daily_cost where cost is not null) as priced
from analytics.focus
having count(*) <> (select count(*) from analytics.fct_daily_cost where cost is not null)

-- test: costs_present
select ChargePeriodStart, SubAccountId, ResourceId, x_Metric
from analytics.focus
where BilledCost is null or EffectiveCost is null or ContractedCost is null or ListCost is null

-- test: grain_unique
select ChargePeriodStart, x_Provider, SubAccountId, ResourceType, ResourceId, x_Metric, count(*) as n
from analytics.focus
group by ChargePeriodStart, x_Provider, SubAccountId, ResourceType, ResourceId, x_Metric
having count(*) > 1

-- test: grain_not_null
select ChargePeriodStart, x_Provider, SubAccountId, ResourceType, ResourceId, x_Metric
from analytics.focus
where ChargePeriodStart is null
   or x_Provider is null
   or SubAccountId is null
   or ResourceType is null
   or ResourceId is null
   or x_Metric is null
