-- Written by hand (drizzle-kit does not track storage parameters).
-- Every order updates its products' inventory and updated_at. Neither is indexed, so the update
-- can be HOT (no index entries written, the trigram ones included) when the new row version fits
-- on the same page: leave room on each page for it. Pages written from now on keep 10 % free;
-- existing full pages gain room as rows move off them (or at once with VACUUM FULL products).
ALTER TABLE "products" SET (fillfactor = 90);
