-- Month to date by account: every provider's accounts with their usage per metric since the
-- first day of the current UTC month, up to the last complete day.
select
    provider,
    account_id,
    max(account_name) as account_name,
    metric,
    unit,
    sum(quantity) as quantity,
    count(distinct usage_date) as days,
    max(usage_date) as through_day
from analytics.fct_daily_usage
where usage_date >= date_trunc('month', current_date)
  and usage_date < current_date
group by provider, account_id, metric, unit
order by provider, account_id, metric
