-- Nexmark's three kinds of events, as `hispeed.demo.nexmark.fill_log` (or the datagen
-- connector's 'generator'='nexmark_spec') writes them: JSON, one topic per kind, keyed by id
-- (bids by auction), record time = the event's dateTime.
CREATE STREAM bid (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  dateTime BIGINT, extra STRING)
  WITH (kafka_topic='bid', key_format='KAFKA', value_format='JSON', timestamp='dateTime');
CREATE STREAM auction (id BIGINT, itemName STRING, description STRING, initialBid BIGINT,
  reserve BIGINT, dateTime BIGINT, expires BIGINT, seller BIGINT, category BIGINT,
  extra STRING)
  WITH (kafka_topic='auction', value_format='JSON', timestamp='dateTime');
-- persons as a table by id (the latest details of each person): what q3 joins auctions with
CREATE TABLE person (id BIGINT PRIMARY KEY, name STRING, emailAddress STRING,
  creditCard STRING, city STRING, state STRING, dateTime BIGINT, extra STRING)
  WITH (kafka_topic='person', key_format='KAFKA', value_format='JSON', timestamp='dateTime');
-- auctions as a table by id: what q20 joins bids with
CREATE TABLE auction_by_id (id BIGINT PRIMARY KEY, itemName STRING, description STRING,
  initialBid BIGINT, reserve BIGINT, dateTime BIGINT, expires BIGINT, seller BIGINT,
  category BIGINT, extra STRING)
  WITH (kafka_topic='auction', key_format='KAFKA', value_format='JSON', timestamp='dateTime');
