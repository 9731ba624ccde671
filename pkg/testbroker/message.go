package testbroker

// Behavior: stored messages, the properties string and the pull-body layout.
//
// Properties travel as "k\x01v\x02k\x01v\x02". A stored message is encoded
// once, at append time, in the V1 layout client-go's DecodeMessage parses
// (magic 0xDAA320A7, 1-byte topic length, int16 properties length, IPv4
// hosts), so a pull only concatenates bytes. offsetMsgId is the upper-hex of
// storeHost ip ‖ port ‖ commitLogOffset; msgId is UNIQ_KEY or, when absent,
// offsetMsgId.

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net"
	"strconv"
	"strings"
)

// Property keys the broker reads or writes.
const (
	propTags            = "TAGS"
	propKeys            = "KEYS"
	propUniqKey         = "UNIQ_KEY"
	propDelay           = "DELAY"
	propTimerDeliverMS  = "TIMER_DELIVER_MS"
	propRealTopic       = "REAL_TOPIC"
	propRealQueueID     = "REAL_QID"
	propRetryTopic      = "RETRY_TOPIC"
	propOriginMessageID = "ORIGIN_MESSAGE_ID"
	propTranMsg         = "TRAN_MSG"

	messageMagicV1 = 0xDAA320A7

	sysFlagCompressed   = 0x1
	sysFlagTxPrepared   = 0x4
	sysFlagTxCommit     = 0x8
	sysFlagTxRollback   = 0xC
	sysFlagTxMask       = 0xC
	sysFlagBornHostV6   = 0x10
	sysFlagStoreHostV6  = 0x20
	maxPropertiesLength = 32767
)

// Message is a stored message as tests see it (Server.Messages, DLQ).
type Message struct {
	Topic           string
	QueueID         int
	QueueOffset     int64
	CommitLogOffset int64
	MsgID           string // UNIQ_KEY, or OffsetMsgID when the producer set none
	OffsetMsgID     string
	Tags            string
	Keys            string
	Properties      map[string]string
	Body            []byte // as stored: zlib-compressed when SysFlag&1
	SysFlag         int32
	Flag            int32
	ReconsumeTimes  int32
	BornTimestamp   int64
	StoreTimestamp  int64
	BornHost        string
}

// message is the store's internal form.
type message struct {
	topic           string
	queueID         int32
	queueOffset     int64
	commitLogOffset int64
	flag            int32
	sysFlag         int32
	bornTimestamp   int64
	bornHost        hostPort
	storeTimestamp  int64
	storeHost       hostPort
	reconsumeTimes  int32
	preparedTxOff   int64
	dueMs           int64 // delivery time of a scheduled message (unix ms), for the data-dir log
	body            []byte
	props           map[string]string

	wire []byte // pull-body encoding, built by seal
}

type hostPort struct {
	ip   [4]byte
	port int32
}

func parseHostPort(addr string) hostPort {
	var hp hostPort
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return hp
	}
	if ip := net.ParseIP(host).To4(); ip != nil {
		copy(hp.ip[:], ip)
	}
	p, _ := strconv.Atoi(port)
	hp.port = int32(p)
	return hp
}

func (h hostPort) String() string {
	return net.IP(h.ip[:]).String() + ":" + strconv.Itoa(int(h.port))
}

// parseProperties splits "k\x01v\x02..." keeping only well-formed pairs, as
// client-go does.
func parseProperties(s string) map[string]string {
	props := make(map[string]string, 8)
	for len(s) > 0 {
		item := s
		if i := strings.IndexByte(s, 2); i >= 0 {
			item, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		k, v, ok := strings.Cut(item, "\x01")
		if !ok || strings.IndexByte(v, 1) >= 0 {
			continue
		}
		props[k] = v
	}
	return props
}

func offsetMsgID(store hostPort, commitLogOffset int64) string {
	return string(appendOffsetMsgID(make([]byte, 0, 32), store, commitLogOffset))
}

// appendOffsetMsgID appends the 32 upper-hex digits of storeHost ip ‖ port ‖
// commitLogOffset.
func appendOffsetMsgID(b []byte, store hostPort, commitLogOffset int64) []byte {
	const upperHex = "0123456789ABCDEF"
	var raw [16]byte
	copy(raw[:4], store.ip[:])
	binary.BigEndian.PutUint32(raw[4:8], uint32(store.port))
	binary.BigEndian.PutUint64(raw[8:16], uint64(commitLogOffset))
	for _, c := range raw {
		b = append(b, upperHex[c>>4], upperHex[c&0xF])
	}
	return b
}

func (m *message) offsetMsgID() string { return offsetMsgID(m.storeHost, m.commitLogOffset) }

func (m *message) msgID() string {
	if id := m.props[propUniqKey]; id != "" {
		return id
	}
	return m.offsetMsgID()
}

// clone returns a copy with its own properties map and no wire encoding; the
// body is shared (never mutated).
func (m *message) clone() *message {
	c := *m
	c.props = make(map[string]string, len(m.props))
	for k, v := range m.props {
		c.props[k] = v
	}
	c.wire = nil
	c.dueMs = 0
	return &c
}

// seal builds the pull-body encoding. Called once the queue position and
// commit-log offset are final.
func (m *message) seal() { m.sealInto(nil) }

// sealInto appends the encoding to buf (a batch shares one buffer, dropped
// together by retention since its members share a queue) and returns buf;
// m.wire is the appended part. With a nil buf it allocates exactly.
func (m *message) sealInto(buf []byte) []byte {
	propsLen := 0
	for k, v := range m.props {
		propsLen += len(k) + len(v) + 2
	}
	if propsLen > maxPropertiesLength {
		propsLen = 0
	}
	topicLen := min(len(m.topic), 255)
	size := 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8 + 4 + len(m.body) + 1 + topicLen + 2 + propsLen
	if cap(buf)-len(buf) < size {
		buf = make([]byte, 0, size)
	}
	start := len(buf)
	b := buf
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	b = binary.BigEndian.AppendUint32(b, messageMagicV1)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(m.body)&0x7fffffff)
	b = binary.BigEndian.AppendUint32(b, uint32(m.queueID))
	b = binary.BigEndian.AppendUint32(b, uint32(m.flag))
	b = binary.BigEndian.AppendUint64(b, uint64(m.queueOffset))
	b = binary.BigEndian.AppendUint64(b, uint64(m.commitLogOffset))
	// Hosts are always IPv4 here, so the IPv6 bits must be clear.
	b = binary.BigEndian.AppendUint32(b, uint32(m.sysFlag&^(sysFlagBornHostV6|sysFlagStoreHostV6)))
	b = binary.BigEndian.AppendUint64(b, uint64(m.bornTimestamp))
	b = append(b, m.bornHost.ip[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(m.bornHost.port))
	b = binary.BigEndian.AppendUint64(b, uint64(m.storeTimestamp))
	b = append(b, m.storeHost.ip[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(m.storeHost.port))
	b = binary.BigEndian.AppendUint32(b, uint32(m.reconsumeTimes))
	b = binary.BigEndian.AppendUint64(b, uint64(m.preparedTxOff))
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.body)))
	bodyAt := len(b)
	b = append(b, m.body...)
	b = append(b, byte(topicLen))
	b = append(b, m.topic[:topicLen]...)
	b = binary.BigEndian.AppendUint16(b, uint16(propsLen))
	if propsLen > 0 {
		// Map order: the bytes differ between encodings of equal
		// properties, which nothing compares.
		for k, v := range m.props {
			b = append(b, k...)
			b = append(b, 1)
			b = append(b, v...)
			b = append(b, 2)
		}
	}
	m.wire = b[start:len(b):len(b)]
	// The body now lives inside wire; drop the reference to the request frame.
	m.body = b[bodyAt : bodyAt+len(m.body) : bodyAt+len(m.body)]
	return b
}

// export converts to the public form for tests.
func (m *message) export() Message {
	props := make(map[string]string, len(m.props))
	for k, v := range m.props {
		props[k] = v
	}
	return Message{
		Topic:           m.topic,
		QueueID:         int(m.queueID),
		QueueOffset:     m.queueOffset,
		CommitLogOffset: m.commitLogOffset,
		MsgID:           m.msgID(),
		OffsetMsgID:     m.offsetMsgID(),
		Tags:            m.props[propTags],
		Keys:            m.props[propKeys],
		Properties:      props,
		Body:            m.body,
		SysFlag:         m.sysFlag,
		Flag:            m.flag,
		ReconsumeTimes:  m.reconsumeTimes,
		BornTimestamp:   m.bornTimestamp,
		StoreTimestamp:  m.storeTimestamp,
		BornHost:        m.bornHost.String(),
	}
}

var errBadBatch = errors.New("malformed batch body")

// decodeBatch unpacks a SEND_BATCH_MESSAGE body: records of
// TOTALSIZE i32 | MAGIC i32 | BODYCRC i32 | FLAG i32 | BODYLEN i32 | BODY |
// PROPLEN i16 | PROPS. It returns an error on any inconsistency.
type batchRecord struct {
	flag     int32
	body     []byte
	rawProps []byte
	props    map[string]string
}

func decodeBatch(data []byte) ([]batchRecord, error) {
	out := make([]batchRecord, 0, 64)
	r := byteReader{b: data}
	for r.err == nil && len(r.b) > 0 {
		total := int(int32(r.u32()))
		r.skip(8) // magic, body crc
		flag := int32(r.u32())
		body := r.bytes(int(int32(r.u32())))
		props := r.bytes(int(r.u16()))
		if r.err != nil {
			break
		}
		if want := 4 + 4 + 4 + 4 + 4 + len(body) + 2 + len(props); total != want {
			return nil, errBadBatch
		}
		out = append(out, batchRecord{flag: flag, body: body, rawProps: props, props: parseProperties(string(props))})
	}
	if r.err != nil {
		return nil, errBadBatch
	}
	return out, nil
}
