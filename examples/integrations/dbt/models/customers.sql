select * from (values (1, 'ann@example.com'), (2, 'bob@example.com')) as t(id, email)
