-- Nexmark q13, bounded side input join: each bid with the value the side input (a table of
-- 10,000 entries by key, loaded beforehand) holds for its auction id modulo 10,000.
CREATE TABLE side_input (key BIGINT PRIMARY KEY, value STRING)
  WITH (kafka_topic='side_input', key_format='KAFKA', value_format='JSON');
CREATE STREAM q13 AS SELECT s.key AS side_key, b.auction AS auction, b.bidder AS bidder,
  b.price AS price, b.dateTime AS dateTime, s.value AS value
  FROM bid b JOIN side_input s ON b.auction % 10000 = s.key EMIT CHANGES;
