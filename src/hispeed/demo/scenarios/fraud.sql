-- Fraud detection (DEMOS.md section 4): a card tried more than three times in five seconds
-- looks stolen. The generator sends card authorizations, 20 a second, with one burst of six
-- attempts from one card in every fifty.

CREATE SOURCE CONNECTOR IF NOT EXISTS authorizations_gen WITH (
  'connector.class'='datagen', 'generator'='authorization_attempts', 'rate'='20');

CREATE STREAM IF NOT EXISTS authorization_attempts (
    card_number VARCHAR KEY, amount DOUBLE, merchant VARCHAR, country VARCHAR
) WITH (kafka_topic='authorization_attempts', value_format='JSON');

-- The course's query, verbatim but for the GRACE PERIOD: without one a window stays open
-- for late records for a day (ksqlDB's default), so the table would keep a day of five-second
-- windows of every card. Its COUNT(*) has no name: ksqlDB calls it KSQL_COL_0.
CREATE TABLE IF NOT EXISTS possible_fraud AS
 SELECT card_number, count(*)
 FROM authorization_attempts  WINDOW TUMBLING (SIZE 5 SECONDS, GRACE PERIOD 10 SECONDS)
 GROUP BY card_number
 HAVING count(*) > 3;

-- Each alert published as it happens: `SUBSCRIBE fraud-alerts` in redis-cli sees them,
-- and so does the dashboard's fraud panel.
CREATE SINK CONNECTOR IF NOT EXISTS fraud_alerts WITH (
  'connector.class'='redis', 'source'='POSSIBLE_FRAUD',
  'redis.mode'='publish', 'channel'='fraud-alerts');

-- The suspicious cards of the last window, kept in Redis for an hour: HGETALL fraud:<card>
CREATE SINK CONNECTOR IF NOT EXISTS fraud_cards WITH (
  'connector.class'='redis', 'source'='POSSIBLE_FRAUD',
  'redis.mode'='hash', 'key.template'='fraud:{CARD_NUMBER}', 'ttl.seconds'='3600');
