-- A leaderboard in Redis: Nexmark's online auction (person, auction and bid events in
-- Nexmark's proportions 1:3:46), the top bidders of each hour by the total they bid, kept
-- in a Redis sorted set per hour that applications read at memory speed:
--   ZREVRANGE leaderboard:<hour start in ms> 0 9 WITHSCORES

-- 'keys': the auction's people (bidders and sellers) and auctions come back after 1,000
-- and 3,000, so that an hour's leaderboard holds a bounded number of bidders however long
-- the demo runs.
CREATE SOURCE CONNECTOR IF NOT EXISTS nexmark_gen WITH (
  'connector.class'='datagen', 'generator'='nexmark', 'rate'='200', 'keys'='1000');

CREATE STREAM IF NOT EXISTS bids (
    auction_key STRING KEY, auction BIGINT, bidder BIGINT, price BIGINT, channel STRING,
    url STRING, dateTime BIGINT
) WITH (kafka_topic='bid', value_format='JSON');

CREATE TABLE IF NOT EXISTS bidder_totals AS
  SELECT bidder, SUM(price) AS total, COUNT(*) AS bids
  FROM bids WINDOW TUMBLING (SIZE 1 HOUR, GRACE PERIOD 1 MINUTE)
  GROUP BY bidder;

-- Totals only grow within an hour: ZADD GT keeps the highest, and a replay changes nothing.
CREATE SINK CONNECTOR IF NOT EXISTS leaderboard WITH (
  'connector.class'='redis', 'source'='BIDDER_TOTALS',
  'redis.mode'='zset', 'zset.key'='leaderboard:{WINDOWSTART}', 'score.column'='TOTAL',
  'zset.update'='gt', 'zset.max.members'='100', 'ttl.seconds'='86400');
