-- Nexmark q12, processing-time windows: how many bids each bidder makes in each 10-second
-- window of processing time (the wall clock when hispeed reads the bid). The view adds
-- Flink's processing-time attribute; it is inlined where it is read, and the window's row
-- is sent as its count grows (hispeed has no wall-clock timer to close the last window).
CREATE VIEW bid_proctime AS SELECT *, PROCTIME() AS p_time FROM bid;
CREATE TABLE nexmark_q12 (bidder BIGINT, bid_count BIGINT, starttime TIMESTAMP(3),
  endtime TIMESTAMP(3)) WITH ('connector' = 'blackhole');
INSERT INTO nexmark_q12
SELECT bidder, COUNT(*) AS bid_count, window_start AS starttime, window_end AS endtime
FROM TABLE(TUMBLE(TABLE bid_proctime, DESCRIPTOR(p_time), INTERVAL '10' SECOND))
GROUP BY bidder, window_start, window_end;
