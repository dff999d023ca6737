-- Nexmark q19, auction Top-N: the 10 highest bids of each auction, kept up to date (a bid
-- that enters moves those below it down a rank; the one pushed past 10 leaves). A table
-- keyed by (auction, rank_number), so its key format must hold two columns: JSON.
CREATE TABLE q19 WITH (key_format='JSON') AS
  SELECT auction, rank_number, bidder, price, channel, url, dateTime, extra
  FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number
        FROM bid)
  WHERE rank_number <= 10 EMIT CHANGES;
