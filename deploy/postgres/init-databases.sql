-- One database per service: no service reads another's tables.
CREATE DATABASE points;
CREATE DATABASE rewards;
CREATE DATABASE alerts;
