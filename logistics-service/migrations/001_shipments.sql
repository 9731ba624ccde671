-- One shipment per confirmed order: order_id is the key, so even a confirmed
-- event applied twice under different dedup keys cannot ship twice.
CREATE TABLE IF NOT EXISTS shipments (
    order_id    VARCHAR(64) NOT NULL,
    shipment_id VARCHAR(64) NOT NULL,
    status      VARCHAR(16) NOT NULL,
    created_at  DATETIME(6) NOT NULL,
    PRIMARY KEY (order_id),
    UNIQUE KEY uk_shipments_shipment_id (shipment_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
