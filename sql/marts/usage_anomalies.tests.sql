-- test: grain_unique
select usage_date, provider, account_id, resource_type, resource_id, metric, count(*) as n
from analytics.usage_anomalies
group by usage_date, provider, account_id, resource_type, resource_id, metric
having count(*) > 1

-- test: grain_not_null
select usage_date, provider, account_id, resource_type, resource_id, metric
from analytics.usage_anomalies
where usage_date is null or provider is null or account_id is null or resource_type is null
    or resource_id is null or metric is null

-- test: every_anomaly_is_a_fact_row
select usage_date, provider, account_id, resource_type, resource_id, metric, quantity
from analytics.usage_anomalies
except
select usage_date, provider, account_id, resource_type, resource_id, metric, quantity
from analytics.fct_daily_usage

-- test: far_from_its_history
-- the rule of the model: enough history, a baseline, and a change beyond k x 1.4826 x MAD and 10 % of the median
select usage_date, provider, account_id, resource_type, resource_id, metric, quantity, median_quantity, mad
from analytics.usage_anomalies
where prior_days < 7 or prior_days > 14 or median_quantity <= 0 or mad < 0
    or abs(quantity - median_quantity) <= 5 * 1.4826 * mad
    or abs(quantity - median_quantity) < 0.10 * median_quantity

-- test: direction_and_factor_agree
select usage_date, provider, account_id, resource_type, resource_id, metric, direction, factor
from analytics.usage_anomalies
where not ((direction = 'spike' and factor > 1) or (direction = 'drop' and factor < 1))
    or abs(factor * median_quantity - quantity) > 0.000001 * abs(quantity) + 0.000001
