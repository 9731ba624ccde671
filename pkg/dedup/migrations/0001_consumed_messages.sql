-- consumed_messages records every message (by broker ID and by business key)
-- a consumer applied; the primary key turns a redelivery into a duplicate-key
-- error inside the same transaction as the effect.
CREATE TABLE IF NOT EXISTS consumed_messages (
    consumer   VARCHAR(64)  NOT NULL,
    msg_key    VARCHAR(191) NOT NULL,
    created_at DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (consumer, msg_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
