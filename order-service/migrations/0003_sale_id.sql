-- sale_id is the inventory sale whose Redis stock the order took its units
-- from (the reservation script reads it from the product's info hash), so
-- a sale's orders are selected by it, not by comparing clocks. 0: persisted
-- before the column existed, or from an event without it.
ALTER TABLE orders
    ADD COLUMN sale_id BIGINT NOT NULL DEFAULT 0 AFTER product_id;
