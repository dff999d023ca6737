-- Nexmark q3, local item suggestion: the category-10 auctions of sellers in Oregon, Idaho or
-- California, with the seller's name and city. Persons are read as a table by id (the
-- `person` topic is keyed by id: Flink's upsert-kafka connector), so each auction joins its
-- seller's row as a lookup; the join key, the seller, comes first.
CREATE TABLE person_by_id (id BIGINT, name VARCHAR, emailAddress VARCHAR,
  creditCard VARCHAR, city VARCHAR, state VARCHAR, `dateTime` TIMESTAMP(3), extra VARCHAR,
  PRIMARY KEY (id) NOT ENFORCED,
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND)
  WITH ('connector' = 'upsert-kafka', 'topic' = 'person', 'key.format' = 'raw',
    'value.format' = 'json');
CREATE TABLE nexmark_q3 (seller BIGINT, name VARCHAR, city VARCHAR, state VARCHAR,
  id BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO nexmark_q3
SELECT A.seller, P.name, P.city, P.state, A.id
FROM auction AS A INNER JOIN person_by_id AS P ON A.seller = P.id
WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
