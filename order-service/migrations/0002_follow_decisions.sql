-- order-service follows the decisions made elsewhere: payment-service decides
-- paid or expired against pay_deadline (fixed at acceptance), inventory-service
-- deducts (deducted = 1) or refuses. A paid and deducted order is confirmed for
-- shipping, once.
ALTER TABLE orders
    ADD COLUMN pay_deadline DATETIME(3) NULL AFTER amount_cents,
    ADD COLUMN deducted     BOOLEAN     NOT NULL DEFAULT FALSE AFTER status;
