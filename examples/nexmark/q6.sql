-- Nexmark q6, average selling price by seller: the average of each seller's last 10 closed
-- auctions' selling prices. An auction's selling price is its winning bid (its highest bid
-- made while it was open, the earlier bid winning a tie: the core q4 and q9 share); the
-- seller's auctions are taken in the order they close (expires), each with the average over
-- itself and the 9 that closed before it (ROWS BETWEEN 9 PRECEDING AND CURRENT ROW).
-- The winners are a table (a higher bid replaces an auction's winner until it closes), so
-- the average runs over a table's rows: each auction's row of Q6 is kept up to date as the
-- winners of it and of the auctions before it change (docs/sql.md; Flink's OVER aggregation
-- refuses such an input). WITHIN bounds the join's state as in q9.
CREATE TABLE q6_winners AS
  SELECT id, seller, price, expires
  FROM (SELECT A.id AS id, A.seller AS seller, B.price AS price, A.expires AS expires,
          ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.dateTime ASC)
            AS rownum
        FROM auction A JOIN bid B WITHIN (0 SECONDS, 1 MINUTE) ON A.id = B.auction
        WHERE B.dateTime BETWEEN A.dateTime AND A.expires)
  WHERE rownum <= 1 EMIT CHANGES;
CREATE TABLE q6 AS
  SELECT id, seller,
    AVG(price) OVER (PARTITION BY seller ORDER BY expires ROWS BETWEEN 9 PRECEDING AND CURRENT ROW)
      AS avg_price
  FROM q6_winners EMIT CHANGES;
