-- Nexmark q4, average price per category: the winning (highest) bid of each auction among
-- the bids made while it was open, then the average of those winning prices per category.
-- An aggregation over an aggregated table: each auction's maximum is a table row (by id
-- and category) that a higher bid replaces, and the average per category takes the old
-- maximum back and adds the new one (a table aggregation, with retractions).
-- 1. each auction's highest bid while it was open. Each bid looks its auction up in the
-- table of auctions by id as of the bid's time (a stream-table join): an auction never
-- changes, and a bid made before its auction appeared (the generator's lead) is outside
-- the auction's lifetime anyway, so this is Flink's join of the two streams without
-- keeping the bids.
CREATE TABLE q4_max WITH (key_format='JSON') AS
  SELECT A.id AS id, A.category AS category, MAX(B.price) AS final
  FROM bid B JOIN auction_by_id A ON B.auction = A.id
  WHERE B.dateTime BETWEEN A.dateTime AND A.expires
  GROUP BY A.id, A.category EMIT CHANGES;
-- 2. the average winning price per category, over that table
CREATE TABLE q4 AS SELECT category, AVG(final) AS avg_final
  FROM q4_max GROUP BY category EMIT CHANGES;
