-- Nexmark q18, find last bid: each bidder's latest bid on each auction (deduplication:
-- ROW_NUMBER() ordered by time descending, rank 1 kept; a newer bid replaces the row).
-- A table keyed by (bidder, auction), so its key format must hold two columns: JSON.
CREATE TABLE q18 WITH (key_format='JSON') AS
  SELECT bidder, auction, price, channel, url, dateTime, extra
  FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY dateTime DESC)
          AS rank_number
        FROM bid)
  WHERE rank_number <= 1 EMIT CHANGES;
