-- Weather and drone streams (DEMOS.md section 3): weather readings from nine stations about
-- 20 a second, a drone's position and visitor count once a second, and the course's join.

CREATE SOURCE CONNECTOR IF NOT EXISTS weather_gen WITH (
  'connector.class'='datagen', 'generator'='weather', 'rate'='20');
CREATE SOURCE CONNECTOR IF NOT EXISTS drone_gen WITH (
  'connector.class'='datagen', 'generator'='drone', 'rate'='1');

-- JSON field names match columns whatever their case ("WeatherStation" is WEATHERSTATION).
CREATE STREAM IF NOT EXISTS WEATHER (
    station_key STRING KEY, WeatherStation INT, Temperature DOUBLE, Humidity DOUBLE,
    Sensor1 DOUBLE, Sensor2 DOUBLE
) WITH (kafka_topic='weather', value_format='JSON');

CREATE STREAM IF NOT EXISTS DRONE (
    drone_key STRING KEY, WeatherStation INT, Latitude DOUBLE, Longitude DOUBLE,
    NumberVisitors INT
) WITH (kafka_topic='drone', value_format='JSON');

-- The course's query, as a persistent stream: each drone reading with the weather readings
-- of its station taken about the same time. (As a query of its own it needs EMIT CHANGES:
-- without it, a SELECT is a pull query, and hispeed answers as ksqlDB does: "Pull queries
-- don't support JOIN clauses. ... Add EMIT CHANGES if you intended to issue a push query.")
-- The course writes `WITHIN 1 HOURS`: over these generators (a station's weather about
-- twice a second) each drone reading then matches every reading of its station in the
-- hour before and after, so the output grows for an hour to thousands of rows a second and
-- the join keeps a day of both streams (ksqlDB's default grace). Five seconds keeps the
-- meaning, about 20 rows a second, and a GRACE PERIOD bounds what the join keeps.
CREATE STREAM IF NOT EXISTS drone_weather AS
select * from DRONE d
LEFT OUTER JOIN WEATHER w  WITHIN 5 SECONDS GRACE PERIOD 5 SECONDS
on d.weatherstation = w.weatherstation;

-- Per-station averages, kept up to date.
CREATE TABLE IF NOT EXISTS station_averages AS
  SELECT WeatherStation, COUNT(*) AS readings, AVG(Temperature) AS avg_temperature,
         AVG(Humidity) AS avg_humidity, AVG(Sensor1) AS avg_sensor1, AVG(Sensor2) AS avg_sensor2
  FROM WEATHER
  GROUP BY WeatherStation;
