-- Nexmark's events as a Flink user declares them: one source table whose rows each hold a
-- person, an auction or a bid (a ROW per kind, `event_type` saying which), the event time
-- computed from the kind's own, and a view per kind. hispeed runs this text unchanged: the
-- table reads its events from the topics `person`, `auction` and `bid`
-- (`hispeed.demo.nexmark.fill_log`, or the datagen connector's 'generator'='nexmark_spec'),
-- and each view is a stream over its kind's topic (docs/sql.md, "Flink SQL's DDL").
CREATE TABLE nexmark (
  event_type INT,
  person ROW<id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR,
    city VARCHAR, state VARCHAR, `dateTime` TIMESTAMP(3), extra VARCHAR>,
  auction ROW<id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT,
    reserve BIGINT, `dateTime` TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT,
    category BIGINT, extra VARCHAR>,
  bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
    `dateTime` TIMESTAMP(3), extra VARCHAR>,
  `dateTime` AS CASE event_type WHEN 0 THEN person.`dateTime`
    WHEN 1 THEN auction.`dateTime` ELSE bid.`dateTime` END,
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events.num' = '10000');

CREATE VIEW person AS SELECT person.id, person.name, person.emailAddress,
  person.creditCard, person.city, person.state, `dateTime`, person.extra
  FROM nexmark WHERE event_type = 0;

CREATE VIEW auction AS SELECT auction.id, auction.itemName, auction.description,
  auction.initialBid, auction.reserve, `dateTime`, auction.expires, auction.seller,
  auction.category, auction.extra
  FROM nexmark WHERE event_type = 1;

CREATE VIEW bid AS SELECT bid.auction, bid.bidder, bid.price, bid.channel, bid.url,
  `dateTime`, bid.extra
  FROM nexmark WHERE event_type = 2;
