-- Nexmark q10, log to file system: each bid with its day and hour (the partitions Nexmark
-- writes files into; here a blackhole sink, hispeed's topic NEXMARK_Q10).
CREATE TABLE nexmark_q10 (auction BIGINT, bidder BIGINT, price BIGINT,
  `dateTime` TIMESTAMP(3), extra VARCHAR, dt VARCHAR, hm VARCHAR)
  WITH ('connector' = 'blackhole');
INSERT INTO nexmark_q10
SELECT auction, bidder, price, `dateTime`, extra,
  DATE_FORMAT(`dateTime`, 'yyyy-MM-dd'), DATE_FORMAT(`dateTime`, 'HH')
FROM bid;
