-- products: one row per product; the row is the truth of the current sale.
-- A PUT resets it: sold back to 0, sale_id + 1, sale_started_at = now.
-- The CHECK keeps the database from ever recording an oversell.
CREATE TABLE IF NOT EXISTS products (
  product_id      VARCHAR(64)  NOT NULL,
  name            VARCHAR(200) NOT NULL,
  price_cents     BIGINT       NOT NULL,
  stock           INT          NOT NULL,
  sold            INT          NOT NULL DEFAULT 0,
  per_user_limit  INT          NOT NULL,
  sale_id         BIGINT       NOT NULL DEFAULT 1,
  sale_started_at DATETIME(6)  NOT NULL,
  updated_at      DATETIME(6)  NOT NULL,
  PRIMARY KEY (product_id),
  CONSTRAINT products_sold_range CHECK (sold >= 0 AND sold <= stock)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
