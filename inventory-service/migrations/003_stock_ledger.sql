-- stock_ledger: the globally ordered journal written by the orderly
-- STOCK_LEDGER consumer. seq is the global order. For a product's current sale
-- SUM(delta) = -products.sold.
CREATE TABLE IF NOT EXISTS stock_ledger (
  seq        BIGINT       NOT NULL AUTO_INCREMENT,
  event_id   VARCHAR(160) NOT NULL,
  order_id   VARCHAR(128) NOT NULL,
  product_id VARCHAR(64)  NOT NULL,
  sale_id    BIGINT       NOT NULL,
  kind       VARCHAR(16)  NOT NULL,
  delta      INT          NOT NULL,
  created_at DATETIME(6)  NOT NULL,
  PRIMARY KEY (seq),
  UNIQUE KEY stock_ledger_event (event_id),
  KEY stock_ledger_product_sale (product_id, sale_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
