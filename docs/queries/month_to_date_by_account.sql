-- Month to date by account: for every provider account and metric, the current UTC month so far
-- (from its 1st through the last complete day, yesterday) beside the whole last complete month.
-- Two rows per account and metric, `period` 'month_to_date' and 'last_month'. On the 1st of a
-- month no day of it is complete yet: its 'month_to_date' rows show 0 over 0 days with a null
-- `through_day`, and 'last_month' is the month that just ended.
--
-- One metric at a time: a row is one metric in one unit, and rows of different metrics or units
-- never add up. Every metric is the sum of its days in analytics.fct_daily_usage (leaf usage
-- only, so nothing is counted twice), Adverity's `total_rows` included. Adverity's `unique_rows`
-- is not: Adverity counts unique rows per datastream per month, so a month's figure is not the
-- sum of its days. It comes from analytics.adverity_monthly_usage (Adverity's own monthly figure,
-- a month to date until the month ends), summed over the account's datastreams of that month;
-- its `through_day` is the last day that figure covers.
--
-- Columns: provider, account_id, account_name, metric, unit, period, month (its 1st),
-- through_day, days (days of the period with a fact row), quantity (in `unit`).
--
-- As of another day: `current_date` is read once, in the as_of CTE below. Replace it with a
-- literal (`select date '2026-03-01' as today`) to get the answer that day would have given from
-- the facts; Adverity's unique_rows stay the latest monthly figures (see `through_day`).
-- Days are UTC: run it in a session whose time zone is UTC.
with

as_of as (
    select current_date as today
),

this_month as (
    select
        today,
        today - cast(extract(day from today) as integer) + 1 as month_start
    from as_of
),

periods as (
    -- the month so far (empty on the 1st: its last day is before its first) and the last month
    select
        'month_to_date' as period,
        month_start as first_day,
        today - 1 as last_day
    from this_month
    union all
    select
        'last_month' as period,
        (month_start - 1) - cast(extract(day from month_start - 1) as integer) + 1 as first_day,
        month_start - 1 as last_day
    from this_month
),

figures as (
    -- the facts of each period: every metric summed over its days, but Adverity's unique_rows,
    -- whose days are counted here and whose quantity is Adverity's month figure, below
    select
        periods.period,
        fct.provider,
        fct.account_id,
        fct.account_name,
        fct.metric,
        fct.unit,
        fct.usage_date,
        case
            when fct.provider = 'adverity' and fct.metric = 'unique_rows' then null
            else fct.quantity
        end as quantity,
        cast(null as date) as through_day
    from analytics.fct_daily_usage as fct
    inner join periods
        on fct.usage_date between periods.first_day and periods.last_day
    union all
    -- within one month the datastreams' unique rows add up; over months they do not
    select
        periods.period,
        monthly.provider,
        monthly.account_id,
        monthly.account_name,
        monthly.metric,
        monthly.unit,
        cast(null as date) as usage_date,
        monthly.quantity,
        monthly.through_date as through_day
    from analytics.adverity_monthly_usage as monthly
    inner join periods
        on monthly.usage_month = periods.first_day
    where monthly.metric = 'unique_rows'
),

by_period as (
    select
        period,
        provider,
        account_id,
        max(account_name) as account_name,
        metric,
        unit,
        count(distinct usage_date) as days,
        sum(quantity) as quantity,
        max(through_day) as through_day
    from figures
    group by period, provider, account_id, metric, unit
),

accounts as (
    -- every account and metric seen in either period, so that an empty month still has its rows
    select
        provider,
        account_id,
        max(account_name) as account_name,
        metric,
        unit
    from by_period
    group by provider, account_id, metric, unit
)

select
    accounts.provider,
    accounts.account_id,
    accounts.account_name,
    accounts.metric,
    accounts.unit,
    periods.period,
    periods.first_day as month,
    case
        when accounts.provider = 'adverity' and accounts.metric = 'unique_rows' then by_period.through_day
        when periods.last_day >= periods.first_day then periods.last_day
    end as through_day,
    coalesce(by_period.days, 0) as days,
    coalesce(by_period.quantity, 0) as quantity
from accounts
cross join periods
left join by_period
    on by_period.period = periods.period
    and by_period.provider = accounts.provider
    and by_period.account_id = accounts.account_id
    and by_period.metric = accounts.metric
    and by_period.unit = accounts.unit
order by accounts.provider, accounts.account_id, accounts.metric, accounts.unit, periods.first_day desc
