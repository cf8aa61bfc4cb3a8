-- test: one_charge_per_priced_fact_row
select count(*) as charges, (select count(*) from analytics.fct_daily_cost where cost is not null) as priced
from analytics.focus
having count(*) <> (select count(*) from analytics.fct_daily_cost where cost is not null)

-- test: costs_present
select ChargePeriodStart, SubAccountId, ResourceId, x_Metric
from analytics.focus
where BilledCost is null or EffectiveCost is null or ContractedCost is null or ListCost is null
