-- Nexmark q9, winning bids: each auction's highest bid made while it was open (between its
-- dateTime and its expires; the earlier bid wins a tie), ROW_NUMBER() over an interval join
-- (a bid comes at most a minute after its auction: the generator's auctions expire sooner).
CREATE TABLE nexmark_q9 (id BIGINT, itemName VARCHAR, description VARCHAR,
  initialBid BIGINT, reserve BIGINT, `dateTime` TIMESTAMP(3), expires TIMESTAMP(3),
  seller BIGINT, category BIGINT, bidder BIGINT, price BIGINT, bid_dateTime TIMESTAMP(3))
  WITH ('connector' = 'blackhole');
INSERT INTO nexmark_q9
SELECT id, itemName, description, initialBid, reserve, `dateTime`, expires, seller, category,
  bidder, price, bid_dateTime
FROM (SELECT A.id AS id, A.itemName AS itemName, A.description AS description,
        A.initialBid AS initialBid, A.reserve AS reserve, A.`dateTime` AS `dateTime`,
        A.expires AS expires, A.seller AS seller, A.category AS category,
        B.bidder AS bidder, B.price AS price, B.`dateTime` AS bid_dateTime,
        ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.`dateTime` ASC)
          AS rownum
      FROM auction AS A, bid AS B
      WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
        AND B.`dateTime` <= A.`dateTime` + INTERVAL '1' MINUTE)
WHERE rownum <= 1;
