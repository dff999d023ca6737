-- Nexmark q10, log to a file system: each bid with the day and the hour (UTC) it was made,
-- the partitioning columns Nexmark's sink writes by.
CREATE STREAM q10 AS SELECT auction, bidder, price, dateTime, extra,
  TIMESTAMPTOSTRING(dateTime, 'yyyy-MM-dd', 'UTC') AS dt,
  TIMESTAMPTOSTRING(dateTime, 'HH', 'UTC') AS hm
  FROM bid EMIT CHANGES;
