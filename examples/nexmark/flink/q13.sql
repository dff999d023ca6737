-- Nexmark q13, bounded side input join: each bid with the side input's value for its
-- auction modulo 10,000. The side input is a table by key (Flink's upsert-kafka connector
-- over hispeed's topic `side_input`, which `fill_side_input` fills), looked up by each bid.
CREATE TABLE side_input (key BIGINT, `value` VARCHAR, PRIMARY KEY (key) NOT ENFORCED)
  WITH ('connector' = 'upsert-kafka', 'topic' = 'side_input', 'key.format' = 'raw',
    'value.format' = 'json');
CREATE TABLE nexmark_q13 (side_key BIGINT, auction BIGINT, bidder BIGINT, price BIGINT,
  `dateTime` TIMESTAMP(3), `value` VARCHAR) WITH ('connector' = 'blackhole');
INSERT INTO nexmark_q13
SELECT S.key, B.auction, B.bidder, B.price, B.`dateTime`, S.`value`
FROM bid AS B JOIN side_input AS S ON MOD(B.auction, 10000) = S.key;
