-- The Sense HAT devices (DEMOS.md section 1). Each device (`hispeed demo device --id device1`)
-- sends a reading four times a second to the topic named after it (key "message") and its
-- joystick events (key "alert") to `<device>alerts` and `<device>`; a "held" event also
-- goes to the shared `alerts`. It shows on its LED what arrives on `<device>alerts`,
-- `alerts` and `<device>commands`.

-- What a device's topic holds: readings, and its own joystick events (key "alert").
CREATE STREAM IF NOT EXISTS device1_raw (
    kind STRING KEY,
    orentation STRUCT<pitch DOUBLE, roll DOUBLE, yaw DOUBLE>,
    compass STRUCT<x DOUBLE, y DOUBLE, z DOUBLE>,
    gyroscope STRUCT<x DOUBLE, y DOUBLE, z DOUBLE>,
    accelerometer STRUCT<x DOUBLE, y DOUBLE, z DOUBLE>,
    button STRING, direction STRING, device STRING
) WITH (kafka_topic='device1', value_format='JSON', partitions=1);

CREATE STREAM IF NOT EXISTS device2_raw (
    kind STRING KEY,
    orentation STRUCT<pitch DOUBLE, roll DOUBLE, yaw DOUBLE>,
    compass STRUCT<x DOUBLE, y DOUBLE, z DOUBLE>,
    gyroscope STRUCT<x DOUBLE, y DOUBLE, z DOUBLE>,
    accelerometer STRUCT<x DOUBLE, y DOUBLE, z DOUBLE>,
    button STRING, direction STRING, device STRING
) WITH (kafka_topic='device2', value_format='JSON', partitions=1);

-- Readings of every device in one stream, flat, keyed by the device: what the charts draw
-- (compass and gyroscope x/y, and the "speed" gauge: accelerometer x * 100).
CREATE STREAM IF NOT EXISTS readings (
    device STRING KEY, compass_x DOUBLE, compass_y DOUBLE, gyro_x DOUBLE, gyro_y DOUBLE,
    speed DOUBLE, pitch DOUBLE, roll DOUBLE, yaw DOUBLE
) WITH (kafka_topic='readings', value_format='JSON', partitions=1);

INSERT INTO readings
  SELECT 'device1' AS device, compass->x AS compass_x, compass->y AS compass_y,
         gyroscope->x AS gyro_x, gyroscope->y AS gyro_y, accelerometer->x * 100 AS speed,
         orentation->pitch AS pitch, orentation->roll AS roll, orentation->yaw AS yaw
  FROM device1_raw WHERE kind = 'message'
  PARTITION BY 'device1';

INSERT INTO readings
  SELECT 'device2' AS device, compass->x AS compass_x, compass->y AS compass_y,
         gyroscope->x AS gyro_x, gyroscope->y AS gyro_y, accelerometer->x * 100 AS speed,
         orentation->pitch AS pitch, orentation->roll AS roll, orentation->yaw AS yaw
  FROM device2_raw WHERE kind = 'message'
  PARTITION BY 'device2';

-- Joystick events, as the course routes them: each device's own, and the shared `alerts`
-- that every device shows (in blue when it came from another one).
CREATE STREAM IF NOT EXISTS joystick (kind STRING KEY, button STRING, direction STRING, device STRING)
  WITH (kafka_topic='alerts', value_format='JSON', partitions=1);
CREATE STREAM IF NOT EXISTS device1_alerts (kind STRING KEY, button STRING, direction STRING, device STRING)
  WITH (kafka_topic='device1alerts', value_format='JSON', partitions=1);
CREATE STREAM IF NOT EXISTS device2_alerts (kind STRING KEY, button STRING, direction STRING, device STRING)
  WITH (kafka_topic='device2alerts', value_format='JSON', partitions=1);

-- A per-device summary of each minute.
CREATE TABLE IF NOT EXISTS device_minutes AS
  SELECT device, COUNT(*) AS readings, AVG(speed) AS avg_speed, MAX(speed) AS max_speed,
         AVG(compass_x) AS avg_compass_x, AVG(compass_y) AS avg_compass_y
  FROM readings WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS)
  GROUP BY device;

-- Commands back to the devices: when device1's joystick is pressed up, device2's LED shows
-- a yellow arrow up, and the other way round.
CREATE STREAM IF NOT EXISTS device2_commands
  WITH (kafka_topic='device2commands', value_format='JSON', partitions=1) AS
  SELECT kind, device, direction, 'yellow' AS color FROM device1_alerts
  WHERE button = 'pressed' AND direction = 'up';

CREATE STREAM IF NOT EXISTS device1_commands
  WITH (kafka_topic='device1commands', value_format='JSON', partitions=1) AS
  SELECT kind, device, direction, 'yellow' AS color FROM device2_alerts
  WHERE button = 'pressed' AND direction = 'up';
