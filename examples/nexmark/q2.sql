-- Nexmark q2, selection: the bids on auctions whose id is a multiple of 123.
CREATE STREAM q2 AS SELECT auction, price FROM bid WHERE auction % 123 = 0 EMIT CHANGES;
