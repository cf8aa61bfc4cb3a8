-- Warnings, not failures: `make check` prints them and still passes (pipelines.pricing.warnings).

-- warning: unpriced_usage
-- fact rows that no rate card row prices (their cost is null): add the prices to PRICING__RATE_CARD
select provider, metric, unit, min(usage_date) as first_day, max(usage_date) as last_day, count(*) as unpriced_rows
from analytics.fct_daily_cost
where cost is null
group by provider, metric, unit
order by provider, metric

-- warning: cost_without_fx_rate
-- costs in a currency with no FX rate to the reporting currency for their day or month: add it to PRICING__FX_RATES
select currency, reporting_currency, min(usage_date) as first_day, max(usage_date) as last_day, count(*) as rows_without_rate
from analytics.fct_daily_cost
where cost is not null and reporting_cost is null
group by currency, reporting_currency
order by currency
