-- Nexmark q18 as Flink SQL says it (the query of its INSERT INTO, over the `bid` view).
-- hispeed runs it unchanged as the query of a CREATE TABLE ... AS (see docs/nexmark.md).
SELECT auction, bidder, price, channel, url, dateTime, extra
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY dateTime DESC)
        AS rank_number
      FROM bid)
WHERE rank_number <= 1;
