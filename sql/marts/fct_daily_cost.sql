-- The usage priced: one row per fact row (the grain of fct_daily_usage), with the team that owns
-- the resource (analytics.owners, most specific rule first; unmatched: unallocated), the price of
-- its day from the rate card (analytics.rate_card: a row of the fact's account over the general
-- one; effective days inclusive), the cost in the card's currency and in the reporting currency
-- (analytics.fx_rates: the day's rate, else the month's; none: a null reporting_cost).
-- A fact row without a price keeps null price and cost (`make check` warns of them).
-- grain: usage_date, provider, account_id, resource_type, resource_id, metric
-- Built by provider and day range with fct_daily_usage, from the same usage model; a changed rate
-- card, ownership rule or FX rate (the seeds' digests) remakes it whole.
with

usage as (
    -- every provider's int_<provider>__usage, unioned by the model runner (analytics.int_usage)
    select * from analytics.int_usage
),

resources as (
    select distinct provider, account_id, resource_type, resource_id
    from usage
),

owned as (
    select
        resources.provider,
        resources.account_id,
        resources.resource_type,
        resources.resource_id,
        owners.team,
        row_number() over (
            partition by resources.provider, resources.account_id, resources.resource_type, resources.resource_id
            order by owners.priority desc
        ) as rank_
    from resources
    join analytics.owners as owners
        on resources.provider like owners.provider_like escape '\'
        and resources.account_id like owners.account_id_like escape '\'
        and resources.resource_type like owners.resource_type_like escape '\'
        and resources.resource_id like owners.resource_id_like escape '\'
),

prices_asked as (
    -- what a price depends on: a day of one metric of one account (never the resource), so the
    -- card is matched once per such key, not once per fact row
    select distinct usage_date, provider, account_id, metric, unit
    from usage
),

priced as (
    select
        asked.usage_date,
        asked.provider,
        asked.account_id,
        asked.metric,
        asked.unit,
        card.pricing_unit,
        card.units_per_pricing_unit,
        card.unit_price,
        card.currency,
        row_number() over (
            partition by asked.usage_date, asked.provider, asked.account_id, asked.metric, asked.unit
            order by case when card.account_id is null then 1 else 0 end
        ) as rank_
    from prices_asked as asked
    join analytics.rate_card as card
        on card.provider = asked.provider
        and card.metric = asked.metric
        and card.unit = asked.unit
        and (card.account_id is null or card.account_id = asked.account_id)
        and asked.usage_date >= card.effective_from
        and (card.effective_to is null or asked.usage_date <= card.effective_to)
),

listed as (
    -- the general row of the day (no account): the list price, where the card has one
    select
        asked.usage_date,
        asked.provider,
        asked.account_id,
        asked.metric,
        asked.unit,
        card.units_per_pricing_unit,
        card.unit_price,
        card.currency
    from prices_asked as asked
    join analytics.rate_card as card
        on card.provider = asked.provider
        and card.metric = asked.metric
        and card.unit = asked.unit
        and card.account_id is null
        and asked.usage_date >= card.effective_from
        and (card.effective_to is null or asked.usage_date <= card.effective_to)
),

costed as (
    select
        usage.*,
        coalesce(owned.team, 'unallocated') as team,
        priced.pricing_unit,
        usage.quantity / priced.units_per_pricing_unit as pricing_quantity,
        priced.unit_price,
        usage.quantity / priced.units_per_pricing_unit * priced.unit_price as cost,
        priced.currency,
        case when listed.currency = priced.currency
            then usage.quantity / listed.units_per_pricing_unit * listed.unit_price
        end as list_cost
    from usage
    left join owned
        on owned.provider = usage.provider
        and owned.account_id = usage.account_id
        and owned.resource_type = usage.resource_type
        and owned.resource_id = usage.resource_id
        and owned.rank_ = 1
    left join priced
        on priced.usage_date = usage.usage_date
        and priced.provider = usage.provider
        and priced.account_id = usage.account_id
        and priced.metric = usage.metric
        and priced.unit = usage.unit
        and priced.rank_ = 1
    left join listed
        on listed.usage_date = usage.usage_date
        and listed.provider = usage.provider
        and listed.account_id = usage.account_id
        and listed.metric = usage.metric
        and listed.unit = usage.unit
),

rated as (
    select
        costed.*,
        reporting.reporting_currency,
        case
            when costed.currency = reporting.reporting_currency then 1.0
            else coalesce(day_fx.rate, month_fx.rate)
        end as fx_rate
    from costed
    cross join (select max(reporting_currency) as reporting_currency from analytics.fx_rates) as reporting
    left join analytics.fx_rates as day_fx
        on day_fx.currency = costed.currency
        and day_fx.rate_date = costed.usage_date
    left join analytics.fx_rates as month_fx
        on month_fx.currency = costed.currency
        and month_fx.rate_month = cast(date_trunc('month', costed.usage_date) as date)
)

select
    cast(usage_date as date) as usage_date,
    cast(provider as varchar) as provider,
    cast(account_id as varchar) as account_id,
    cast(account_name as varchar) as account_name,
    cast(resource_type as varchar) as resource_type,
    cast(resource_id as varchar) as resource_id,
    cast(resource_name as varchar) as resource_name,
    cast(metric as varchar) as metric,
    cast(quantity as double precision) as quantity,
    cast(unit as varchar) as unit,
    cast(team as varchar) as team,
    cast(pricing_unit as varchar) as pricing_unit,
    cast(pricing_quantity as double precision) as pricing_quantity,
    cast(unit_price as double precision) as unit_price,
    cast(cost as double precision) as cost,
    cast(currency as varchar) as currency,
    cast(coalesce(list_cost, cost) as double precision) as list_cost,
    cast(cost * fx_rate as double precision) as reporting_cost,
    cast(reporting_currency as varchar) as reporting_currency
from rated
