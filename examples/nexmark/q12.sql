-- Nexmark q12, processing-time windows: how many bids each bidder makes in each 10-second
-- window of processing time (the wall clock when hispeed reads the bid, not the bid's own
-- time). DESCRIPTOR(PROCTIME()) is past ksqlDB (docs/sql.md); EMIT CHANGES gives each
-- window's count as it grows (a processing-time window closes only when a later record is
-- read after its end, so with EMIT FINAL an idle source leaves the last one open).
CREATE TABLE q12 WITH (key_format='JSON') AS SELECT bidder, COUNT(*) AS bid_count,
  window_start AS starttime, window_end AS endtime
  FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(PROCTIME()), INTERVAL '10' SECOND))
  GROUP BY bidder, window_start, window_end EMIT CHANGES;
