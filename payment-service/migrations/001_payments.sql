-- One payment per order. status: pending -> paid | cancelled; paid -> refunded.
-- Every change is a conditional UPDATE on status, so pay and close cannot both win.
CREATE TABLE IF NOT EXISTS payments (
    order_id     VARCHAR(64) NOT NULL,
    amount_cents BIGINT      NOT NULL,
    status       VARCHAR(16) NOT NULL,
    created_at   DATETIME(6) NOT NULL,
    updated_at   DATETIME(6) NOT NULL,
    PRIMARY KEY (order_id),
    KEY idx_payments_status (status)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
