-- Nexmark q6, average selling price by seller: the average of each seller's last 10 closed
-- auctions' selling prices. An auction's selling price is its winning bid (its highest bid
-- made while it was open, the earlier bid winning a tie), found by ROW_NUMBER() over an
-- interval join (a bid comes at most a minute after its auction: the generator's auctions
-- expire sooner); the seller's auctions are taken in the order they close, each averaged
-- with the 9 that closed before it. The winners change as higher bids come, so the average
-- runs over a table's rows (hispeed keeps each row up to date; Flink refuses an OVER
-- aggregation over an updating input).
CREATE TABLE nexmark_q6 (id BIGINT, seller BIGINT, avg_price DOUBLE)
  WITH ('connector' = 'blackhole');
INSERT INTO nexmark_q6
SELECT W.id, W.seller,
  AVG(W.price) OVER (PARTITION BY W.seller ORDER BY W.expires
    ROWS BETWEEN 9 PRECEDING AND CURRENT ROW)
FROM (SELECT id, seller, price, expires
      FROM (SELECT A.id AS id, A.seller AS seller, B.price AS price, A.expires AS expires,
              ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.`dateTime` ASC)
                AS rownum
            FROM auction AS A, bid AS B
            WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
              AND B.`dateTime` <= A.`dateTime` + INTERVAL '1' MINUTE)
      WHERE rownum <= 1) AS W;
