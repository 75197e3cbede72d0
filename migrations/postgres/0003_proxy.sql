-- What the proxy predicted for a candidate when a round proposed it (mean and standard
-- deviation in the oracle's units); null for candidates proposed before a proxy existed and
-- for imported ones.
alter table candidates add column proxy_mean double precision;
alter table candidates add column proxy_std double precision;
