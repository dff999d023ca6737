-- Nexmark q9, winning bids: each auction's highest bid made while it was open (between its
-- dateTime and its expires; the earlier bid wins a tie), ROW_NUMBER() over an interval join.
-- WITHIN bounds the join's state: the specification's generator makes every auction expire
-- within twice the time the next 100 auctions take to appear (a third of a second of event
-- time), so one minute holds every bid an auction can win with.
CREATE TABLE q9 WITH (key_format='JSON') AS
  SELECT id, itemName, description, initialBid, reserve, dateTime, expires, seller, category,
    bidder, price, bid_dateTime
  FROM (SELECT A.id AS id, A.itemName AS itemName, A.description AS description,
          A.initialBid AS initialBid, A.reserve AS reserve, A.dateTime AS dateTime,
          A.expires AS expires, A.seller AS seller, A.category AS category,
          B.bidder AS bidder, B.price AS price, B.dateTime AS bid_dateTime,
          ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.dateTime ASC)
            AS rownum
        FROM auction A JOIN bid B WITHIN (0 SECONDS, 1 MINUTE) GRACE PERIOD 0 SECONDS ON A.id = B.auction
        WHERE B.dateTime BETWEEN A.dateTime AND A.expires)
  WHERE rownum <= 1 EMIT CHANGES;
