-- Nexmark q20, expand bid with auction: the bids on category-10 auctions, each with its
-- auction's details. Auctions are read as a table by id (the `auction` topic is keyed by
-- id: Flink's upsert-kafka connector), so each bid joins its auction's row as a lookup.
CREATE TABLE auction_by_id (id BIGINT, itemName VARCHAR, description VARCHAR,
  initialBid BIGINT, reserve BIGINT, `dateTime` TIMESTAMP(3), expires TIMESTAMP(3),
  seller BIGINT, category BIGINT, extra VARCHAR,
  PRIMARY KEY (id) NOT ENFORCED,
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND)
  WITH ('connector' = 'upsert-kafka', 'topic' = 'auction', 'key.format' = 'raw',
    'value.format' = 'json');
CREATE TABLE nexmark_q20 (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR,
  url VARCHAR, bid_dateTime TIMESTAMP(3), itemName VARCHAR, description VARCHAR,
  initialBid BIGINT, reserve BIGINT, auction_dateTime TIMESTAMP(3), expires TIMESTAMP(3),
  seller BIGINT, category BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO nexmark_q20
SELECT B.auction, B.bidder, B.price, B.channel, B.url, B.`dateTime`, A.itemName,
  A.description, A.initialBid, A.reserve, A.`dateTime`, A.expires, A.seller, A.category
FROM bid AS B INNER JOIN auction_by_id AS A ON B.auction = A.id
WHERE A.category = 10;
