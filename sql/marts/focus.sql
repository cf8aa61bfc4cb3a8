-- build: whole
-- size: facts
-- grain: ChargePeriodStart, x_Provider, SubAccountId, ResourceType, ResourceId, x_Metric
-- The priced charges of fct_daily_cost as a FinOps FOCUS 1.2 dataset (CostAndUsage): one row
-- per fact row with a price, FOCUS's column names, types and allowed values; checked with the
-- FinOps Foundation's focus-validator (tests/test_focus.py). A charge is one UTC day of one
-- metric of one resource, billed in the rate card's currency; the provider's account is both the
-- billing account and the sub account. Tags: the owning team (`team`, the ownership rules' one
-- user-defined scheme, unprefixed) and the resource's attributes from dim_resource, prefixed
-- with the provider's name (`rafay/profile_name`, ...). InvoiceId names the provisional invoice
-- the charge falls in (`<provider>:<account>:<YYYY-MM>`), not the vendor's invoice number.
with

charges as (
    select * from analytics.fct_daily_cost
    where cost is not null
),

resources as (
    select * from analytics.dim_resource
),

units as (
    -- each unit in FOCUS's UnitFormat (`GB-Months`, `1000000 Rows`, ...), written by the runner
    select unit, focus_unit from analytics.focus_units
),

tagged as (
    select
        charges.*,
        resources.project_id,
        resources.project_name,
        resources.profile_id,
        resources.profile_name,
        resources.plan,
        consumed_units.focus_unit as consumed_unit,
        pricing_units.focus_unit as focus_pricing_unit,
        cast(date_trunc('month', charges.usage_date) as date) as billing_month
    from charges
    left join units as consumed_units
        on consumed_units.unit = charges.unit
    left join units as pricing_units
        on pricing_units.unit = charges.pricing_unit
    left join resources
        on resources.provider = charges.provider
        and resources.account_id = charges.account_id
        and resources.resource_type = charges.resource_type
        and resources.resource_id = charges.resource_id
)

select
    cast(usage_date as timestamp) as ChargePeriodStart,
    cast(usage_date + 1 as timestamp) as ChargePeriodEnd,
    cast(billing_month as timestamp) as BillingPeriodStart,
    cast(cast(billing_month + interval '1 month' as date) as timestamp) as BillingPeriodEnd,
    cast('Usage' as varchar) as ChargeCategory,
    cast(null as varchar) as ChargeClass,
    cast('Usage-Based' as varchar) as ChargeFrequency,
    cast(null as varchar) as CommitmentDiscountStatus,
    cast(provider || ':' || account_id || ':' || substr(cast(billing_month as varchar), 1, 7) as varchar) as InvoiceId,
    cast(metric || ' of ' || resource_type || ' ' || resource_id as varchar) as ChargeDescription,
    cast(cost as double precision) as BilledCost,
    cast(cost as double precision) as EffectiveCost,
    cast(cost as double precision) as ContractedCost,
    cast(list_cost as double precision) as ListCost,
    cast(unit_price as double precision) as ContractedUnitPrice,
    cast(currency as varchar) as BillingCurrency,
    cast(quantity as double precision) as ConsumedQuantity,
    cast(coalesce(consumed_unit, unit) as varchar) as ConsumedUnit,
    cast(pricing_quantity as double precision) as PricingQuantity,
    cast(coalesce(focus_pricing_unit, pricing_unit) as varchar) as PricingUnit,
    cast(account_id as varchar) as BillingAccountId,
    cast(coalesce(account_name, account_id) as varchar) as BillingAccountName,
    cast(account_id as varchar) as SubAccountId,
    cast(coalesce(account_name, account_id) as varchar) as SubAccountName,
    cast(resource_id as varchar) as ResourceId,
    cast(coalesce(resource_name, resource_id) as varchar) as ResourceName,
    cast(resource_type as varchar) as ResourceType,
    cast(case provider when 'neon' then 'Neon' when 'adverity' then 'Adverity'
        when 'rafay' then 'Rafay' when 'bronto' then 'Bronto' else provider end as varchar) as ProviderName,
    cast(case provider when 'neon' then 'Neon' when 'adverity' then 'Adverity'
        when 'rafay' then 'Rafay' when 'bronto' then 'Bronto' else provider end as varchar) as PublisherName,
    cast(case provider when 'neon' then 'Neon' when 'adverity' then 'Adverity'
        when 'rafay' then 'Rafay' when 'bronto' then 'Bronto' else provider end as varchar) as InvoiceIssuerName,
    cast(case provider when 'neon' then 'Neon Postgres' when 'adverity' then 'Adverity Data Integration'
        when 'rafay' then 'Rafay Platform' when 'bronto' then 'Bronto Logging' else provider end as varchar) as ServiceName,
    cast(case provider when 'neon' then 'Databases' when 'adverity' then 'Integration'
        when 'rafay' then 'Compute' when 'bronto' then 'Management and Governance' else 'Other' end as varchar) as ServiceCategory,
    cast(case provider when 'neon' then 'Relational Databases' when 'adverity' then 'Other (Integration)'
        when 'rafay' then 'Containers' when 'bronto' then 'Observability' else 'Other (Other)' end as varchar) as ServiceSubcategory,
    cast('{"team":"' || replace(replace(team, '\', '\\'), '"', '\"') || '"'
        || coalesce(',"' || provider || '/project_id":"' || replace(replace(project_id, '\', '\\'), '"', '\"') || '"', '')
        || coalesce(',"' || provider || '/project_name":"' || replace(replace(project_name, '\', '\\'), '"', '\"') || '"', '')
        || coalesce(',"' || provider || '/profile_id":"' || replace(replace(profile_id, '\', '\\'), '"', '\"') || '"', '')
        || coalesce(',"' || provider || '/profile_name":"' || replace(replace(profile_name, '\', '\\'), '"', '\"') || '"', '')
        || coalesce(',"' || provider || '/plan":"' || replace(replace(plan, '\', '\\'), '"', '\"') || '"', '')
        || '}' as varchar) as Tags,
    cast(provider as varchar) as x_Provider,
    cast(metric as varchar) as x_Metric
from tagged
