-- Nexmark q19 as Flink SQL says it (the query of its INSERT INTO, over the `bid` view).
-- hispeed runs it unchanged as the query of a CREATE TABLE ... AS (see docs/nexmark.md).
SELECT * FROM
(SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number
 FROM bid)
WHERE rank_number <= 10;
