-- Nexmark q1, currency conversion: bid prices in euros (dollars x 0.908).
CREATE STREAM q1 AS SELECT auction, bidder, 0.908 * price AS price, dateTime, extra
  FROM bid EMIT CHANGES;
