-- Nexmark q3, local item suggestion: who sells in category 10 in Oregon, Idaho or
-- California (each new auction joined with its seller's details, a stream-table join).
CREATE STREAM q3 AS SELECT a.seller AS seller, p.name AS name, p.city AS city, p.state AS state, a.id AS id
  FROM auction a JOIN person p ON a.seller = p.id
  WHERE a.category = 10 AND (p.state = 'OR' OR p.state = 'ID' OR p.state = 'CA')
  EMIT CHANGES;
