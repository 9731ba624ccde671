-- First-start initialisation of the mysql container (docker-compose.yml):
-- one database and one user per service. The passwords are EXAMPLES; change
-- them here and in docker-compose.yml (MYSQL_DSN) for anything but a demo.
-- Each service creates its tables itself (migrations) when it starts.
CREATE DATABASE IF NOT EXISTS seckill_order     CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS seckill_inventory CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS seckill_payment   CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS seckill_logistics CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE USER IF NOT EXISTS 'order'@'%'     IDENTIFIED BY 'order-change-me';
CREATE USER IF NOT EXISTS 'inventory'@'%' IDENTIFIED BY 'inventory-change-me';
CREATE USER IF NOT EXISTS 'payment'@'%'   IDENTIFIED BY 'payment-change-me';
CREATE USER IF NOT EXISTS 'logistics'@'%' IDENTIFIED BY 'logistics-change-me';

-- Each user sees only its own service's database (database per service).
GRANT ALL PRIVILEGES ON seckill_order.*     TO 'order'@'%';
GRANT ALL PRIVILEGES ON seckill_inventory.* TO 'inventory'@'%';
GRANT ALL PRIVILEGES ON seckill_payment.*   TO 'payment'@'%';
GRANT ALL PRIVILEGES ON seckill_logistics.* TO 'logistics'@'%';
FLUSH PRIVILEGES;
