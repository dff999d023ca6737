-- Nexmark q20, expand bid with auction: each bid on a category-10 auction with the
-- auction's details (a stream-table join by auction id).
CREATE STREAM q20 AS SELECT b.auction AS auction, b.bidder AS bidder, b.price AS price,
  b.channel AS channel, b.url AS url, b.dateTime AS bid_dateTime,
  a.itemName AS itemName, a.description AS description, a.initialBid AS initialBid,
  a.reserve AS reserve, a.dateTime AS auction_dateTime, a.expires AS expires,
  a.seller AS seller, a.category AS category
  FROM bid b JOIN auction_by_id a ON b.auction = a.id
  WHERE a.category = 10 EMIT CHANGES;
