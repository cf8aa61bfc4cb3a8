-- test: one_row_per_budget
select scope, month from analytics.budgets
except
select scope, month from analytics.budget_status

-- test: spend_not_negative
select scope, month, spend_to_date from analytics.budget_status
where spend_to_date < 0 or projected_spend < spend_to_date - 0.000001 * abs(spend_to_date)

-- test: grain_unique
select scope, month, count(*) as n
from analytics.budget_status
group by scope, month
having count(*) > 1

-- test: grain_not_null
select scope, month
from analytics.budget_status
where scope is null or month is null
