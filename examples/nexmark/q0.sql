-- Nexmark q0, pass-through: every bid as it is (the cost of reading and writing).
CREATE STREAM q0 AS SELECT auction, bidder, price, dateTime, extra FROM bid EMIT CHANGES;
