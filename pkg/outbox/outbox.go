// Package outbox is the transactional outbox of a service's database. A
// handler that decides something writes the events of its decision with Add
// in the same transaction as the decision itself, so the decision and its
// events commit together or not at all. A Relay hands the rows to the
// broker afterwards and deletes each once the broker has stored it: a crash,
// a failed send or a broker outage delays an event and loses none. Delivery
// is at least once (a relay that dies between the send and the delete sends
// again), so consumers deduplicate on the event ID.
package outbox

import (
	"fmt"
	"io/fs"
	"strings"
	"time"

	"gorm.io/gorm"

	"seckill/pkg/mq"
	"seckill/pkg/outbox/migrations"
)

// Migrations holds the outbox_messages table; run it with db.Migrate in every
// service that uses Add.
var Migrations fs.FS = migrations.FS

// row is one outbox_messages row.
type row struct {
	ID         int64 `gorm:"primaryKey"`
	Topic      string
	Tag        string
	MsgKey     string
	DelayLevel int
	Body       []byte
	CreatedAt  time.Time
}

func (row) TableName() string { return "outbox_messages" }

// Add writes ms into the outbox inside tx, in one statement. A message's
// first key becomes its key and, when it has one, its sharding key too (the
// broker keeps one order's events in one queue); further keys are dropped.
func Add(tx *gorm.DB, ms ...mq.Outgoing) error {
	if len(ms) == 0 {
		return nil
	}
	now := time.Now().UTC()
	rows := make([]row, len(ms))
	for i, m := range ms {
		if m.Topic == "" {
			return fmt.Errorf("outbox: message %d without topic", i)
		}
		key := m.ShardingKey
		if key == "" && len(m.Keys) > 0 {
			key = m.Keys[0]
		}
		rows[i] = row{Topic: m.Topic, Tag: m.Tag, MsgKey: key, DelayLevel: m.DelayLevel, Body: m.Body, CreatedAt: now}
	}
	if err := tx.Create(&rows).Error; err != nil {
		tags := make([]string, len(ms))
		for i, m := range ms {
			tags[i] = m.Tag
		}
		return fmt.Errorf("outbox: add %d messages (%s): %w", len(ms), strings.Join(tags, ","), err)
	}
	return nil
}

// message is the outgoing message of r.
func (r row) message() mq.Outgoing {
	m := mq.Outgoing{Topic: r.Topic, Tag: r.Tag, DelayLevel: r.DelayLevel, Body: r.Body}
	if r.MsgKey != "" {
		m.Keys, m.ShardingKey = []string{r.MsgKey}, r.MsgKey
	}
	return m
}
