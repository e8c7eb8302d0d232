-- Databases of the services beside the image's POSTGRES_DB (products).
-- A service with a database of its own adds its line here.
CREATE DATABASE orders;
CREATE DATABASE payment;
CREATE DATABASE marketing;
