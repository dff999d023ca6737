-- Nexmark q15, bidding statistics per day: how many bids, bidders and auctions, in all and
-- in three price bands (under 10,000; 10,000 to under 1,000,000; 1,000,000 and over).
-- COUNT(DISTINCT ...) and FILTER (WHERE ...) on aggregate calls are past ksqlDB
-- (docs/sql.md). Grouped by the day's text, as Nexmark's query is, not by a window: the
-- table keeps one row per day, updated as bids come.
CREATE TABLE q15 AS SELECT TIMESTAMPTOSTRING(dateTime, 'yyyy-MM-dd', 'UTC') AS day,
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
  FROM bid GROUP BY TIMESTAMPTOSTRING(dateTime, 'yyyy-MM-dd', 'UTC') EMIT CHANGES;
