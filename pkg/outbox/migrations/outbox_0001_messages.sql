-- outbox_messages: events a decision produced, written in the decision's own
-- transaction and relayed to the broker afterwards (pkg/outbox). A row is
-- deleted once the broker stored its message.
CREATE TABLE IF NOT EXISTS outbox_messages (
    id          BIGINT       NOT NULL AUTO_INCREMENT,
    topic       VARCHAR(127) NOT NULL,
    tag         VARCHAR(64)  NOT NULL,
    msg_key     VARCHAR(128) NOT NULL,
    delay_level INT          NOT NULL DEFAULT 0,
    body        MEDIUMBLOB   NOT NULL,
    created_at  DATETIME(3)  NOT NULL,
    PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
