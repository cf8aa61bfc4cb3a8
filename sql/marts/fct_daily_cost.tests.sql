-- test: grain_unique
select usage_date, provider, account_id, resource_type, resource_id, metric, count(*) as n
from analytics.fct_daily_cost
group by usage_date, provider, account_id, resource_type, resource_id, metric
having count(*) > 1

-- test: team_present
select usage_date, provider, account_id, resource_type, resource_id, metric
from analytics.fct_daily_cost
where team is null or team = ''

-- test: priced_rows_complete
-- a price comes with its unit, quantity, cost and currency; an unpriced row has none of them
select usage_date, provider, account_id, resource_id, metric, unit_price, cost
from analytics.fct_daily_cost
where (unit_price is null) <> (cost is null)
   or (cost is null) <> (currency is null)
   or (cost is null) <> (pricing_unit is null)
   or (cost is null) <> (pricing_quantity is null)

-- test: cost_not_negative
select usage_date, provider, account_id, resource_id, metric, cost
from analytics.fct_daily_cost
where cost < 0 or list_cost < 0 or reporting_cost < 0

-- test: reporting_cost_only_with_a_cost
select usage_date, provider, account_id, resource_id, metric, cost, reporting_cost
from analytics.fct_daily_cost
where reporting_cost is not null and cost is null

-- test: grain_not_null
select usage_date, provider, account_id, resource_type, resource_id, metric
from analytics.fct_daily_cost
where usage_date is null
   or provider is null
   or account_id is null
   or resource_type is null
   or resource_id is null
   or metric is null
