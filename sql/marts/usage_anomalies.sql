-- build: whole
-- grain: usage_date, provider, account_id, resource_type, resource_id, metric
-- Days far from the resource's own recent history: for each fact row (one resource, one metric,
-- one day), the median and the MAD (median absolute deviation) of the same resource and metric
-- on the 14 days before it (history: the days of those 14 that have a row). The day is an
-- anomaly when all of these hold:
--   - at least 7 prior days, and a median above 0 (no baseline, no judgement: intermittent or
--     new usage is not an anomaly);
--   - |quantity - median| > 5 x 1.4826 x MAD (k = 5: 1.4826 x MAD estimates the standard
--     deviation, so five of them is far outside ordinary noise, however skewed the history);
--   - |quantity - median| >= 10 % of the median (a flat history, MAD 0, does not alert on
--     a small wobble);
--   - |quantity - median| >= 1 % of the account's mean daily total of the metric over the same
--     14 days (the floor: noise on a resource tiny beside its account is not an alert).
-- cost_impact is (quantity - median) x the day's price per unit of the fact (fct_daily_cost's
-- unit_price over the rate card's units per pricing unit), in the card's currency; null unpriced.
-- Built whole over the facts' last 7 days: a changed day moves the baseline of the days after it.
-- pipelines.alerts.new_anomalies() names each anomaly once (the nightly's alert, make check).
with

usage as (
    select usage_date, provider, account_id, resource_type, resource_id, resource_name, metric, quantity, unit
    from analytics.fct_daily_usage
),

recent as (
    -- the days judged: the facts' last 7 (what a nightly and its lookback change); judging all
    -- of history would join every fact row with its 14 days before on every build
    select *
    from usage
    where usage_date > (select cast(max(usage_date) - interval '7 days' as date) from usage)
),

history as (
    select
        usage.usage_date,
        usage.provider,
        usage.account_id,
        usage.resource_type,
        usage.resource_id,
        usage.metric,
        prior.quantity as prior_quantity
    from recent as usage
    join usage as prior
        on prior.provider = usage.provider
        and prior.account_id = usage.account_id
        and prior.resource_type = usage.resource_type
        and prior.resource_id = usage.resource_id
        and prior.metric = usage.metric
        and prior.usage_date < usage.usage_date
        and prior.usage_date >= cast(usage.usage_date - interval '14 days' as date)
),

baseline as (
    select
        usage_date,
        provider,
        account_id,
        resource_type,
        resource_id,
        metric,
        count(*) as prior_days,
        percentile_cont(0.5) within group (order by prior_quantity) as median_quantity
    from history
    group by usage_date, provider, account_id, resource_type, resource_id, metric
    having count(*) >= 7
),

spread as (
    select
        history.usage_date,
        history.provider,
        history.account_id,
        history.resource_type,
        history.resource_id,
        history.metric,
        percentile_cont(0.5) within group (order by abs(history.prior_quantity - baseline.median_quantity)) as mad
    from history
    join baseline
        on baseline.usage_date = history.usage_date
        and baseline.provider = history.provider
        and baseline.account_id = history.account_id
        and baseline.resource_type = history.resource_type
        and baseline.resource_id = history.resource_id
        and baseline.metric = history.metric
    group by history.usage_date, history.provider, history.account_id, history.resource_type,
        history.resource_id, history.metric
),

totals as (
    select usage_date, provider, account_id, metric, sum(quantity) as total
    from usage
    group by usage_date, provider, account_id, metric
),

account_level as (
    select
        totals.usage_date,
        totals.provider,
        totals.account_id,
        totals.metric,
        avg(prior.total) as mean_total
    from totals
    join totals as prior
        on prior.provider = totals.provider
        and prior.account_id = totals.account_id
        and prior.metric = totals.metric
        and prior.usage_date < totals.usage_date
        and prior.usage_date >= cast(totals.usage_date - interval '14 days' as date)
    group by totals.usage_date, totals.provider, totals.account_id, totals.metric
),

judged as (
    select
        usage.*,
        baseline.prior_days,
        baseline.median_quantity,
        spread.mad,
        abs(usage.quantity - baseline.median_quantity) as change_,
        coalesce(account_level.mean_total, 0) as account_mean_total
    from usage
    join baseline
        on baseline.usage_date = usage.usage_date
        and baseline.provider = usage.provider
        and baseline.account_id = usage.account_id
        and baseline.resource_type = usage.resource_type
        and baseline.resource_id = usage.resource_id
        and baseline.metric = usage.metric
    join spread
        on spread.usage_date = usage.usage_date
        and spread.provider = usage.provider
        and spread.account_id = usage.account_id
        and spread.resource_type = usage.resource_type
        and spread.resource_id = usage.resource_id
        and spread.metric = usage.metric
    left join account_level
        on account_level.usage_date = usage.usage_date
        and account_level.provider = usage.provider
        and account_level.account_id = usage.account_id
        and account_level.metric = usage.metric
    where baseline.median_quantity > 0
),

flagged as (
    select *
    from judged
    where change_ > 5 * 1.4826 * mad
        and change_ >= 0.10 * median_quantity
        and change_ >= 0.01 * account_mean_total
),

units as (
    select unit, pricing_unit, max(units_per_pricing_unit) as units_per_pricing_unit
    from analytics.rate_card
    group by unit, pricing_unit
)

select
    flagged.usage_date,
    flagged.provider,
    flagged.account_id,
    flagged.resource_type,
    flagged.resource_id,
    flagged.resource_name,
    flagged.metric,
    flagged.unit,
    flagged.quantity,
    cast(flagged.median_quantity as double precision) as median_quantity,
    cast(flagged.mad as double precision) as mad,
    cast(flagged.prior_days as integer) as prior_days,
    cast(flagged.quantity / flagged.median_quantity as double precision) as factor,
    cast(case when flagged.quantity > flagged.median_quantity then 'spike' else 'drop' end as varchar) as direction,
    cost.team,
    cast((flagged.quantity - flagged.median_quantity) * cost.unit_price / units.units_per_pricing_unit
         as double precision) as cost_impact,
    case when cost.unit_price is not null then cost.currency end as currency
from flagged
left join analytics.fct_daily_cost as cost
    on cost.usage_date = flagged.usage_date
    and cost.provider = flagged.provider
    and cost.account_id = flagged.account_id
    and cost.resource_type = flagged.resource_type
    and cost.resource_id = flagged.resource_id
    and cost.metric = flagged.metric
left join units
    on units.unit = cost.unit
    and units.pricing_unit = cost.pricing_unit
