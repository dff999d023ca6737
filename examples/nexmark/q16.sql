-- Nexmark q16, channel statistics per day: q15's counts per channel and day, with the
-- latest minute (HH:mm, UTC) of the day the channel had a bid in. Past ksqlDB: COUNT(DISTINCT
-- ...) and FILTER (WHERE ...) (docs/sql.md).
CREATE TABLE q16 WITH (key_format='JSON') AS SELECT channel,
  TIMESTAMPTOSTRING(dateTime, 'yyyy-MM-dd', 'UTC') AS day,
  MAX(TIMESTAMPTOSTRING(dateTime, 'HH:mm', 'UTC')) AS minute,
  COUNT(*) AS total_bids,
  COUNT(*) FILTER (WHERE price < 10000) AS rank1_bids,
  COUNT(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
  COUNT(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
  COUNT(DISTINCT bidder) AS total_bidders,
  COUNT(DISTINCT bidder) FILTER (WHERE price < 10000) AS rank1_bidders,
  COUNT(DISTINCT bidder) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bidders,
  COUNT(DISTINCT bidder) FILTER (WHERE price >= 1000000) AS rank3_bidders,
  COUNT(DISTINCT auction) AS total_auctions,
  COUNT(DISTINCT auction) FILTER (WHERE price < 10000) AS rank1_auctions,
  COUNT(DISTINCT auction) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_auctions,
  COUNT(DISTINCT auction) FILTER (WHERE price >= 1000000) AS rank3_auctions
  FROM bid GROUP BY channel, TIMESTAMPTOSTRING(dateTime, 'yyyy-MM-dd', 'UTC') EMIT CHANGES;
