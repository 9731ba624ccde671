-- orders is the persisted order; status moves created → paid → shipped or
-- created → closed, always by a conditional UPDATE ... WHERE status = <from>.
CREATE TABLE IF NOT EXISTS orders (
    order_id     VARCHAR(64)  NOT NULL,
    user_id      VARCHAR(64)  NOT NULL,
    product_id   VARCHAR(64)  NOT NULL,
    quantity     INT          NOT NULL,
    amount_cents BIGINT       NOT NULL,
    status       VARCHAR(16)  NOT NULL,
    close_reason VARCHAR(16)  NOT NULL DEFAULT '',
    created_at   DATETIME(3)  NOT NULL,
    updated_at   DATETIME(3)  NOT NULL,
    PRIMARY KEY (order_id),
    KEY idx_orders_status_created (status, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
