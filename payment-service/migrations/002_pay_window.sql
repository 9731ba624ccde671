-- The pay window, decided here (payment-service is the arbiter of paid vs
-- expired): pay_deadline is fixed when the order is accepted; a row may be
-- inserted by a pay, a pay timeout or the created event, whichever comes
-- first, and the others complete it. status: pending -> paid (before the
-- deadline) | expired (after it) | cancelled (inventory refused it);
-- paid -> refunded (inventory refused it after the payment).
ALTER TABLE payments
    ADD COLUMN user_id      VARCHAR(64) NOT NULL DEFAULT '' AFTER amount_cents,
    ADD COLUMN product_id   VARCHAR(64) NOT NULL DEFAULT '' AFTER user_id,
    ADD COLUMN quantity     INT         NOT NULL DEFAULT 0  AFTER product_id,
    ADD COLUMN accepted_at  DATETIME(3) NULL AFTER quantity,
    ADD COLUMN pay_deadline DATETIME(3) NULL AFTER accepted_at,
    ADD COLUMN paid_at      DATETIME(3) NULL AFTER pay_deadline,
    ADD KEY idx_payments_status_deadline (status, pay_deadline);
