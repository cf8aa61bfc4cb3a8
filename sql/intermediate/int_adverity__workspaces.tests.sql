-- test: account_unique
select account_id, count(*) as n
from analytics.int_adverity__workspaces
group by account_id
having count(*) > 1

-- test: account_not_null
select account_id
from analytics.int_adverity__workspaces
where account_id is null
