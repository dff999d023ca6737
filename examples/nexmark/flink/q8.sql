-- Nexmark q8, monitor new users: the persons who opened an auction in the same 10-second
-- window they registered in. The persons of each window and the sellers of each window are
-- two TUMBLE window aggregations (subqueries), joined on the person and the window.
CREATE TABLE nexmark_q8 (id BIGINT, name VARCHAR, starttime TIMESTAMP(3))
  WITH ('connector' = 'blackhole');
INSERT INTO nexmark_q8
SELECT P.id, P.name, P.starttime
FROM (SELECT id, name, window_start AS starttime, window_end AS endtime
      FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
      GROUP BY id, name, window_start, window_end) AS P
JOIN (SELECT seller, window_start AS starttime, window_end AS endtime
      FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
      GROUP BY seller, window_start, window_end) AS A
  ON P.id = A.seller AND P.endtime = A.endtime;
