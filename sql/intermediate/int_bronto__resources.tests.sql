-- test: resource_unique
select account_id, resource_type, resource_id, count(*) as n
from analytics.int_bronto__resources
group by account_id, resource_type, resource_id
having count(*) > 1

-- test: resource_not_null
select account_id, resource_type, resource_id
from analytics.int_bronto__resources
where account_id is null
   or resource_type is null
   or resource_id is null
