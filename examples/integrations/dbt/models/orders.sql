select * from (values
    (1, 'paid', 12.50, timestamp '2026-12-03 08:00:00'),
    (2, 'paid', 40.00, timestamp '2026-12-03 09:30:00'),
    (3, 'lost', 7.25, timestamp '2026-12-03 10:15:00')
) as t(id, status, amount, updated_at)
