-- Nexmark q4, average price for a category: each auction's winning bid (the highest bid
-- made while it was open), then the average of the winning bids per category. Auctions are
-- read as a table by id (upsert-kafka over the `auction` topic, keyed by id).
CREATE TABLE auction_by_id (id BIGINT, itemName VARCHAR, description VARCHAR,
  initialBid BIGINT, reserve BIGINT, `dateTime` TIMESTAMP(3), expires TIMESTAMP(3),
  seller BIGINT, category BIGINT, extra VARCHAR,
  PRIMARY KEY (id) NOT ENFORCED,
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND)
  WITH ('connector' = 'upsert-kafka', 'topic' = 'auction', 'key.format' = 'raw',
    'value.format' = 'json');
CREATE VIEW q4_winning AS
SELECT A.id AS id, A.category AS category, MAX(B.price) AS final
FROM bid AS B JOIN auction_by_id AS A ON B.auction = A.id
WHERE B.`dateTime` BETWEEN A.`dateTime` AND A.expires
GROUP BY A.id, A.category;
CREATE TABLE nexmark_q4 (category BIGINT, avg_final DOUBLE) WITH ('connector' = 'blackhole');
INSERT INTO nexmark_q4
SELECT category, AVG(final) FROM q4_winning GROUP BY category;
