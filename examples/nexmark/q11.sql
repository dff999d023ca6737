-- Nexmark q11, user sessions: how many bids each bidder made in each session of activity
-- (a session ends after 10 seconds without a bid).
CREATE TABLE q11 AS SELECT bidder, COUNT(*) AS bid_count,
  WINDOWSTART AS starttime, WINDOWEND AS endtime
  FROM bid WINDOW SESSION (10 SECONDS) GROUP BY bidder EMIT CHANGES;
