-- Nexmark q8, monitor new users: the persons who opened an auction in the same 10-second
-- window they registered in. Flink joins two TUMBLE window aggregations on their window
-- bounds; here persons and auctions are joined on the seller and the window (a stream-stream
-- join), then a TUMBLE window aggregation (Flink SQL's) keeps one row per person and window.
CREATE STREAM q8_person (id BIGINT, name STRING, dateTime BIGINT)
  WITH (kafka_topic='person', value_format='JSON', timestamp='dateTime');
-- (a grace period of 10 s, not the default 24 hours: the join keeps 20 s of each side, not a
-- day, which made it about 20 times slower)
CREATE STREAM q8_joined AS SELECT p.id AS id, p.name AS name
  FROM q8_person p JOIN auction a WITHIN 10 SECONDS GRACE PERIOD 10 SECONDS
    ON p.id = a.seller
  WHERE p.dateTime / 10000 = a.dateTime / 10000 EMIT CHANGES;
-- the joined row's time is the later of the two, in the same window as both
CREATE TABLE q8 WITH (key_format='JSON') AS SELECT id, name, window_start AS starttime
  FROM TABLE(TUMBLE(TABLE q8_joined, DESCRIPTOR(ROWTIME), INTERVAL '10' SECOND))
  GROUP BY id, name, window_start, window_end;
