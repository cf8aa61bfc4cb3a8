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

judged_days as (
    -- the days judged, the facts' last 7 (what a nightly and its lookback change), and the 14
    -- before the first of them: all the model reads; judging all of history would join every
    -- fact row with its 14 days before on every build
    select
        cast(max(usage_date) - interval '7 days' as date) as judged_after,
        cast(max(usage_date) - interval '21 days' as date) as read_after
    from analytics.fct_daily_usage
),

series as (
    -- one integer per resource and metric: the joins and medians below carry it, not five
    -- strings, so that their memory stays small on a large warehouse
    select
        provider, account_id, resource_type, resource_id, metric,
        dense_rank() over (order by provider, account_id, resource_type, resource_id, metric) as series
    from (
        select distinct provider, account_id, resource_type, resource_id, metric
        from analytics.fct_daily_usage
        where usage_date > (select read_after from judged_days)
    ) as keys
),

usage as (
    select series.series, usage.usage_date, usage.quantity
    from analytics.fct_daily_usage as usage
    join series
        on series.provider = usage.provider
        and series.account_id = usage.account_id
        and series.resource_type = usage.resource_type
        and series.resource_id = usage.resource_id
        and series.metric = usage.metric
    where usage.usage_date > (select read_after from judged_days)
),

recent as (
    select *
    from usage
    where usage_date > (select judged_after from judged_days)
),

history as (
    select recent.series, recent.usage_date, prior.quantity as prior_quantity
    from recent
    join usage as prior
        on prior.series = recent.series
        and prior.usage_date < recent.usage_date
        and prior.usage_date >= cast(recent.usage_date - interval '14 days' as date)
),

ranked as (
    -- each judged day's prior days in order, for the median (row numbers, not an ordered-set
    -- aggregate: a sort keeps within the memory cap, spilling to disk when it must)
    select
        series,
        usage_date,
        prior_quantity,
        row_number() over (partition by series, usage_date order by prior_quantity) as position,
        count(*) over (partition by series, usage_date) as prior_days
    from history
),

baseline as (
    select series, usage_date, max(prior_days) as prior_days, avg(prior_quantity) as median_quantity
    from ranked
    where prior_days >= 7
        and 2 * position in (prior_days, prior_days + 1, prior_days + 2)  -- the middle one or two
    group by series, usage_date
),

deviations as (
    select
        history.series,
        history.usage_date,
        baseline.prior_days,
        abs(history.prior_quantity - baseline.median_quantity) as deviation,
        row_number() over (
            partition by history.series, history.usage_date
            order by abs(history.prior_quantity - baseline.median_quantity)
        ) as position
    from history
    join baseline
        on baseline.series = history.series
        and baseline.usage_date = history.usage_date
),

spread as (
    select series, usage_date, avg(deviation) as mad
    from deviations
    where 2 * position in (prior_days, prior_days + 1, prior_days + 2)
    group by series, usage_date
),

totals as (
    select usage.usage_date, series.provider, series.account_id, series.metric, sum(usage.quantity) as total
    from usage
    join series on series.series = usage.series
    group by usage.usage_date, series.provider, series.account_id, series.metric
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

candidates as (
    select
        recent.series,
        recent.usage_date,
        recent.quantity,
        baseline.prior_days,
        baseline.median_quantity,
        spread.mad,
        abs(recent.quantity - baseline.median_quantity) as change_
    from recent
    join baseline
        on baseline.series = recent.series
        and baseline.usage_date = recent.usage_date
    join spread
        on spread.series = recent.series
        and spread.usage_date = recent.usage_date
    where baseline.median_quantity > 0
        and abs(recent.quantity - baseline.median_quantity) > 5 * 1.4826 * spread.mad
        and abs(recent.quantity - baseline.median_quantity) >= 0.10 * baseline.median_quantity
),

flagged as (
    select
        usage.usage_date,
        usage.provider,
        usage.account_id,
        usage.resource_type,
        usage.resource_id,
        usage.resource_name,
        usage.metric,
        usage.unit,
        usage.quantity,
        candidates.median_quantity,
        candidates.mad,
        candidates.prior_days
    from candidates
    join series on series.series = candidates.series
    join analytics.fct_daily_usage as usage
        on usage.usage_date = candidates.usage_date
        and usage.provider = series.provider
        and usage.account_id = series.account_id
        and usage.resource_type = series.resource_type
        and usage.resource_id = series.resource_id
        and usage.metric = series.metric
    left join account_level
        on account_level.usage_date = candidates.usage_date
        and account_level.provider = series.provider
        and account_level.account_id = series.account_id
        and account_level.metric = series.metric
    where candidates.change_ >= 0.01 * coalesce(account_level.mean_total, 0)
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
