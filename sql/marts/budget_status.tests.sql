-- test: one_row_per_budget
select scope, month from analytics.budgets
except
select scope, month from analytics.budget_status

-- test: spend_not_negative
select scope, month, spend_to_date from analytics.budget_status
where spend_to_date < 0 or projected_spend < spend_to_date - 0.000001 * abs(spend_to_date)
