-- stock_movements: what this service did with each order's stock, at most one
-- deduct and one release per order. applied = 0 records an event that was
-- consumed without touching stock (older sale, unknown product, or a deduction
-- the DB refused), so the matching close is recognised as a no-op too.
-- redis_applied = 1 once a release was given back in Redis.
CREATE TABLE IF NOT EXISTS stock_movements (
  id            BIGINT       NOT NULL AUTO_INCREMENT,
  order_id      VARCHAR(128) NOT NULL,
  kind          VARCHAR(16)  NOT NULL,
  product_id    VARCHAR(64)  NOT NULL,
  user_id       VARCHAR(128) NOT NULL DEFAULT '',
  quantity      INT          NOT NULL,
  sale_id       BIGINT       NOT NULL,
  applied       BOOLEAN      NOT NULL,
  note          VARCHAR(32)  NOT NULL DEFAULT '',
  redis_applied BOOLEAN      NOT NULL DEFAULT FALSE,
  created_at    DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY stock_movements_order_kind (order_id, kind),
  KEY stock_movements_product_sale (product_id, sale_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
