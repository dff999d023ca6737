-- Clickstream analytics (DEMOS.md section 4): page views joined to users, the VIPs' actions,
-- and unique visitors per page.

CREATE SOURCE CONNECTOR IF NOT EXISTS users_gen WITH (
  'connector.class'='datagen', 'generator'='users', 'keys'='100', 'rate'='20');
CREATE SOURCE CONNECTOR IF NOT EXISTS clickstream_gen WITH (
  'connector.class'='datagen', 'generator'='clickstream', 'keys'='100', 'rate'='50');

-- The course's statement, verbatim.
CREATE STREAM IF NOT EXISTS clickstream
( time BIGINT, url VARCHAR, status INTEGER, bytes INTEGER, userid VARCHAR, agent VARCHAR)
WITH ( value_format = 'JSON', kafka_topic='my_clickstream_topic' );

-- The course's `users` statement does not run as written:
--
--   CREATE TABLE users
--   ( user_id INTEGER, registered_at LONG, username VARCHAR, name VARCHAR, city VARCHAR, level VARCHAR)
--   WITH ( key = 'user_id', 'kafka_topic=‘clickstream_users', value_format='JSON');
--
-- hispeed says:
--   line 3:38: Syntax Error
--   Syntax error at or near '‘': a typographic quote inside the string
--   'kafka_topic=‘clickstream_users'; write the property with straight quotes around its
--   value only: kafka_topic='clickstream_users'
-- and once the quotes are straight, the old `key = ...` property is refused too:
--   line 3:8: KEY is not a property any more: declare the key in the column list, like
--   `user_id INTEGER PRIMARY KEY` for a table or `user_id INTEGER KEY` for a stream
-- The users' ids arrive as the records' keys, as text, the same type as the clicks'
-- `userid`, so the join can compare them:
CREATE TABLE IF NOT EXISTS users
( user_id VARCHAR PRIMARY KEY, registered_at BIGINT, username VARCHAR, name VARCHAR,
  city VARCHAR, level VARCHAR)
WITH ( kafka_topic='clickstream_users', value_format='JSON' );

-- The course's `vip_actions` selects `fullname`, which neither source has:
--   line 2:16: Invalid Select: SELECT column 'FULLNAME' cannot be resolved. The columns
--   here are: TIME, URL, STATUS, BYTES, USERID, AGENT, ..., USER_ID, REGISTERED_AT,
--   USERNAME, NAME, CITY, LEVEL
-- The user's full name is `name`:
CREATE STREAM IF NOT EXISTS vip_actions AS
SELECT userid, name AS fullname, url, status  FROM clickstream c
LEFT JOIN users u ON c.userid = u.user_id
WHERE u.level = 'Platinum';

-- Unique visitors per page (exactly; the Redis example keeps an approximate HyperLogLog).
CREATE TABLE IF NOT EXISTS page_visitors AS
  SELECT url, COUNT_DISTINCT(userid) AS unique_visitors, COUNT(*) AS views
  FROM clickstream
  GROUP BY url;
