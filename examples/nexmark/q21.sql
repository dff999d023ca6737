-- Nexmark q21, add channel id: the channel's id for the four known channels, otherwise
-- what the URL's channel_id parameter says.
CREATE STREAM q21 AS SELECT auction, bidder, price, channel,
  CASE
    WHEN LCASE(channel) = 'apple' THEN '0'
    WHEN LCASE(channel) = 'google' THEN '1'
    WHEN LCASE(channel) = 'facebook' THEN '2'
    WHEN LCASE(channel) = 'baidu' THEN '3'
    ELSE REGEXP_EXTRACT('(&|^)channel_id=([^&]*)', url, 2)
  END AS channel_id
  FROM bid
  WHERE REGEXP_EXTRACT('(&|^)channel_id=([^&]*)', url, 2) IS NOT NULL
    OR LCASE(channel) IN ('apple', 'google', 'facebook', 'baidu')
  EMIT CHANGES;
